"""FourMPipeline on a toy bundle: bundle files, tokenize / detokenize, raw inputs, generation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fourm.codecs.values import load_image, parse_metadata, parse_palette
from fourm.data.visualize import colorize_depth, colorize_semseg
from fourm.data.world import render_sample
from fourm.errors import FourmError
from fourm.generation.bundle import DEFAULT_BUNDLE, REGISTRY_FILE
from fourm.generation.pipeline import FourMPipeline
from fourm.testing.bundles import SEQUENCE_LENGTHS, build_toy_bundle, toy_pipeline

SIZE = 32  # toy image size


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return build_toy_bundle(tmp_path_factory.mktemp("toy") / "bundle", image_size=SIZE)


@pytest.fixture(scope="module")
def pipe(bundle) -> FourMPipeline:
    """fp32 for speed (bf16 autocast costs more than it saves at toy size); one test runs bf16."""
    pipe = FourMPipeline.from_pretrained(bundle, device="cpu")
    pipe.autocast = False
    return pipe


@pytest.fixture(scope="module")
def world() -> dict:
    """A world sample at the toy size."""
    s = render_sample(index=2, seed=0)
    return {**s, "rgb": s["rgb"][::2, ::2].copy(), "depth": s["depth"][::2, ::2].copy(), "semseg": s["semseg"][::2, ::2].copy()}


# ------------------------------------------------------------------------------------------ bundle


def test_bundle_is_self_contained(bundle, pipe):
    assert sorted(p.name for p in (bundle / "tokenizers").iterdir()) == ["depth", "edges", "rgb", "semseg", "text"]
    specs = json.loads((bundle / REGISTRY_FILE).read_text())
    assert specs["rgb"]["tokenizer"] == "tokenizers/rgb" and specs["caption"]["tokenizer"] == "tokenizers/text"
    assert specs["rgb"]["num_tokens"] == 16 and specs["caption"]["max_length"] == SEQUENCE_LENGTHS["caption"]
    assert pipe.modalities == ["rgb", "depth", "semseg", "edges", "caption", "bboxes", "metadata", "color_palette"]
    # one shared text tokenizer object for all sequence modalities
    assert len({id(pipe.codecs[m].tokenizer) for m in SEQUENCE_LENGTHS}) == 1


def test_bundle_without_registry_file_falls_back_to_configs(bundle, tmp_path, monkeypatch):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    (copy / REGISTRY_FILE).unlink()
    monkeypatch.chdir(tmp_path)
    pipe = FourMPipeline.from_pretrained("copy", device="cpu")  # relative to the working directory
    assert pipe.registry["rgb"].num_tokens == 64  # configs/modalities/rgb.yaml, not the bundle's file
    assert pipe.codecs["rgb"].length == 16  # but the tokenizer of the bundle


def test_default_bundle_is_repo_relative():
    assert DEFAULT_BUNDLE.is_absolute() and DEFAULT_BUNDLE.parts[-2:] == ("models", "world-default")
    assert DEFAULT_BUNDLE.resolve() == (Path(__file__).resolve().parents[2] / "models" / "world-default").resolve()


def test_missing_bundle_is_a_clear_error(tmp_path):
    with pytest.raises(FourmError, match="model bundle not found"):
        FourMPipeline.from_pretrained(tmp_path / "nope")
    with pytest.raises(FourmError, match="no model/ directory"):
        FourMPipeline.from_pretrained(tmp_path)


# ------------------------------------------------------------------------------------------ sequences


def test_box_string_round_trip_within_bin_precision(pipe):
    text = "circle 0.1 0.1 0.4 0.4; red square 0.5 0.52 0.9 0.93"
    ids = pipe.tokenize("bboxes", [text])
    assert ids.shape == (1, SEQUENCE_LENGTHS["bboxes"])
    (boxes,) = pipe.detokenize("bboxes", ids)
    bins = pipe.codecs["bboxes"].tokenizer.config.structured.coord_bins
    assert [b["label"] for b in boxes] == ["circle", "red square"]
    want = [[0.1, 0.1, 0.4, 0.4], [0.5, 0.52, 0.9, 0.93]]
    np.testing.assert_allclose([b["box"] for b in boxes], want, atol=0.5 / (bins - 1) + 1e-9)
    # the list-of-dicts form gives the same tokens
    same = pipe.tokenize("bboxes", [[{"label": "circle", "box": [0.1, 0.1, 0.4, 0.4]}, {"label": "red square", "box": [0.5, 0.52, 0.9, 0.93]}]])
    assert torch.equal(ids, same)


def test_sequence_tokens_end_in_eos_and_pad(pipe):
    codec = pipe.codecs["caption"]
    ids = pipe.tokenize("caption", ["a red circle", "two shapes"])
    lengths = (ids != codec.pad).sum(1)
    assert ids.shape == (2, SEQUENCE_LENGTHS["caption"])
    assert all(ids[i, lengths[i] - 1] == codec.eos for i in range(2))
    assert pipe.detokenize("caption", ids) == ["a red circle", "two shapes"]
    noisy = torch.cat([torch.tensor([[codec.tokenizer.sentinel_ids[0]]] * 2), ids], dim=1)  # model outputs
    assert pipe.detokenize("caption", noisy) == ["a red circle", "two shapes"]
    prefix = pipe.tokenize("caption", ["a red circle"], prefix=True)
    assert torch.equal(prefix[0], ids[0, : lengths[0] - 1])  # no [EOS], only the used columns


def test_palette_and_metadata_round_trip(pipe):
    (palette,) = pipe.detokenize("color_palette", pipe.tokenize("color_palette", ["250 10 10; #0000ff"]))
    levels = pipe.codecs["color_palette"].tokenizer.config.structured.color_levels
    np.testing.assert_allclose(palette, [[250, 10, 10], [0, 0, 255]], atol=255 / (levels - 1) / 2 + 1)
    (meta,) = pipe.detokenize("metadata", pipe.tokenize("metadata", ["object_count=3, dominant_color=red, brightness=0.5"]))
    assert meta["object_count"] == 3 and meta["dominant_color"] == "red"
    assert abs(meta["brightness"] - 0.5) <= 0.5 / 31 + 1e-9


def test_string_parsers():
    assert parse_palette("[[1, 2, 3]]") == [[1, 2, 3]]
    assert parse_palette("#ff0000, #00ff00") == [[255, 0, 0], [0, 255, 0]]
    assert parse_metadata('{"object_count": 2}') == {"object_count": 2}
    assert parse_metadata("a=1; b=0.5, c=red") == {"a": 1, "b": 0.5, "c": "red"}
    for bad in ("1 2", "300 0 0", "#ff00"):
        with pytest.raises(FourmError, match="malformed colour"):
            parse_palette(bad)
    with pytest.raises(FourmError, match="malformed metadata entry"):
        parse_metadata("object_count")


@pytest.mark.parametrize(
    "modality, value, message",
    [
        ("bboxes", "circle 0.1 0.1 0.4", "malformed box"),
        ("bboxes", "circle 0.5 0.1 0.4 0.4", "must satisfy"),
        ("metadata", "no_such_key=1", "unknown metadata key"),
        ("caption", 3, "caption must be a string"),
    ],
)
def test_malformed_sequence_values(pipe, modality, value, message):
    with pytest.raises(FourmError, match=message):
        pipe.tokenize(modality, [value])


def test_tokenize_needs_a_list(pipe):
    with pytest.raises(FourmError, match="expects a list of values"):
        pipe.tokenize("caption", "a red circle")
    with pytest.raises(FourmError, match="unknown modality 'normals' \\(known: rgb, depth"):
        pipe.tokenize("normals", [np.zeros((32, 32, 3), np.uint8)])


# ------------------------------------------------------------------------------------------ images


def test_rgb_tokens_match_the_tokenizer(pipe, world):
    tok = pipe.codecs["rgb"].tokenizer
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        want = tok.encode(tok.preprocess([world["rgb"]]))
    assert torch.equal(pipe.tokenize("rgb", [world["rgb"]]), want)
    # a batch array, a PIL image and a PNG path give the same tokens
    assert torch.equal(pipe.tokenize("rgb", np.stack([world["rgb"]] * 2)), want.expand(2, -1))
    assert torch.equal(pipe.tokenize("rgb", [Image.fromarray(world["rgb"])]), want)


def test_images_are_cropped_and_resized(pipe, world, tmp_path):
    wide = np.zeros((64, 96, 3), np.uint8)
    wide[:, 16:80] = np.asarray(Image.fromarray(world["rgb"]).resize((64, 64), Image.Resampling.NEAREST))
    path = tmp_path / "wide.png"
    Image.fromarray(wide).save(path)
    loaded = load_image(path, "rgb", SIZE)
    assert loaded.shape == (SIZE, SIZE, 3) and loaded.dtype == np.uint8
    assert np.abs(loaded.astype(int) - world["rgb"].astype(int)).mean() < 12  # centre crop, then resize back
    assert pipe.tokenize("rgb", [str(path)]).shape == (1, 16)


def test_colour_mapped_pictures_read_back(tmp_path, world):
    Image.fromarray(colorize_depth(world["depth"])).save(tmp_path / "depth.png")
    Image.fromarray(colorize_semseg(world["semseg"])).save(tmp_path / "semseg.png")
    depth = load_image(tmp_path / "depth.png", "depth", SIZE)
    assert depth.dtype == np.float32 and np.abs(depth - world["depth"]).max() <= 1 / 255 + 1e-6
    semseg = load_image(tmp_path / "semseg.png", "semseg", SIZE, num_classes=8)
    np.testing.assert_array_equal(semseg, world["semseg"])
    Image.fromarray((world["depth"] * 255).astype(np.uint8)).save(tmp_path / "grey.png")
    assert np.abs(load_image(tmp_path / "grey.png", "depth", SIZE) - world["depth"]).max() <= 1 / 255 + 1e-6


def test_unreadable_image(pipe, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(FourmError, match="cannot read image"):
        pipe.tokenize("rgb", [bad])
    with pytest.raises(FourmError, match="image file not found"):
        pipe.tokenize("depth", [tmp_path / "missing.png"])
    with pytest.raises(FourmError, match="semseg class id 9 out of range"):
        pipe.tokenize("semseg", [np.full((SIZE, SIZE), 9)])


def test_detokenized_images_have_schema_types(pipe):
    ids = torch.randint(0, 64, (2, 16), generator=torch.Generator().manual_seed(0))
    rgb = pipe.detokenize("rgb", ids)
    assert len(rgb) == 2 and rgb[0].shape == (SIZE, SIZE, 3) and rgb[0].dtype == np.uint8
    depth = pipe.detokenize("depth", ids)[0]
    assert depth.dtype == np.float32 and depth.shape == (SIZE, SIZE) and 0 <= depth.min() <= depth.max() <= 1
    semseg = pipe.detokenize("semseg", ids)[0]
    assert semseg.shape == (SIZE, SIZE) and np.issubdtype(semseg.dtype, np.integer) and semseg.max() < 8
    edges = pipe.detokenize("edges", ids)[0]
    assert edges.dtype == np.float32 and set(np.unique(edges)) <= {0.0, 1.0}
    with pytest.raises(FourmError, match="token id 64 out of range"):
        pipe.detokenize("rgb", torch.full((1, 16), 64))


# ------------------------------------------------------------------------------------------ generation


def test_generate_keeps_conditions_and_decodes_targets(pipe, world):
    pipe.autocast = True  # the default path: bf16 autocast
    try:
        result = pipe.generate({"rgb": world["rgb"], "caption": "a red circle"}, ["bboxes", "depth", "edges"], num_samples=3, seed=1, progress=False)
    finally:
        pipe.autocast = False
    assert result.conditions == ["rgb", "caption"] and result.targets == ["bboxes", "depth", "edges"]
    assert result.num_samples == 3
    assert torch.equal(result.tokens["rgb"], pipe.tokenize("rgb", [world["rgb"]]).expand(3, -1))
    caption_ids = pipe.tokenize("caption", ["a red circle"])
    n = int((caption_ids != pipe.codecs["caption"].pad).sum())
    assert torch.equal(result.tokens["caption"], caption_ids[:, :n].expand(3, -1))
    assert result.values["caption"] == ["a red circle"] * 3
    np.testing.assert_array_equal(result.values["rgb"][0], world["rgb"])
    assert result.tokens["depth"].shape == (3, 16) and result.tokens["bboxes"].shape == (3, SEQUENCE_LENGTHS["bboxes"])
    for name in result.targets:  # values are the decoded tokens
        assert len(result.values[name]) == 3
    decoded = pipe.detokenize("depth", result.tokens["depth"])
    np.testing.assert_array_equal(result.values["depth"][2], decoded[2])
    assert [p.modality for p in result.plan.targets] == ["bboxes", "depth", "edges"]
    assert result.plan.eos == pipe.codecs["caption"].eos
    assert set(result.sample(0)) == {"rgb", "caption", "bboxes", "depth", "edges"}


def test_same_seed_same_output_different_seed_different(pipe):
    def run(seed):
        return pipe.generate({"caption": "a blue square"}, ["rgb", "metadata"], num_samples=2, seed=seed, progress=False).tokens

    a, b, c = run(0), run(0), run(1)
    assert all(torch.equal(a[m], b[m]) for m in a)
    assert not torch.equal(a["rgb"], c["rgb"])
    assert not torch.equal(a["rgb"][0], a["rgb"][1])  # samples differ from each other too


def test_defaults_and_overrides(pipe):
    rgb = pipe.default_target("rgb", steps=3)
    assert (rgb.scheme, rgb.steps, rgb.schedule, rgb.temperature_schedule, rgb.guidance_scale) == ("maskgit", 3, "cosine", "linear", 1.0)
    cap = pipe.default_target("caption")
    assert (cap.scheme, cap.top_p) == ("ar", 0.9)
    with pytest.raises(FourmError, match="invalid value for .scheme."):
        pipe.default_target("rgb", scheme="diffusion")
    result = pipe.generate({}, [pipe.default_target("rgb", scheme="roar", steps=2, guidance_scale=2.0)], progress=False)
    assert result.plan.targets[0].scheme == "roar" and result.conditions == []


def test_prefixes_are_continued(pipe):
    prefix = pipe.tokenize("caption", ["a red"], prefix=True)
    result = pipe.generate({}, ["caption", "bboxes"], num_samples=2, caption_prefix="a red",
                           partial={"bboxes": "circle 0.1 0.1 0.4 0.4"}, progress=False)  # fmt: skip
    assert torch.equal(result.tokens["caption"][:, : prefix.shape[1]], prefix.expand(2, -1))
    assert all(c.startswith("a red") for c in result.values["caption"])
    box = pipe.tokenize("bboxes", ["circle 0.1 0.1 0.4 0.4"], prefix=True)  # no [EOS]: it is continued
    assert torch.equal(result.tokens["bboxes"][:, : box.shape[1]], box.expand(2, -1))


def test_token_conditions_pass_through(pipe):
    ids = torch.randint(0, 64, (1, 16), generator=torch.Generator().manual_seed(3))
    result = pipe.generate({"depth": ids}, ["rgb"], num_samples=2, progress=False)
    assert torch.equal(result.tokens["depth"], ids.expand(2, -1))
    assert result.values["depth"][0].shape == (SIZE, SIZE)


@pytest.mark.parametrize(
    "conditions, targets, kwargs, message",
    [
        ({"rgb": np.zeros((SIZE, SIZE, 3), np.uint8)}, ["rgb"], {}, "'rgb' is both a condition and a target"),
        ({"normals": "x.png"}, ["rgb"], {}, "unknown modality 'normals' \\(known: rgb, depth, semseg"),
        ({}, ["nope"], {}, "unknown modality 'nope'"),
        ({}, ["rgb"], {"partial": {"caption": "a"}}, "partial 'caption' is not a target"),
        ({"bboxes": "circle 0.1 0.1"}, ["rgb"], {}, "malformed box"),
        ({}, ["rgb", "rgb"], {}, "appears twice"),
        ({}, ["rgb"], {"num_samples": 0}, "num_samples must be >= 1"),
    ],
)
def test_generate_errors(pipe, conditions, targets, kwargs, message):
    with pytest.raises(FourmError, match=message):
        pipe.generate(conditions, targets, progress=False, **kwargs)


def test_input_only_modality_cannot_be_a_target():
    pipe = toy_pipeline(modalities=("rgb", "caption"), input_only=("caption",))
    with pytest.raises(FourmError, match="'caption' cannot be a target.*targets: rgb"):
        pipe.generate({}, ["caption"], progress=False)
    assert pipe.generate({"caption": "a red circle"}, ["rgb"], progress=False).tokens["rgb"].shape == (1, 16)


def test_precision_is_one_setting_with_the_old_autocast_spelling(bundle, monkeypatch):
    p = FourMPipeline.from_pretrained(bundle, device="cpu")
    assert p.precision == "auto" and p.autocast
    p.autocast = False
    assert p.precision == "fp32"
    p.precision = "bf16"
    assert p.autocast
    seen = []
    real = torch.autocast

    def spy(*args, **kwargs):
        seen.append(kwargs.get("dtype"))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "autocast", spy)
    p.generate({"caption": "a red circle"}, ["depth"], num_samples=1, seed=0, progress=False)
    assert torch.bfloat16 in seen  # "bf16" forces autocast even where "auto" would not
    seen.clear()
    p.precision = "fp32"
    p.generate({"caption": "a red circle"}, ["depth"], num_samples=1, seed=0, progress=False)
    assert torch.bfloat16 not in seen
    with pytest.raises(FourmError, match="precision must be one of"):
        FourMPipeline(p.model, p.codecs, p.registry, precision="half")
