"""Issue 20: no upward import, no import cycle, and no import inside a function that only dodges one
(:mod:`fourm.testing.code_structure`, ast only: fast)."""

from __future__ import annotations

import textwrap

import pytest

from fourm.testing.code_structure import scan


@pytest.fixture(scope="module")
def structure():
    return scan()


def test_no_upward_imports_or_cycles(structure):
    assert structure.upward == []
    assert structure.package_cycles == []
    assert structure.file_cycles == []


def test_no_import_inside_a_function_dodges_one(structure):
    dodges = [f"{i.path}:{i.line} -> {i.target} ({i.why})" for i in structure.inner_of("dodge")]
    assert dodges == [], (
        "imports inside functions that would go upward or close a cycle at module level: move the code that "
        "needs the higher layer up (or the shared part down), then import at module level:\n  " + "\n  ".join(dodges)
    )


def test_cli_imports_are_lazy_not_dodges(structure):
    cli = [i for i in structure.inner if i.module.startswith("fourm.cli") and i.kind != "lazy third-party"]
    assert cli and all(i.kind == "lazy" for i in cli)


def _write(root, files):
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_classification(tmp_path):
    _write(tmp_path, {
        "fourm/__init__.py": "",
        "fourm/model/__init__.py": "",
        "fourm/model/a.py": """
            from fourm.model import b

            def f():
                from fourm.cli import run  # upward
                from fourm.model.c import g  # c imports a: a file cycle
                from fourm.data import d  # lower layer, no cycle: lazy
                import torch  # third party
            """,
        "fourm/model/b.py": "",
        "fourm/model/c.py": "from fourm.model.a import f\n",
        "fourm/data/__init__.py": "",
        "fourm/data/d.py": "",
        "fourm/cli/__init__.py": """
            from fourm.model import c

            def run():
                from fourm.model import a  # the top layer importing below: lazy

            if __name__ == "__main__":
                from fourm.model.a import f  # only when run as a script: not an edge
            """,
        "fourm/model/__main__.py": "from fourm.cli import run\n",  # an entry shim: not upward, in no cycle
        "tokenizers_zoo/__init__.py": "",
    })  # fmt: skip
    s = scan(tmp_path)
    assert s.upward == [] and s.file_cycles == [] and s.package_cycles == []
    kinds = {(i.module, i.target): (i.kind, i.why) for i in s.inner}
    assert kinds == {
        ("fourm.model.a", "fourm.cli"): ("dodge", "upward, package cycle, file cycle"),
        ("fourm.model.a", "fourm.model.c"): ("dodge", "file cycle"),
        ("fourm.model.a", "fourm.data.d"): ("lazy", ""),
        ("fourm.model.a", "torch"): ("lazy third-party", ""),
        ("fourm.cli", "fourm.model.a"): ("lazy", ""),
    }
