"""Continuous targets (value_dim > 0) in the generation pipeline: FourMPipeline.generate /
generate_chained with the value head (regression and diffusion), a generated vector conditioning a
later target, bundles, the generate CLI's JSON output, retrieval, and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fourm.cli.generate import main
from fourm.codecs import ValueCodec
from fourm.errors import FourmError
from fourm.generation.chain import GenerationPlan, GenerationTarget, generate_chained
from fourm.generation.conditions import GivenTokens
from fourm.generation.pipeline import FourMPipeline
from fourm.generation.regress import regress_vector
from fourm.generation.sampling import make_generator
from fourm.modalities import ModalityRegistry, ModalitySpec
from fourm.retrieval import RegressedEmbedder
from fourm.testing.bundles import toy_model, toy_pipeline

CAPTION = "a red circle"


@pytest.fixture(scope="module")
def pipe() -> FourMPipeline:
    """rgb + caption (toy tokenizers) + vec (2 x 3 floats, linear head) + vec_dh (4 floats, diffusion
    head, target only); fp32, random weights (the zero-initialised diffusion output layer perturbed)."""
    base = toy_pipeline(modalities=("rgb", "caption"))
    specs = [
        *base.registry.values(),
        ModalitySpec(name="vec", kind="vector", vocab_size=1, num_tokens=2, value_dim=3),
        ModalitySpec(name="vec_dh", kind="vector", vocab_size=1, num_tokens=1, value_dim=4, input=False,
                     value_head="diffusion", value_scale=2.0),
    ]  # fmt: skip
    registry = ModalityRegistry(specs)
    model = toy_model(registry, seed=0)
    with torch.no_grad():
        model.output_weight.mul_(20.0)  # peaked token distributions: the conditions show in the samples
        model.value_heads["vec_dh"].out.weight.normal_(std=0.5)
    out = FourMPipeline(model, dict(base.codecs), registry)
    out.precision = "fp32"
    return out


def _caption_ids(pipe: FourMPipeline) -> torch.Tensor:
    """The caption's ids up to and including [EOS], as the pipeline gives them to the model."""
    ids = pipe.tokenize("caption", [CAPTION])[0]
    return ids[: int((ids == pipe.codecs["caption"].eos).nonzero()[0]) + 1]


def test_pipeline_vector_is_regress_vector(pipe):
    assert isinstance(pipe.codecs["vec"], ValueCodec) and pipe.default_target("vec").scheme == "value"
    result = pipe.generate({"caption": CAPTION}, ["vec"], num_samples=2, progress=False)
    expected = regress_vector(pipe.model, {"caption": _caption_ids(pipe)}, "vec", num_samples=2)  # (2, 6)
    assert result.tokens["vec"].shape == (2, 6) and result.tokens["vec"].dtype == torch.float32
    torch.testing.assert_close(result.tokens["vec"], expected)
    assert isinstance(result.values["vec"][1], np.ndarray)
    np.testing.assert_allclose(result.values["vec"][1], expected[1].numpy(), rtol=1e-6)


def test_diffusion_target_samples_with_its_steps(pipe):
    target = pipe.default_target("vec_dh", steps=3)
    a = pipe.generate({"caption": CAPTION}, [target], seed=5, progress=False).tokens["vec_dh"]
    expected = regress_vector(
        pipe.model, {"caption": _caption_ids(pipe)}, "vec_dh", steps=3, generator=make_generator(5)
    )
    torch.testing.assert_close(a, expected)
    other = pipe.generate(
        {"caption": CAPTION}, [pipe.default_target("vec_dh", steps=1)], seed=5, progress=False
    )
    assert not torch.allclose(a, other.tokens["vec_dh"])  # the steps reach the sampler
    assert pipe.default_target("vec_dh").steps == 20


def test_a_later_target_is_conditioned_on_the_generated_vector(pipe):
    model, ids = pipe.model, _caption_ids(pipe)
    rgb = pipe.default_target("rgb", steps=4)
    plan = GenerationPlan(targets=[GenerationTarget("vec", scheme="value"), rgb])
    out = generate_chained(model, {"caption": ids}, plan, num_samples=3, seed=1)
    vec = regress_vector(model, {"caption": ids}, "vec", num_samples=3)
    torch.testing.assert_close(out["vec"], vec)
    rgb_plan = GenerationPlan(targets=[rgb])
    given = generate_chained(model, {"caption": ids, "vec": vec}, rgb_plan, num_samples=3, seed=1)["rgb"]
    assert torch.equal(out["rgb"], given)  # the vector is a condition of rgb, exactly as if given
    other = generate_chained(model, {"caption": ids, "vec": -vec * 5}, rgb_plan, num_samples=3, seed=1)["rgb"]
    assert not torch.equal(out["rgb"], other)  # and the model reads it
    result = pipe.generate({"caption": CAPTION}, ["vec", rgb], num_samples=3, seed=1, progress=False)
    assert torch.equal(result.tokens["rgb"], out["rgb"]) and len(result.values["rgb"]) == 3


def test_a_raw_vector_condition(pipe):
    vec = [0.5, -1.0, 2.0, 0.0, 1.5, -0.5]
    rgb = pipe.default_target("rgb", steps=4)
    result = pipe.generate({"vec": vec}, [rgb], num_samples=2, seed=2, progress=False)
    plan = GenerationPlan(targets=[rgb])
    direct = generate_chained(pipe.model, {"vec": torch.tensor(vec)}, plan, num_samples=2, seed=2)["rgb"]
    assert torch.equal(result.tokens["rgb"], direct)
    np.testing.assert_array_equal(result.values["vec"][0], np.array(vec, dtype=np.float32))
    torch.testing.assert_close(result.tokens["vec"], torch.tensor([vec, vec]))
    batch = pipe.generate_batch([{"vec": vec}], [rgb], num_samples=2, seed=2, progress=False)
    assert torch.equal(batch.tokens["rgb"], direct)


