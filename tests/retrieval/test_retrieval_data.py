"""RetrievalData: raw and token datasets give the same items; values and errors."""

import pytest
import torch

from fourm.data.masking.spans import SequenceSpecialTokens
from fourm.data.token_dataset import ModalityTokens, TokenDatasetInfo, write_token_dataset
from fourm.errors import FourmError
from fourm.retrieval.data import RetrievalData
from fourm.retrieval.embed import PooledEmbedder


def test_raw_items_are_tokenized_values(pipe, world):
    data = RetrievalData(world, "val", num=5)
    assert len(data) == 5 and data.kind == "raw"
    items, rows = data.items(["rgb", "caption"], pipe, batch_size=2)
    assert rows == [0, 1, 2, 3, 4]
    captions = data.values("caption", rows)
    assert all(isinstance(c, str) for c in captions)
    want = pipe.tokenize("caption", captions)
    assert all(torch.equal(it["caption"], w) for it, w in zip(items, want))
    assert torch.equal(items[3]["rgb"], pipe.tokenize("rgb", data.values("rgb", [3]))[0])


def test_token_dataset_gives_the_same_embeddings(pipe, world, tmp_path):
    raw = RetrievalData(world, "val")
    items, _ = raw.items(["rgb", "caption"], pipe)
    codec = pipe.codecs["caption"]
    info = TokenDatasetInfo(
        modalities={"rgb": ModalityTokens("image", 64, 16), "caption": ModalityTokens("sequence", codec.vocab_size, 16)},
        specials=SequenceSpecialTokens(pad=codec.pad, sos=codec.sos, eos=codec.eos, sentinels=[5]),
    )
    rows = [{"id": i, "rgb": it["rgb"], "caption": it["caption"][it["caption"] != codec.pad]} for i, it in
            zip(raw.ids, items)]
    write_token_dataset(tmp_path / "tokens", {"val": rows}, info)
    tokens = RetrievalData(tmp_path / "tokens", "val")
    assert tokens.kind == "tokens" and tokens.ids == raw.ids
    token_items, _ = tokens.items(["rgb", "caption"])
    emb = PooledEmbedder(pipe.model, center=False, autocast=False, eos=codec.eos, pad=codec.pad)
    assert torch.allclose(emb(items), emb(token_items), atol=1e-5)
    decoded = tokens.values("caption", [2], pipe)[0]  # decoded from tokens (the text tokenizer is uncased)
    original = raw.values("caption", [2])[0]
    assert decoded == pipe.detokenize("caption", pipe.tokenize("caption", [original]))[0]  # as the raw path reads it
    assert original.lower().startswith(decoded[:-1])  # the toy tokenizer may cut a long caption
    with pytest.raises(FourmError, match="needs the model bundle"):
        tokens.values("caption", [2])


def test_errors(pipe, world, tmp_path):
    with pytest.raises(FourmError, match="is not a dataset"):
        RetrievalData(tmp_path)
    with pytest.raises(FourmError, match="no split 'test'"):
        RetrievalData(world, "test")
    data = RetrievalData(world, "val")
    with pytest.raises(FourmError, match="unknown modality 'sound'"):
        data.items(["sound"], pipe)
    with pytest.raises(FourmError, match="unknown modality 'normals': the model has"):
        data.items(["normals"], pipe)
