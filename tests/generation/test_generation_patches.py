"""Patch modalities as generation conditions: packing, encoder-row operations, the pipeline."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fourm.core.patches import patchify
from fourm.data.world import render_sample
from fourm.errors import FourmError
from fourm.generation.bundle import REGISTRY_FILE
from fourm.generation.conditions import EncoderInputs, GivenTokens, encoder_inputs, normalize_conditions
from fourm.generation.pipeline import FourMPipeline
from fourm.testing.bundles import toy_pipeline

SIZE = 32


@pytest.fixture(scope="module")
def pipe() -> FourMPipeline:
    pipe = toy_pipeline(image_size=SIZE, modalities=("rgb", "depth", "caption"), rgb_pixels=True)
    pipe.autocast = False
    return pipe


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return render_sample(index=3, seed=0)["rgb"][::2, ::2].copy()  # (32, 32, 3)


def test_patch_condition_is_packed_at_its_slots(pipe, image):
    config = pipe.model.config
    patches = torch.from_numpy(patchify(image, 8))  # (16, 192)
    caption = torch.tensor([5, 6, 2])
    given = normalize_conditions(config, {"caption": caption, "rgb_pixels": patches.reshape(-1)}, 2)
    enc = encoder_inputs(config, given)
    pix = config.modality_index("rgb_pixels")
    assert enc.patches.shape == (2, 3 + 16, config.patch_width)
    at_pix = enc.modality == pix
    assert int(at_pix[0].sum()) == 16 and bool((enc.tokens[at_pix] == 0).all())
    for row in range(2):
        torch.testing.assert_close(enc.patches[row][at_pix[row]], patches[enc.position[row][at_pix[row]]])
        assert int(enc.patches[row][~at_pix[row]].abs().sum()) == 0


def test_row_operations_keep_patches_aligned(pipe, image):
    """compact / repeat / stack / cat move each slot's patch with its token (naive reference)."""
    config = pipe.model.config
    patches = torch.from_numpy(patchify(image, 8))
    given = normalize_conditions(config, {"rgb_pixels": GivenTokens.patches(patches[[3, 9]], torch.tensor([3, 9]))}, 1)
    enc = encoder_inputs(config, given)
    enc.valid[0, 0] = False  # a hole: compact moves the second slot to the front
    other = encoder_inputs(config, normalize_conditions(config, {"caption": torch.tensor([7, 2])}, 1))
    rows = EncoderInputs.stack([enc.compact(), other.cat(enc)]).repeat(2)
    assert rows.patches.shape[:2] == rows.tokens.shape
    pix = config.modality_index("rgb_pixels")
    for r in range(rows.batch_size):
        for n in range(rows.width):
            if rows.valid[r, n] and rows.modality[r, n] == pix:
                torch.testing.assert_close(rows.patches[r, n], patches[int(rows.position[r, n])])
            elif rows.valid[r, n]:
                assert int(rows.patches[r, n].abs().sum()) == 0
    assert int((rows.valid & (rows.modality == pix)).sum()) == 4  # one kept slot per row x 4 rows


def test_patch_condition_errors(pipe):
    config = pipe.model.config
    with pytest.raises(FourmError, match="16 patches of 192 values"):
        normalize_conditions(config, {"rgb_pixels": torch.zeros(15, 192, dtype=torch.uint8)}, 1)
    with pytest.raises(FourmError, match="patch modality: expected patches"):
        normalize_conditions(config, {"rgb_pixels": GivenTokens.at(torch.zeros(16, dtype=torch.long))}, 1)
    with pytest.raises(FourmError, match="not a patch modality"):
        normalize_conditions(config, {"depth": GivenTokens.patches(torch.zeros(16, 192, dtype=torch.uint8))}, 1)


def test_a_given_image_is_read_as_patches(pipe, image):
    assert pipe.image_inputs == "patches"  # as the model's image -> X tasks are trained (4M)
    assert pipe.with_patch_conditions({"rgb": image}) == {"rgb_pixels": image}
    pipe.image_inputs = "both"
    try:
        assert pipe.with_patch_conditions({"rgb": image}) == {"rgb": image, "rgb_pixels": image}
    finally:
        pipe.image_inputs = "patches"
    ids = torch.zeros(1, 16, dtype=torch.long)  # token ids are not pixels: no patches from them, kept
    assert set(pipe.with_patch_conditions({"rgb": ids})) == {"rgb"}
    given_both = {"rgb": image, "rgb_pixels": image[::-1]}  # both given by the caller: kept as given
    assert pipe.with_patch_conditions(given_both) == given_both
    with pytest.raises(FourmError, match="invalid image_inputs 'tokens' \\(expected patches or both\\)"):
        pipe.image_inputs = "tokens"


