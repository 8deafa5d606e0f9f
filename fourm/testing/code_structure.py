"""Code-structure analysis of the package sources (issue 20), shared by ``bench/code_structure.py`` and
``tests/test_code_structure.py``: import cycles between packages and between files, imports going
upward against the intended layering, imports inside functions (each one classified), the longest
functions.

Parses the sources with ``ast`` (nothing is imported). Layering, lowest first: errors/utils/resources
< fourm.core (schema, patches, batch) < tokenizers_zoo < modalities < codecs (value <-> token ids over
the tokenizers) < data < model < training < generation < retrieval < eval (it runs generation and
retrieval to score them) < testing (toy pipelines and bundles) < convert < recipe < cli; an import of
a higher layer is "upward" (``__main__`` entry shims excepted: nothing imports them, so they are also
left out of the package graph). Imports under ``if __name__ == "__main__":`` run only when the file is
executed as a script and are not edges of the module-level graph.

An import inside a function is classified by what moving it to module level would do:

- ``dodge``: a fourm/tokenizers_zoo import that would go upward in the layering, or that would close a
  package or file cycle in the module-level graph plus that one edge (it only sits in the function to
  dodge the upward import or the cycle, which issue 20 forbids);
- ``lazy``: any other fourm/tokenizers_zoo import (same or lower layer, no cycle), e.g. a CLI entry point
  loading the generation stack only when the command runs so that ``--help`` stays fast;
- ``lazy third-party``: any other import (heavy optional packages: transformers, deepspeed, ...).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("fourm", "tokenizers_zoo")
LAYERS = [
    ("fourm.errors", "fourm.utils", "fourm.resources"),
    ("fourm.core",),
    ("tokenizers_zoo",),
    ("fourm.modalities",),
    ("fourm.codecs",),
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
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


@dataclass(frozen=True)
class InnerImport:
    """One import statement target inside a function body."""

    module: str  # the importing module
    path: str  # its file, relative to the root
    line: int
    target: str  # the imported module (resolved to a known module where one matches)
    kind: str = "lazy third-party"  # "dodge", "lazy" or "lazy third-party"
    why: str = ""  # for a dodge: "upward", "package cycle" and/or "file cycle"


@dataclass
class Structure:
    modules: set[str]
    edges: dict[str, set[str]]  # module -> modules it imports at module level
    inner: list[InnerImport]
    functions: list[tuple[int, str]]  # (lines, qualified name), longest first
    upward: list[tuple[str, str]] = field(default_factory=list)
    package_cycles: list[list[str]] = field(default_factory=list)
    file_cycles: list[list[str]] = field(default_factory=list)

    def inner_of(self, kind: str) -> list[InnerImport]:
        return [i for i in self.inner if i.kind == kind]

    @property
    def inner_internal(self) -> list[InnerImport]:
        """Imports inside functions of fourm/tokenizers_zoo modules (dodges and lazy ones)."""
        return [i for i in self.inner if i.kind != "lazy third-party"]


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
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


def is_upward(src: str, target: str) -> bool:
    return layer(target) > layer(src) >= 0 and not src.endswith("__main__")


def _targets(node: ast.Import | ast.ImportFrom, known: set[str]) -> list[str]:
    """The modules an import statement loads: ``from a.b import c`` is ``a.b.c`` when that is a module."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    elif node.module and node.level == 0:
        names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
                 for a in node.names]
    else:
        return []
    out = []
    for t in names:
        if t not in known and t.rsplit(".", 1)[0] in known:
            t = t.rsplit(".", 1)[0]
        if t not in out:
            out.append(t)
    return out


def _is_main_block(node: ast.stmt) -> bool:
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
            and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__"
            and len(node.test.comparators) == 1 and isinstance(node.test.comparators[0], ast.Constant)
            and node.test.comparators[0].value == "__main__")


def source_files(root: Path = ROOT) -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (root / pkg).rglob("*.py") if "configs" not in p.parts)


