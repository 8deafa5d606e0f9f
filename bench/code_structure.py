"""Code-structure figures of the package (issue 20): import cycles between packages and between
files, imports inside functions (each classified as a dodge or a lazy import), upward imports against
the intended layering, the longest functions.

    python bench/code_structure.py [--top 10] [--lazy]

Parses the sources with ``ast`` (nothing is imported); the analysis, the layering and the
classification of imports inside functions live in :mod:`fourm.testing.code_structure`.
"""

from __future__ import annotations

import argparse

from fourm.testing.code_structure import report, scan


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--top", type=int, default=10)
    p.add_argument("--lazy", action="store_true", help="also list every lazy fourm/tokenizers_zoo import")
    args = p.parse_args()
    structure = scan()
    print(report(structure, top=args.top))
    if args.lazy:
        print("lazy imports inside functions:")
        for i in structure.inner_of("lazy"):
            print(f"  {i.path}:{i.line} -> {i.target}")


if __name__ == "__main__":
    main()
