"""The shipped default model (models/world-default) loads, fits the size budget and generates."""

import numpy as np
import pytest
import torch

from fourm.data.world import render_sample
from fourm.generation.conditions import GivenTokens
from fourm.generation.pipeline import DEFAULT_BUNDLE, FourMPipeline
from fourm.generation.rerank import log_likelihood


@pytest.fixture(scope="module")
def pipe():
    return FourMPipeline.from_pretrained(DEFAULT_BUNDLE, device="cpu")


def test_bundle_is_at_most_40_mb():
    shipped = [p for p in DEFAULT_BUNDLE.rglob("*") if p.is_file() and "caption_embedding" not in p.parts]
    assert sum(p.stat().st_size for p in shipped) <= 40e6


def test_rgb_tokenizer_reconstructs_a_world_scene(pipe):
    rgb = render_sample(index=5, seed=123)["rgb"]
    back = pipe.detokenize("rgb", pipe.tokenize("rgb", [rgb]))[0]
    mse = np.mean((back.astype(np.float64) - rgb.astype(np.float64)) ** 2)
    assert 10 * np.log10(255.0**2 / mse) > 24.0  # PSNR in dB (the val split averages ~30 dB)


def test_chained_generation_from_a_caption(pipe):
    result = pipe.generate({"caption": "a small red circle"}, ["rgb", "semseg"], num_samples=2, seed=1, progress=False)
    for rgb, seg in zip(result.values["rgb"], result.values["semseg"]):
        assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
        assert seg.shape == (64, 64) and 0 <= seg.min() and seg.max() < 8
    again = pipe.generate({"caption": "a small red circle"}, ["rgb", "semseg"], num_samples=2, seed=1, progress=False)
    assert np.array_equal(np.stack(again.values["rgb"]), np.stack(result.values["rgb"]))


def test_reranked_boxes_are_reported_as_kept(pipe):
    caption = "a small red circle to the left of a large blue square"
    target = pipe.default_target("bboxes", candidates=4)
    result = pipe.generate({"caption": caption}, [target], num_samples=3, seed=0, progress=False)
    decoded = pipe.codec("bboxes").decode(result.tokens["bboxes"])
    assert result.values["bboxes"] == decoded  # values and parse failures describe the kept candidate
    assert all(len(boxes) >= 1 for boxes in decoded)


def test_boxes_from_an_image_draw_once_where_nothing_reranks(pipe):
    """The bundle's best-of-8 boxes are for a caption to check them; from an image read as pixels alone
    nothing can, so one draw is made (with a warning), the same as asking for one."""
    rgb = render_sample(index=7, seed=123)["rgb"]
    assert pipe.default_target("bboxes").candidates > 1
    with pytest.warns(UserWarning, match="one draw instead of"):
        result = pipe.generate({"rgb": rgb}, ["bboxes", "caption"], num_samples=2, seed=3, progress=False)
    single = pipe.default_target("bboxes", candidates=1)
    again = pipe.generate({"rgb": rgb}, [single, "caption"], num_samples=2, seed=3, progress=False)
    assert result.values["bboxes"] == again.values["bboxes"]
    assert result.values["caption"] == again.values["caption"]
    assert all(len(boxes) >= 1 for boxes in result.values["bboxes"])


def test_cli_prints_the_warning_as_one_line(tmp_path, capsys):
    from PIL import Image

    from fourm.cli.generate import main

    image = tmp_path / "scene.png"
    Image.fromarray(render_sample(index=7, seed=123)["rgb"]).save(image)
    args = ["--cond", f"rgb={image}", "--target", "bboxes", "--out", str(tmp_path / "out"), "--no-progress"]
    assert main(["--model", str(DEFAULT_BUNDLE), *args]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err == ["warning: target 'bboxes': one draw instead of 8 candidates: no given condition that "
                   "the model predicts can rerank them (set rerank_by to name one)"]  # fmt: skip


def test_image_candidates_are_checked_through_their_pixels(pipe):
    """The shipped defaults draw rgb several times and keep the draw whose pixels explain the caption
    best; reading pixels, the model finds a scene's caption likelier from its own image than from
    another scene's (the verifier that choice relies on)."""
    assert pipe.default_target("rgb").candidates > 1
    assert set(pipe.candidate_readers(["bboxes", "rgb", "semseg"])) == {"rgb"}
    scenes = [render_sample(index=i, seed=123) for i in (11, 12, 13)]
    plan = pipe.plan(["caption"])
    captions = GivenTokens.sequence(pipe.tokenize("caption", [s["caption"] for s in scenes]), eos=plan.eos, pad=plan.pad)
    table = []
    with torch.no_grad():
        for scene in scenes:  # row: the image; column: the caption
            pixels = GivenTokens.patches(pipe.tokenize("rgb_pixels", [scene["rgb"]] * len(scenes)))
            table.append(log_likelihood(pipe.model, {"rgb_pixels": pixels}, "caption", captions, plan.sos))
    table = torch.stack(table)  # (images, captions)
    assert bool((table.argmax(dim=0) == torch.arange(len(scenes))).all()), table