def scan(root: Path = ROOT) -> Structure:
    files = source_files(root)
    known = {module_name(p, root) for p in files}
    edges: dict[str, set[str]] = defaultdict(set)
    inner: list[InnerImport] = []
    functions: list[tuple[int, str]] = []
    for path in files:
        mod = module_name(path, root)
        tree = ast.parse(path.read_text(), filename=str(path))
        in_function, in_main_block = set(), set()
        for node in tree.body:  # ``if __name__ == "__main__":`` runs only as a script, never on import
            if _is_main_block(node):
                in_main_block.update(id(n) for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom)))
        for node in ast.walk(tree):
            if isinstance(node, _FUNCTIONS):
                functions.append((node.end_lineno - node.lineno + 1, f"{mod}.{node.name}"))
                in_function.update(id(n) for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom)))
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            targets = _targets(node, known)
            if id(node) in in_main_block and id(node) not in in_function:
                continue
            if id(node) in in_function:
                rel = str(path.relative_to(root))
                inner.extend(InnerImport(mod, rel, node.lineno, t) for t in targets)
            else:  # TYPE_CHECKING blocks: none in the sources; they would count as module level
                edges[mod].update(t for t in targets if t.split(".")[0] in PACKAGES)
    functions.sort(reverse=True)
    structure = Structure(known, dict(edges), inner, functions)
    _analyse(structure)
    return structure


def _package_edges(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    """Imports between packages; ``__main__`` entry shims left out (nothing imports them, so they close
    no cycle; they only run when the package is executed)."""
    out: dict[str, set[str]] = defaultdict(set)
    for src, targets in edges.items():
        if src.endswith("__main__"):
            continue
        for t in targets:
            if package_of(t) != package_of(src):
                out[package_of(src)].add(package_of(t))
    return out


def _file_edges(edges: dict[str, set[str]], known: set[str]) -> dict[str, set[str]]:
    return {k: {t for t in v if t in known} for k, v in edges.items()}


def reaches(edges: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, todo = {start}, [start]
    while todo:
        v = todo.pop()
        if v == goal:
            return True
        for w in edges.get(v, ()):
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return False


def classify(imp: InnerImport, structure: Structure) -> InnerImport:
    """The import with its kind and reason: would it, at module level, go upward or close a cycle?"""
    src, t = imp.module, imp.target
    if t.split(".")[0] not in PACKAGES:
        return InnerImport(imp.module, imp.path, imp.line, t, "lazy third-party")
    why = []
    if is_upward(src, t):
        why.append("upward")
    pkg_src, pkg_t = package_of(src), package_of(t)
    if pkg_src != pkg_t and reaches(_package_edges(structure.edges), pkg_t, pkg_src):
        why.append("package cycle")
    if t != src and reaches(_file_edges(structure.edges, structure.modules), t, src):
        why.append("file cycle")
    return InnerImport(imp.module, imp.path, imp.line, t, "dodge" if why else "lazy", ", ".join(why))


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


def _analyse(s: Structure) -> None:
    s.upward = sorted((src, t) for src, targets in s.edges.items() for t in targets if is_upward(src, t))
    s.file_cycles = cycles(_file_edges(s.edges, s.modules))
    s.package_cycles = cycles(_package_edges(s.edges))
    s.inner = sorted((classify(i, s) for i in s.inner), key=lambda i: (i.path, i.line, i.target))


def report(s: Structure, top: int = 10) -> str:
    lines = [f"modules: {len(s.modules)}",
             f"module-level imports going upward (layering in the docstring): {len(s.upward)}"]
    lines += [f"  {src} -> {t}" for src, t in s.upward[:top]]
    lines.append(f"package cycles: {len(s.package_cycles)}")
    lines += ["  " + " <-> ".join(c) for c in s.package_cycles]
    lines.append(f"file cycles: {len(s.file_cycles)}")
    lines += ["  " + " <-> ".join(c) for c in s.file_cycles]
    dodges, lazy = s.inner_of("dodge"), s.inner_of("lazy")
    lines.append(f"imports inside functions: {len(s.inner_internal)}")
    lines.append(f"  dodge (upward or cycle at module level): {len(dodges)}")
    lines += [f"    {i.path}:{i.line} -> {i.target} ({i.why})" for i in dodges]
    lines.append(f"  lazy (fourm/tokenizers_zoo, fine at module level): {len(lazy)}")
    lines.append(f"  lazy third-party: {len(s.inner_of('lazy third-party'))}")
    lines.append("longest functions (lines):")
    lines += [f"  {n:4d}  {name}" for n, name in s.functions[:top]]
    return "\n".join(lines)
