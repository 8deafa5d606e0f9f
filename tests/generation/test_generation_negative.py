"""Negative conditions (a negative prompt): the unconditional guidance pass holds them, through
generate_chained, the pipeline and the CLI; one-line errors where they cannot act."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from gen_testing import random_tokens, toy_model

from fourm.cli.generate import main
from fourm.errors import FourmError
from fourm.generation import GenerationPlan, GenerationTarget, generate_chained
from fourm.generation.pipeline import FourMPipeline
from fourm.testing.bundles import build_toy_bundle


@pytest.fixture(scope="module")
def model():
    return toy_model()


def _rgb(model, conditions, scale, negative=None, temperature=0.0):
    plan = GenerationPlan(targets=[GenerationTarget("rgb", steps=4, temperature=temperature, guidance_scale=scale)])
    return generate_chained(model, conditions, plan, num_samples=2, seed=0, negative=negative)["rgb"]


def test_scale_zero_draws_from_the_negative_alone(model):
    """Guidance mixes s * cond + (1 - s) * unconditional: at s = 0 only the unconditional pass counts, so
    caption c with negative c' draws what c' alone draws (greedy), and not what c draws."""
    c, c2 = random_tokens("caption", 5, batch=1, seed=1), random_tokens("caption", 5, batch=1, seed=2)
    with_negative = _rgb(model, {"caption": c}, 0.0, negative={"caption": c2})
    assert torch.equal(with_negative, _rgb(model, {"caption": c2}, 1.0))
    assert not torch.equal(with_negative, _rgb(model, {"caption": c}, 1.0))
    assert torch.equal(_rgb(model, {"caption": c}, 0.0), _rgb(model, {}, 1.0))  # no negative: unconditional


def test_negative_equal_to_the_condition_cancels_guidance(model):
    """u = c: u + s * (c - u) = c whatever s, so the draw equals the unguided one (greedy)."""
    c = random_tokens("caption", 5, batch=1, seed=3)
    depth = random_tokens("depth", batch=1, seed=4)
    guided = _rgb(model, {"caption": c, "depth": depth}, 3.0, negative={"caption": c, "depth": depth})
    assert torch.equal(guided, _rgb(model, {"caption": c, "depth": depth}, 1.0))
    assert not torch.equal(_rgb(model, {"caption": c, "depth": depth}, 3.0), guided)


def test_negative_errors(model):
    c = random_tokens("caption", 5, batch=1, seed=1)
    with pytest.raises(FourmError, match="no target is guided"):
        _rgb(model, {"caption": c}, 1.0, negative={"caption": c})
    plan = GenerationPlan(targets=[GenerationTarget("rgb", guidance_scale=2.0), GenerationTarget("caption", scheme="ar")])
    with pytest.raises(FourmError, match="'caption' is both a negative condition and a target"):
        generate_chained(model, {}, plan, negative={"caption": c})


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return build_toy_bundle(tmp_path_factory.mktemp("toy") / "bundle", image_size=32)


def test_pipeline_and_cli_record_the_negative_prompt(bundle, tmp_path, capsys):
    pipe = FourMPipeline.from_pretrained(bundle, device="cpu")
    pipe.autocast = False
    target = pipe.default_target("rgb", guidance_scale=0.0, temperature=0.0)
    result = pipe.generate({"caption": "a red circle"}, [target], num_samples=2, negative={"caption": "a blue square"}, progress=False)
    alone = pipe.generate({"caption": "a blue square"}, [pipe.default_target("rgb", temperature=0.0)], num_samples=2, progress=False)
    assert torch.equal(result.tokens["rgb"], alone.tokens["rgb"]) and result.negative == {"caption": "a blue square"}
    with pytest.raises(FourmError, match="'rgb' is both a negative condition and a target"):
        pipe.generate({"caption": "a red circle"}, [target], negative={"rgb": result.values["rgb"][0]})
    out = tmp_path / "out"
    argv = ["--model", str(bundle), "--out", str(out), "--no-progress", "--cond", "caption=a red circle",
            "--negative", "caption=a blue square", "--target", "rgb", "--guidance", "rgb=3"]  # fmt: skip
    assert main(argv) == 0
    assert json.loads((out / "sequences.json").read_text())["negative"] == {"caption": "a blue square"}
    argv = ["--model", str(bundle), "--out", str(tmp_path / "o2"), "--no-progress", "--cond", "caption=a red circle",
            "--negative", "caption=a blue square", "--target", "bboxes"]  # fmt: skip
    assert main(argv) == 2
    assert "no target is guided" in capsys.readouterr().err


def test_batched_prompts_share_the_negative_prompt(bundle):
    """generate_batch: at guidance 0 every prompt's row is drawn from the negative alone (greedy, no
    confidence noise, so the rows do not depend on the batch's random state)."""
    pipe = FourMPipeline.from_pretrained(bundle, device="cpu")
    pipe.autocast = False
    target = pipe.default_target("rgb", guidance_scale=0.0, temperature=0.0, confidence_noise=0.0)
    prompts = [{"caption": "a red circle"}, {"caption": "a green star"}]
    result = pipe.generate_batch(prompts, [target], num_samples=2, negative={"caption": "a blue square"}, progress=False)
    plain = pipe.default_target("rgb", temperature=0.0, confidence_noise=0.0)
    alone = pipe.generate({"caption": "a blue square"}, [plain], num_samples=1, progress=False)
    assert result.tokens["rgb"].shape[0] == 4 and result.negative == {"caption": "a blue square"}
    assert all(torch.equal(row, alone.tokens["rgb"][0]) for row in result.tokens["rgb"])