def test_generation_reads_the_pixels(pipe, image):
    """Same seed: a given image is generated from exactly as its patches alone; feeding its tokens too
    ("both") or its tokens alone changes the generated depth."""
    kw = dict(num_samples=2, seed=0, progress=False, decode=False)
    read = pipe.generate({"rgb": image}, ["depth"], **kw)
    assert set(read.conditions) == {"rgb_pixels"}
    pixels = pipe.generate({"rgb_pixels": image}, ["depth"], **kw)
    assert torch.equal(read.tokens["depth"], pixels.tokens["depth"]) and pixels.tokens["depth"].shape == (2, 16)
    pipe.image_inputs = "both"
    try:
        both = pipe.generate({"rgb": image}, ["depth"], **kw)
    finally:
        pipe.image_inputs = "patches"
    assert set(both.conditions) == {"rgb", "rgb_pixels"}
    tokens = pipe.generate({"rgb": pipe.tokenize("rgb", [image])}, ["depth"], **kw)
    assert not torch.equal(both.tokens["depth"], pixels.tokens["depth"])
    assert not torch.equal(both.tokens["depth"], tokens.tokens["depth"])


def test_patch_codec_round_trip(pipe, image):
    patches = pipe.tokenize("rgb_pixels", [image, image[::-1]])
    assert patches.shape == (2, 16, 192) and patches.dtype == torch.uint8
    back = pipe.detokenize("rgb_pixels", patches)
    np.testing.assert_array_equal(back[0], image)
    np.testing.assert_array_equal(back[1], image[::-1])


def test_bundle_saves_and_loads_the_patch_modality(pipe, tmp_path, image):
    root = pipe.save_pretrained(tmp_path / "bundle")
    specs = json.loads((root / REGISTRY_FILE).read_text())
    assert specs["rgb_pixels"]["patch_size"] == 8 and specs["rgb_pixels"].get("tokenizer") is None
    assert not (root / "tokenizers" / "rgb_pixels").exists()
    loaded = FourMPipeline.from_pretrained(root, device="cpu")
    loaded.autocast = False
    a = pipe.generate({"rgb": image}, ["depth"], seed=1, progress=False, decode=False)
    b = loaded.generate({"rgb": image}, ["depth"], seed=1, progress=False, decode=False)
    torch.testing.assert_close(a.tokens["depth"], b.tokens["depth"])


def test_generate_cli_image_inputs(pipe, tmp_path, image, capsys):
    """generate.py --cond rgb=IMAGE: the image is read as rgb_pixels alone (saved as the condition's
    picture), or with its rgb tokens too under --image-inputs both; a bad choice is refused."""
    from PIL import Image

    from fourm.cli.generate import main

    bundle = pipe.save_pretrained(tmp_path / "bundle")
    path = tmp_path / "in.png"
    Image.fromarray(image).save(path)
    base = ["--model", str(bundle), "--cond", f"rgb={path}", "--target", "depth", "--steps", "depth=2",
            "--device", "cpu", "--no-progress"]
    assert main([*base, "--out", str(tmp_path / "a")]) == 0
    assert json.loads((tmp_path / "a" / "sequences.json").read_text())["conditions"] == ["rgb_pixels"]
    saved = np.asarray(Image.open(tmp_path / "a" / "sample_000" / "rgb_pixels.png").convert("RGB"))
    np.testing.assert_array_equal(saved, image)  # the given image, shown as the condition
    assert main([*base, "--image-inputs", "both", "--out", str(tmp_path / "b")]) == 0
    assert json.loads((tmp_path / "b" / "sequences.json").read_text())["conditions"] == ["rgb", "rgb_pixels"]
    assert main([*base, "--image-inputs", "tokens", "--out", str(tmp_path / "c")]) == 2
    assert "invalid choice: 'tokens'" in capsys.readouterr().err and not (tmp_path / "c").exists()


def test_generate_cli_generated_image_inputs(pipe, tmp_path, capsys):
    """generate.py --generated-image-inputs: the depth drawn after a generated rgb reads its tokens
    (default) or its pixel patches, which changes the depth (same seed, same rgb); a bad choice is refused."""
    from fourm.cli.generate import main

    bundle = pipe.save_pretrained(tmp_path / "bundle")
    base = ["--model", str(bundle), "--cond", "caption=a red circle", "--target", "rgb", "depth", "--steps", "rgb=2",
            "--steps", "depth=2", "--device", "cpu", "--no-progress", "--precision", "fp32"]
    pictures = {}
    for how in ("tokens", "patches"):
        assert main([*base, "--generated-image-inputs", how, "--out", str(tmp_path / how)]) == 0
        pictures[how] = {m: (tmp_path / how / "sample_000" / f"{m}.png").read_bytes() for m in ("rgb", "depth")}
        recorded = json.loads((tmp_path / how / "sequences.json").read_text())["image_reading"]
        assert recorded == {"image_inputs": "patches", "generated_image_inputs": how}
    assert pictures["tokens"]["rgb"] == pictures["patches"]["rgb"]
    assert pictures["tokens"]["depth"] != pictures["patches"]["depth"]
    assert main([*base, "--generated-image-inputs", "pixels", "--out", str(tmp_path / "bad")]) == 2
    assert "invalid choice: 'pixels'" in capsys.readouterr().err and not (tmp_path / "bad").exists()
