"""A generated image read back as the model reads a given one, as its pixel patches (decoded by the
image's tokenizer): always by the reranker of its candidates, by the later targets of a chain as
``generated_image_inputs`` says (its tokens by default)."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import torch

import fourm.generation.chain as chain_module
from fourm.errors import FourmError
from fourm.generation.pipeline import FourMPipeline
from fourm.testing.bundles import toy_pipeline


@pytest.fixture(scope="module")
def pipe() -> FourMPipeline:
    pipe = toy_pipeline(image_size=32, modalities=("rgb", "depth", "caption"), rgb_pixels=True)
    pipe.precision = "fp32"
    return pipe


@contextmanager
def later_targets_read(pipe, how: str):
    pipe.generated_image_inputs = how
    try:
        yield
    finally:
        pipe.generated_image_inputs = "tokens"


def record_encoder_rows(pipe, monkeypatch) -> list[dict]:
    """Per model.encode call: the modality indices of its valid slots and, per row, the pixel patches
    at the rgb_pixels slots in position order."""
    calls: list[dict] = []
    original = pipe.model.encode
    pix = pipe.model.config.modality_index("rgb_pixels")

    def spy(tokens, modality, position, valid, patches=None, *args, **kwargs):
        rows = []
        for r in range(tokens.shape[0]):
            at = valid[r] & (modality[r] == pix)
            order = position[r][at].argsort()
            rows.append(patches[r][at][order].round().to(torch.uint8) if patches is not None else None)
        calls.append({"modalities": set(modality[valid].tolist()), "patches": rows})
        return original(tokens, modality, position, valid, patches, *args, **kwargs)

    monkeypatch.setattr(pipe.model, "encode", spy)
    return calls


def decoded_patches(pipe, rgb_tokens):
    """The pixel patches (B, N, P) of generated rgb tokens, decoded by the rgb tokenizer."""
    return pipe.tokenize("rgb_pixels", pipe.detokenize("rgb", rgb_tokens))


def test_later_targets_read_a_generated_image_as_its_pixels(pipe, monkeypatch):
    config = pipe.model.config
    rgb, pix = config.modality_index("rgb"), config.modality_index("rgb_pixels")
    calls = record_encoder_rows(pipe, monkeypatch)
    with later_targets_read(pipe, "patches"):
        out = pipe.generate({"caption": "a red circle"}, ["rgb", "depth"], num_samples=2, seed=3, progress=False, decode=False)
    reading = [c for c in calls if pix in c["modalities"]]
    assert reading, "the depth step never saw the generated image's pixels"
    expected = decoded_patches(pipe, out.tokens["rgb"])  # (2, 16, 192)
    for call in reading:
        assert rgb not in call["modalities"]  # its tokens are not read beside the pixels
        for r, patches in enumerate(call["patches"]):  # guidance passes repeat the two samples
            assert torch.equal(patches, expected[r % 2])
    assert "rgb_pixels" not in out.tokens  # a derived input, not an output


@pytest.mark.parametrize("how, reads", [("tokens", {"rgb"}), ("both", {"rgb", "rgb_pixels"})])
def test_later_targets_read_its_tokens_by_default_or_both(pipe, monkeypatch, how, reads):
    config = pipe.model.config
    indices = {config.modality_index(m): m for m in ("rgb", "rgb_pixels")}
    calls = record_encoder_rows(pipe, monkeypatch)
    with later_targets_read(pipe, how):
        pipe.generate({"caption": "a red circle"}, ["rgb", "depth"], num_samples=2, seed=3, progress=False, decode=False)
    seen = [{indices[i] for i in c["modalities"] if i in indices} for c in calls]
    assert [s for s in seen if s][-1] == reads  # the depth step's encoder rows


def test_readers_of_a_generated_image(pipe):
    assert pipe.derived_inputs(["rgb", "depth"], {}) == {}  # default: later targets read the tokens
    assert set(pipe.candidate_readers(["rgb", "depth"])) == {"rgb"}  # the reranker reads the pixels
    with later_targets_read(pipe, "patches"):
        assert pipe.derived_inputs(["rgb", "depth"], {"rgb_pixels": object()}) == {}  # given pixels stay
        assert pipe.read_through(pipe.derived_inputs(["rgb", "depth"], {})) == ["rgb"]
    with later_targets_read(pipe, "both"):
        assert pipe.read_through(pipe.derived_inputs(["rgb", "depth"], {})) == []
    with pytest.raises(FourmError, match="invalid generated_image_inputs 'pixels'"):
        pipe.generated_image_inputs = "pixels"


def test_image_candidates_are_reranked_through_their_pixels(pipe, monkeypatch):
    """Each candidate is scored by log p(caption | its pixels) alone, and each sample keeps the
    candidate of highest score."""
    config = pipe.model.config
    rgb, pix, cap = (config.modality_index(m) for m in ("rgb", "rgb_pixels", "caption"))
    drawn, scored = [], []
    sample, score = chain_module._Chain.sample, chain_module.log_likelihood

    def record_sample(self, *args, **kwargs):
        tokens, finished = sample(self, *args, **kwargs)
        drawn.append(tokens.clone())
        return tokens, finished

    def record_score(model, conditions, name, tokens, sos):
        out = score(model, conditions, name, tokens, sos)
        scored.append((set(conditions), out.clone()))
        return out

    monkeypatch.setattr(chain_module._Chain, "sample", record_sample)
    monkeypatch.setattr(chain_module, "log_likelihood", record_score)
    calls = record_encoder_rows(pipe, monkeypatch)
    target = pipe.default_target("rgb", candidates=3, rerank_by=["caption"])
    out = pipe.generate({"caption": "a red circle"}, [target], num_samples=4, seed=5, progress=False, decode=False)
    assert len(drawn) == 3 and all(keys == {"rgb_pixels"} for keys, _ in scored)
    scoring = [c for c in calls if cap not in c["modalities"]]  # the reranker's encoder: the candidate alone
    assert len(scoring) == 3 and all(c["modalities"] == {pix} for c in scoring)
    for k, call in enumerate(scoring):
        expected = decoded_patches(pipe, drawn[k])
        assert all(torch.equal(p, expected[r]) for r, p in enumerate(call["patches"]))
    best = torch.stack([s for _, s in scored]).argmax(dim=0)  # (4,)
    for row in range(4):
        assert torch.equal(out.tokens["rgb"][row], drawn[int(best[row])][row])
    assert rgb not in set().union(*(c["modalities"] for c in scoring))
