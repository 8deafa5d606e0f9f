"""Helpers for tests and demos, in one place: toy tokenizers, toy pipelines and bundles, toy
retrieval setups. Everything is small, untrained (the text tokenizer excepted), seeded and offline.

- :mod:`fourm.testing.tokenizers` — image tokenizers from the shipped configs shrunk to toy width
  (``toy_config``, ``toy_tokenizer``), random model-convention inputs (``random_images``);
- :mod:`fourm.testing.bundles` — a toy text tokenizer, a tiny random FourM, an in-memory toy
  pipeline and a toy bundle on disk in the layout of ``models/world-default`` (``build_toy_bundle``);
- :mod:`fourm.testing.retrieval` — a toy pipeline with a vector modality and a small raw world dataset.
- :mod:`fourm.testing.code_structure` — the package's import structure from its sources (``ast``):
  upward imports, cycles, imports inside functions that dodge one (``bench/code_structure.py``, issue 20).

The submodules are imported on their own (``from fourm.testing.bundles import build_toy_bundle``), so a
test that needs a toy tokenizer does not load the generation stack.
"""
