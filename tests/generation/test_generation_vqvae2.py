"""Chained generation over a two-level (VQ-VAE-2) tokenizer: rgb_top, then rgb_bottom, one picture."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fourm.codecs import ImageLevelCodec, PatchCodec, SequenceCodec
from fourm.errors import FourmError
from fourm.generation.bundle import REGISTRY_FILE
from fourm.generation.pipeline import FourMPipeline
from fourm.modalities import ModalityRegistry, ModalitySpec, default_registry
from fourm.resources import CONFIG_ROOT
from fourm.testing.bundles import toy_model, toy_text_tokenizer
from fourm.testing.tokenizers import toy_tokenizer
from fourm.utils.config import read_mapping

SIZE = 32  # toy tokenizer: top 2x2 = 4 tokens, bottom 4x4 = 16 tokens, 64 codes per level
EXTRA = CONFIG_ROOT / "modalities" / "extra"


@pytest.fixture(scope="module")
def pipe() -> FourMPipeline:
    tok = toy_tokenizer("rgb_vqvae2", image_size=SIZE, seed=0)
    text = toy_text_tokenizer()
    specs, codecs = [], {}
    for name, level, n in (("rgb_top", "top", 4), ("rgb_bottom", "bottom", 16)):
        spec = {
            **read_mapping(EXTRA / f"{name}.yaml"),
            "num_tokens": n,
            "vocab_size": tok.vocab_size,
            "image_size": SIZE,
        }
        specs.append(ModalitySpec.from_dict(spec))
        codecs[name] = ImageLevelCodec(name, tok, level)  # one tokenizer object for both grids
    caption = {**default_registry()["caption"].to_dict(), "max_length": 16, "vocab_size": text.vocab_size}
    specs.append(ModalitySpec.from_dict(caption))
    codecs["caption"] = SequenceCodec("caption", text, 16)
    registry = ModalityRegistry(specs)
    model = toy_model(registry, seed=0)
    with torch.no_grad():  # peaked, seed-sensitive token distributions
        model.output_weight.mul_(20.0)
    pipe = FourMPipeline(model, codecs, registry)
    pipe.autocast = False
    return pipe


def joint_decode(pipe, top: torch.Tensor, bottom: torch.Tensor) -> list[np.ndarray]:
    tok = pipe.codecs["rgb_top"].tokenizer
    return list(tok.postprocess(tok.decode(torch.cat([top, bottom], dim=1))))


def test_chained_top_then_bottom_decodes_to_one_image(pipe):
    result = pipe.generate(
        {"caption": "a red circle"}, ["rgb_top", "rgb_bottom"], num_samples=2, progress=False
    )
    assert [t.modality for t in result.plan.targets] == ["rgb_top", "rgb_bottom"]
    top, bottom = result.tokens["rgb_top"], result.tokens["rgb_bottom"]
    assert top.shape == (2, 4) and bottom.shape == (2, 16)
    assert int(top.max()) < 64 and int(bottom.max()) < 64 and int(top.min()) >= 0
    for name in ("rgb_top", "rgb_bottom"):
        images = result.values[name]
        assert len(images) == 2 and images[0].shape == (SIZE, SIZE, 3) and images[0].dtype == np.uint8
    want = joint_decode(pipe, top, bottom)
    for a, b, c in zip(want, result.values["rgb_top"], result.values["rgb_bottom"]):
        assert np.array_equal(a, b) and np.array_equal(a, c)
    again = pipe.generate(
        {"caption": "a red circle"}, ["rgb_top", "rgb_bottom"], num_samples=2, progress=False
    )
    assert torch.equal(again.tokens["rgb_bottom"], bottom)  # seeded


def test_the_bottom_is_generated_given_the_top(pipe):
    g = torch.Generator().manual_seed(3)
    tops = [torch.randint(0, 64, (1, 4), generator=g) for _ in range(2)]
    bottoms, images = [], []
    for top in tops:
        r = pipe.generate({"rgb_top": top}, ["rgb_bottom"], num_samples=3, seed=1, progress=False)
        bottoms.append(r.tokens["rgb_bottom"])
        assert torch.equal(r.tokens["rgb_top"], top.expand(3, 4))
        images.append(r.values["rgb_bottom"])
        want = joint_decode(
            pipe, r.tokens["rgb_top"], r.tokens["rgb_bottom"]
        )  # the given top, decoded with it
        assert all(np.array_equal(a, b) for a, b in zip(want, r.values["rgb_bottom"]))
        assert all(np.array_equal(a, b) for a, b in zip(want, r.values["rgb_top"]))
    assert not torch.equal(bottoms[0], bottoms[1])  # same seed, other top codes: other bottom codes


def test_a_raw_image_condition_is_encoded_to_its_grid(pipe):
    image = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    r = pipe.generate({"rgb_top": image}, ["rgb_bottom"], progress=False)
    codec = pipe.codecs["rgb_top"]
    assert torch.equal(r.tokens["rgb_top"], codec.encode([image]))
    assert r.values["rgb_bottom"][0].shape == (SIZE, SIZE, 3)


def test_a_lone_grid_cannot_be_decoded(pipe):
    with pytest.raises(FourmError) as err:
        pipe.generate({"caption": "a circle"}, ["rgb_top"], progress=False)
    assert "'rgb_bottom' as a condition or target" in str(err.value) and "\n" not in str(err.value)
    r = pipe.generate({"caption": "a circle"}, ["rgb_top"], progress=False, decode=False)
    assert r.tokens["rgb_top"].shape == (1, 4) and "rgb_top" not in r.values
    with pytest.raises(FourmError, match="needs the bottom grid"):
        pipe.detokenize("rgb_top", r.tokens["rgb_top"])
    top_only = pipe.generate({"rgb_top": r.tokens["rgb_top"]}, ["caption"], progress=False)
    assert "rgb_top" not in top_only.values and isinstance(top_only.values["caption"][0], str)


def test_bundle_saves_the_shared_tokenizer_once_and_reloads_it_shared(pipe, tmp_path):
    root = pipe.save_pretrained(tmp_path / "bundle")
    dirs = sorted(p.name for p in (root / "tokenizers").iterdir())
    assert len(dirs) == 2 and "text" in dirs  # the two grids' tokenizer is saved once
    specs = json.loads((root / REGISTRY_FILE).read_text())
    assert specs["rgb_top"]["tokenizer"] == specs["rgb_bottom"]["tokenizer"] != "tokenizers/text"
    loaded = FourMPipeline.from_pretrained(root, device="cpu")
    loaded.autocast = False
    top, bottom = loaded.codecs["rgb_top"], loaded.codecs["rgb_bottom"]
    assert isinstance(top, ImageLevelCodec) and isinstance(bottom, ImageLevelCodec)
    assert top.tokenizer is bottom.tokenizer and (top.level, bottom.level) == ("top", "bottom")
    a = pipe.generate({"caption": "a blue square"}, ["rgb_top", "rgb_bottom"], progress=False)
    b = loaded.generate({"caption": "a blue square"}, ["rgb_top", "rgb_bottom"], progress=False)
    assert torch.equal(a.tokens["rgb_top"], b.tokens["rgb_top"]) and torch.equal(
        a.tokens["rgb_bottom"], b.tokens["rgb_bottom"]
    )
    assert np.array_equal(a.values["rgb_bottom"][0], b.values["rgb_bottom"][0])


def test_level_candidates_are_reranked_through_their_tokens(pipe):
    """A model that also reads rgb as pixel patches: a lone grid has no picture, so its candidates are
    scored through their tokens (not decoded to pixels, which would fail) and later targets read its tokens."""
    spec = ModalitySpec.from_dict({**read_mapping(EXTRA / "rgb_pixels.yaml"), "image_size": SIZE, "num_tokens": (SIZE // 8) ** 2})
    registry = ModalityRegistry([*pipe.registry.values(), spec])
    model = toy_model(registry, seed=0)
    with_pixels = FourMPipeline(model, {**pipe.codecs, "rgb_pixels": PatchCodec("rgb_pixels", spec)}, registry)
    with_pixels.precision = "fp32"
    assert with_pixels.candidate_readers(["rgb_top", "rgb_bottom"]) == {}
    with_pixels.generated_image_inputs = "patches"
    assert with_pixels.derived_inputs(["rgb_top", "rgb_bottom"], {}) == {}
    top = with_pixels.default_target("rgb_top", candidates=2, rerank_by=["caption"])
    out = with_pixels.generate({"caption": "a red circle"}, [top, "rgb_bottom"], num_samples=2, seed=0, progress=False)
    assert out.tokens["rgb_top"].shape == (2, 4) and len(out.values["rgb_top"]) == 2