def test_bundle_round_trip_and_cli_json(pipe, tmp_path, capsys):
    root = pipe.save_pretrained(tmp_path / "bundle")
    loaded = FourMPipeline.from_pretrained(root, device="cpu")
    assert (
        isinstance(loaded.codecs["vec_dh"], ValueCodec)
        and loaded.model.value_heads["vec_dh"].prediction_type == "v_prediction"
    )
    out = tmp_path / "out"
    args = ["--model", str(root), "--out", str(out), "--no-progress", "--fp32", "--cond", f"caption={CAPTION}",
            "--target", "vec", "vec_dh", "rgb", "--steps", "vec_dh=3", "--steps", "rgb=4", "--num-samples", "2"]  # fmt: skip
    assert main(args) == 0
    info = json.loads((out / "sequences.json").read_text())
    expected = pipe.generate({"caption": CAPTION}, ["vec", pipe.default_target("vec_dh", steps=3), pipe.default_target("rgb", steps=4)],
                             num_samples=2, seed=0, progress=False)  # fmt: skip
    for i in range(2):
        np.testing.assert_allclose(info["samples"][i]["vec"], expected.values["vec"][i], rtol=1e-5)
        np.testing.assert_allclose(
            info["samples"][i]["vec_dh"], expected.values["vec_dh"][i], rtol=1e-5, atol=1e-6
        )
    assert (out / "sample_000" / "rgb.png").is_file()
    vec_file = tmp_path / "v.npy"
    np.save(vec_file, np.arange(6, dtype=np.float32))
    assert (
        main(
            [
                "--model",
                str(root),
                "--out",
                str(tmp_path / "o2"),
                "--no-progress",
                "--cond",
                f"vec={vec_file}",
                "--target",
                "caption",
            ]
        )
        == 0
    )
    info = json.loads((tmp_path / "o2" / "sequences.json").read_text())
    assert info["samples"][0]["vec"] == list(range(6)) and isinstance(info["samples"][0]["caption"], str)
    capsys.readouterr()


def test_regressed_retrieval_matches_the_pipeline(pipe):
    ids = _caption_ids(pipe)
    emb = RegressedEmbedder(pipe.model, "vec", batch_size=2, autocast=False)
    keys = emb([{"caption": ids}, {"caption": ids[:2]}])
    generated = pipe.generate({"caption": CAPTION}, ["vec"], progress=False).tokens["vec"]
    torch.testing.assert_close(keys[0], F.normalize(generated[0], dim=-1), rtol=1e-4, atol=1e-5)
    # an item holding a continuous modality (the generated vector) as input
    item = {"vec": GivenTokens.continuous(generated.reshape(1, 2, 3))}
    got = RegressedEmbedder(pipe.model, "vec_dh", steps=2, batch_size=1, autocast=False)([item])
    direct = regress_vector(pipe.model, {"vec": generated}, "vec_dh", steps=2, generator=make_generator(0))
    torch.testing.assert_close(got[0], F.normalize(direct[0], dim=-1), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "targets, conditions, message",
    [
        (
            [GenerationTarget("vec", scheme="maskgit")],
            {},
            "target 'vec' is continuous (value_dim 3): scheme 'maskgit' does not apply (expected value)",
        ),
        (
            [GenerationTarget("rgb", scheme="value")],
            {},
            "scheme 'value' is for continuous modalities (expected maskgit or roar)",
        ),
        ([GenerationTarget("vec", scheme="value", guidance_scale=2.0)], {}, "guidance is not supported"),
        ([GenerationTarget("vec", scheme="value", candidates=2)], {}, "candidates 2 cannot be reranked"),
        (
            [GenerationTarget("vec_dh", scheme="value", steps=5000)],
            {},
            "diffusion steps must be in 1..1000, got 5000",
        ),
        (["rgb"], {"vec": [1.0, 2.0]}, "vec: expected 6 finite floats (2 x 3), got shape (2,)"),
        (["rgb"], {"vec": "not a vector"}, "vec: expected 6 floats"),
        (["vec"], {"vec": [0.0] * 6}, "'vec' is both a condition and a target"),
        (["rgb"], {"vec_dh": [0.0] * 4}, "cannot be a condition"),
    ],
)
def test_bad_requests_are_one_line_errors(pipe, targets, conditions, message):
    with pytest.raises(FourmError) as info:
        pipe.generate(conditions, targets, progress=False)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_bad_chain_inputs_are_one_line_errors(pipe):
    plan = GenerationPlan(targets=[GenerationTarget("vec", scheme="value")])
    with pytest.raises(FourmError, match=r"condition 'vec' must be 2 x 3 float values, got shape \(5,\)"):
        generate_chained(
            pipe.model, {"vec": torch.zeros(5)}, GenerationPlan(targets=[GenerationTarget("rgb")])
        )
    with pytest.raises(FourmError, match="cannot also be a condition"):
        generate_chained(pipe.model, {"vec": torch.zeros(6)}, plan)
    with pytest.raises(FourmError, match="values must be finite"):
        generate_chained(
            pipe.model,
            {"vec": torch.full((6,), float("nan"))},
            GenerationPlan(targets=[GenerationTarget("rgb")]),
        )
    with pytest.raises(FourmError, match="rerank_by 'vec' is not a modality the model predicts"):
        GenerationPlan(targets=[GenerationTarget("rgb", candidates=2, rerank_by=["vec"])]).check(
            pipe.model.config
        )
