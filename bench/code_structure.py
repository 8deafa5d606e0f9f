"""Code-structure figures of the package (issue 20): import cycles between packages and between
files, imports inside functions, upward imports against the intended layering, the longest functions.

    python bench/code_structure.py [--top 10]

Parses the sources with ``ast`` (nothing is imported). Layering, lowest first: errors/utils/resources
< fourm.core (schema, patches, batch) < tokenizers_zoo < modalities < data < model < training <
generation < retrieval < eval (it runs generation and retrieval to score them) < testing (toy
pipelines and bundles) < convert < recipe < cli; an import of a higher layer is "upward"
(``__main__`` entry shims excepted).
"""

from __future__ import annotations

import argparse
import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("fourm", "tokenizers_zoo")
LAYERS = [
    ("fourm.errors", "fourm.utils", "fourm.resources"),
    ("fourm.core",),
    ("tokenizers_zoo",),
    ("fourm.modalities",),
    ("fourm.data",),
    ("fourm.model",),
    ("fourm.training",),
    ("fourm.generation",),
    ("fourm.retrieval",),
    ("fourm.eval",),
    ("fourm.testing",),
    ("fourm.convert",),
    ("fourm.recipe",),
    ("fourm.cli",),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    best, best_len = -1, -1
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best_len:
                best, best_len = i, len(p)
    return best


def package_of(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "fourm" and len(parts) > 1 else parts[0]


def scan() -> tuple[dict, dict, list, list]:
    top_edges: dict[str, set[str]] = defaultdict(set)  # module -> imported modules (module level)
    inner: list[tuple[str, int, str]] = []
    functions: list[tuple[int, str]] = []
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py") if "configs" not in p.parts]
    known = {module_name(p) for p in files}
    for path in files:
        mod = module_name(path)
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                functions.append((node.end_lineno - node.lineno + 1, f"{mod}.{node.name}"))
        func_lines = {
            n.lineno for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
            for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module]
            else:
                continue
            targets = [t for t in targets if t.split(".")[0] in PACKAGES]
            if not targets:
                continue
            if node.lineno in func_lines:
                inner.extend((mod, node.lineno, t) for t in targets)
            else:
                in_type_check = False  # TYPE_CHECKING blocks are rare here; counted as module level
                if not in_type_check:
                    top_edges[mod].update(t if t in known else t.rsplit(".", 1)[0] if t.rsplit(".", 1)[0] in known else t
                                          for t in targets)
    return top_edges, known, inner, sorted(functions, reverse=True)


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(edges):
        if v not in index:
            visit(v)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--top", type=int, default=10)
    args = p.parse_args()
    edges, known, inner, functions = scan()
    pkg_edges: dict[str, set[str]] = defaultdict(set)
    upward = []
    for src, targets in edges.items():
        for t in targets:
            if package_of(t) != package_of(src):
                pkg_edges[package_of(src)].add(package_of(t))
            if layer(t) > layer(src) >= 0 and not src.endswith("__main__"):
                upward.append((src, t))
    file_cycles = cycles({k: {t for t in v if t in known} for k, v in edges.items()})
    pkg_cycles = cycles(pkg_edges)
    print(f"modules: {len(known)}")
    print(f"module-level imports going upward (layering in the docstring): {len(upward)}")
    for src, t in sorted(upward)[: args.top]:
        print(f"  {src} -> {t}")
    print(f"package cycles: {len(pkg_cycles)}")
    for c in pkg_cycles:
        print("  " + " <-> ".join(c))
    print(f"file cycles: {len(file_cycles)}")
    for c in file_cycles:
        print("  " + " <-> ".join(c))
    print(f"imports inside functions: {len(inner)}")
    print("longest functions (lines):")
    for n, name in functions[: args.top]:
        print(f"  {n:4d}  {name}")


if __name__ == "__main__":
    main()
