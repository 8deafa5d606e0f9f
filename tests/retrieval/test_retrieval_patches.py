"""Retrieval with a patch modality: rgb read as pixel patches from raw and token datasets."""

import pytest
import torch

from fourm.core.patches import patchify
from fourm.data.token_dataset import ModalityTokens, TokenDatasetInfo, write_token_dataset
from fourm.retrieval.data import RetrievalData
from fourm.retrieval.embed import PooledEmbedder
from fourm.retrieval.items import pack_items
from fourm.testing.retrieval import toy_retrieval_pipeline


@pytest.fixture(scope="module")
def pix_pipe():
    return toy_retrieval_pipeline(modalities=("rgb", "caption"), rgb_pixels=True)


def test_raw_items_read_the_rgb_column_as_patches(pix_pipe, world):
    data = RetrievalData(world, "val", num=4)
    items, rows = data.items(["rgb_pixels"], pix_pipe, batch_size=3)
    assert rows == [0, 1, 2, 3]
    for item, image in zip(items, data.values("rgb", rows)):
        assert torch.equal(item["rgb_pixels"], torch.from_numpy(patchify(image, 8)))
    assert data.values("rgb_pixels", [1], pix_pipe)[0].shape == (32, 32, 3)  # the picture of the item


def test_token_dataset_patches_give_the_same_embeddings(pix_pipe, world, tmp_path):
    raw = RetrievalData(world, "val")
    items, _ = raw.items(["rgb_pixels"], pix_pipe)
    info = TokenDatasetInfo(modalities={"rgb_pixels": ModalityTokens("image", 256, 16, patch_dim=192)})
    rows = [{"id": i, "rgb_pixels": it["rgb_pixels"].reshape(-1)} for i, it in zip(raw.ids, items)]
    write_token_dataset(tmp_path / "tokens", {"val": rows}, info)
    token_items, _ = RetrievalData(tmp_path / "tokens", "val").items(["rgb_pixels"])
    assert token_items[0]["rgb_pixels"].shape == (16 * 192,)  # stored flat
    emb = PooledEmbedder(pix_pipe.model, center=False, autocast=False)
    a, b = emb(items), emb(token_items)
    assert torch.allclose(a, b, atol=1e-5)
    assert not torch.allclose(a[0], a[1])  # different images, different embeddings


def test_pack_items_mixes_patch_and_token_items(pix_pipe, world):
    data = RetrievalData(world, "val", num=2)
    items, _ = data.items(["rgb_pixels", "caption"], pix_pipe)
    enc = pack_items(pix_pipe.model.config, [{"caption": items[0]["caption"]}, items[1]])
    pix = pix_pipe.model.config.modality_index("rgb_pixels")
    assert int((enc.valid[0] & (enc.modality[0] == pix)).sum()) == 0
    at = enc.valid[1] & (enc.modality[1] == pix)
    assert int(at.sum()) == 16
    assert torch.equal(enc.patches[1][at], items[1]["rgb_pixels"][enc.position[1][at]])
