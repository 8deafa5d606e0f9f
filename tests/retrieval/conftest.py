"""Fixtures of the retrieval tests: toy pipelines, a toy world dataset and a saved toy bundle."""

import pytest

from fourm.testing.retrieval import toy_retrieval_pipeline, write_toy_world


@pytest.fixture(scope="session")
def pipe():
    """Toy pipeline: rgb, depth, caption and a vector modality caption_embedding."""
    return toy_retrieval_pipeline()


@pytest.fixture(scope="session")
def plain_pipe():
    """Toy pipeline without a vector modality (rgb, caption)."""
    return toy_retrieval_pipeline(modalities=("rgb", "caption"), vector=None)


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    """A raw toy world dataset: 8 train + 8 val samples at 32 px."""
    return write_toy_world(tmp_path_factory.mktemp("data") / "world", num=16)


@pytest.fixture(scope="session")
def bundle(pipe, tmp_path_factory):
    return pipe.save_pretrained(tmp_path_factory.mktemp("bundles") / "toy")


@pytest.fixture(scope="session")
def plain_bundle(plain_pipe, tmp_path_factory):
    return plain_pipe.save_pretrained(tmp_path_factory.mktemp("bundles") / "plain")
