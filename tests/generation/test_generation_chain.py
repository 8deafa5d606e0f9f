"""Chained generation: plans, seeding, earlier outputs as conditions, partial conditions, guidance."""

import pytest
import torch
from gen_testing import PAD, random_tokens, toy_model

from fourm.errors import FourmError
from fourm.generation import (
    GenerationPlan,
    GenerationTarget,
    GivenTokens,
    SequenceDecoder,
    encoder_inputs,
    generate_chained,
    normalize_conditions,
)


@pytest.fixture(scope="module")
def model():
    return toy_model()


def rgb_then_caption(**caption):
    return GenerationPlan(targets=[
        GenerationTarget("rgb", scheme="maskgit", steps=4, temperature=1.5),
        GenerationTarget("caption", scheme="ar", temperature=0.0, **caption),
    ])


def test_outputs_shapes_ranges_and_seeding(model):
    plan = GenerationPlan(targets=[
        GenerationTarget("rgb", steps=3),
        GenerationTarget("depth", scheme="roar", steps=3, top_k=5),
        GenerationTarget("caption", scheme="ar", top_p=0.9),
        GenerationTarget("meta", steps=1),
    ])
    conditions = {}
    a = generate_chained(model, conditions, plan, num_samples=3, seed=0)
    b = generate_chained(model, conditions, plan, num_samples=3, seed=0)
    c = generate_chained(model, conditions, plan, num_samples=3, seed=1)
    assert list(a) == ["rgb", "depth", "caption", "meta"]
    assert {k: tuple(v.shape) for k, v in a.items()} == {"rgb": (3, 16), "depth": (3, 9), "caption": (3, 12), "meta": (3, 3)}
    for name, tokens in a.items():
        assert tokens.dtype == torch.long and (tokens >= 0).all()
        assert (tokens < model.config.modalities[name].vocab_size).all()
        assert torch.equal(tokens, b[name])
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_earlier_outputs_condition_later_targets(model):
    depth = random_tokens("depth")
    outs = [generate_chained(model, {"depth": depth}, rgb_then_caption(), num_samples=2, seed=s) for s in (0, 1)]
    assert not torch.equal(outs[0]["rgb"], outs[1]["rgb"])
    first_logits = []
    for out in outs:  # same caption as generating it directly from depth + the generated rgb
        direct = generate_chained(
            model, {"depth": depth, "rgb": out["rgb"]}, GenerationPlan(targets=[rgb_then_caption().targets[1]]),
            num_samples=2, seed=123,
        )
        assert torch.equal(direct["caption"], out["caption"])
        given = normalize_conditions(model.config, {"depth": depth, "rgb": out["rgb"]}, 2)
        with torch.no_grad():
            decoder = SequenceDecoder(model, "caption", encoder_inputs(model.config, given), [1.0])
            first_logits.append(decoder(torch.ones(2, 1, dtype=torch.long), torch.zeros(2, 1, dtype=torch.long)))
    assert not torch.allclose(first_logits[0], first_logits[1], atol=1e-4)  # the caption depends on the rgb


def test_partial_conditions_keep_their_tokens(model):
    rgb = GivenTokens.at(torch.tensor([7, 8, 9]), positions=torch.tensor([0, 5, 15]))
    prefix = torch.tensor([11, 12, 13])
    out = generate_chained(model, {"rgb": rgb, "caption": prefix}, rgb_then_caption(), num_samples=3, seed=0)
    assert out["rgb"][:, [0, 5, 15]].tolist() == [[7, 8, 9]] * 3
    assert out["caption"][:, :3].tolist() == [[11, 12, 13]] * 3
    full = random_tokens("rgb")
    out = generate_chained(model, {"rgb": full}, rgb_then_caption(), num_samples=1, seed=0)
    assert torch.equal(out["rgb"][0], full)  # fully given target: nothing to generate


def test_unconditional_pass_grows_with_generated_targets(model):
    calls = []
    original = model.encode

    def spy(tokens, modality, position, valid, patches=None):
        calls.append((modality.clone(), valid.clone()))
        return original(tokens, modality, position, valid, patches)

    plan = GenerationPlan(targets=[
        GenerationTarget("rgb", steps=1),
        GenerationTarget("meta", steps=1, guidance_scale=2.0),
    ])
    model.encode = spy
    try:
        for grow in (True, False):
            calls.clear()
            generate_chained(model, {"depth": random_tokens("depth")}, plan.replace(grow_unconditional=grow), 2)
            modality, valid = calls[-1]  # the meta step: 2 passes x 2 samples
            assert modality.shape[0] == 4
            cond_mods = set(modality[:2][valid[:2]].tolist())
            uncond_mods = set(modality[2:][valid[2:]].tolist())
            assert cond_mods == {0, 1}  # rgb (generated) + depth (given)
            assert uncond_mods == ({0} if grow else set())
    finally:
        del model.encode


def test_bf16_autocast_and_model_mode_restored(model):
    model.train()
    try:
        out = generate_chained(model, {"depth": random_tokens("depth")}, rgb_then_caption(), 2, seed=0,
                               autocast_dtype=torch.bfloat16)
        assert model.training
    finally:
        model.eval()
    assert ((out["rgb"] >= 0) & (out["rgb"] < 32)).all() and out["caption"].shape == (2, 12)


def test_eos_ends_captions_and_pads(model):
    rgb = random_tokens("rgb", batch=3, seed=4)
    target = GenerationTarget("caption", scheme="ar", temperature=0.0)
    free = generate_chained(model, {"rgb": rgb}, GenerationPlan(targets=[target], eos=None), 3)["caption"]
    eos = int(free[0, 2])  # greedy decoding is deterministic: declare a token the model emits as [EOS]
    out = generate_chained(model, {"rgb": rgb}, GenerationPlan(targets=[target], eos=eos, pad=PAD), 3)["caption"]
    for b in range(3):
        hits = (free[b] == eos).nonzero().flatten().tolist()
        end = hits[0] + 1 if hits else 12
        assert torch.equal(out[b, :end], free[b, :end])
        assert (out[b, end:] == PAD).all()
    assert (out[0, 3:] == PAD).all()


def test_plan_from_yaml_and_errors(model, tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text("targets:\n  - {modality: rgb, steps: 4, guidance_scale: 2.0}\n  - {modality: caption, scheme: ar}\neos: null\n")
    plan = GenerationPlan.from_file(path)
    assert plan.targets[0].guidance_scale == 2.0 and plan.targets[1].scheme == "ar" and plan.eos is None
    plan.check(model.config)
    bad = [
        ({"targets": [{"modality": "rgb", "scheme": "ar"}]}, "scheme 'ar' does not apply"),
        ({"targets": [{"modality": "caption"}]}, "scheme 'maskgit' does not apply"),
        ({"targets": [{"modality": "rgbb"}]}, "unknown modality 'rgbb'"),
        ({"targets": [{"modality": "caption", "scheme": "ar", "max_length": 40}]}, "max_length 40 exceeds"),
    ]
    for data, match in bad:
        with pytest.raises(FourmError, match=match):
            GenerationPlan.from_dict(data).check(model.config)
    with pytest.raises(FourmError, match="'rgb' appears twice"):
        GenerationPlan.from_dict({"targets": [{"modality": "rgb"}, {"modality": "rgb"}]})
    with pytest.raises(FourmError, match="no targets"):
        GenerationPlan(targets=[])
    with pytest.raises(FourmError, match="unknown config field 'targets.stpes'|unknown config field 'targets\\[0\\].stpes'"):
        GenerationPlan.from_dict({"targets": [{"modality": "rgb", "stpes": 3}]})
    with pytest.raises(FourmError, match="target 'rgb': top_p must be in"):
        GenerationTarget("rgb", top_p=0.0)
    with pytest.raises(FourmError, match="target 'rgb': give either a guidance scale"):
        GenerationTarget("rgb", guidance_scale=2.0, guidance_weights={"depth": 1.0})
    with pytest.raises(FourmError, match="num_samples must be >= 1"):
        generate_chained(model, {}, plan, num_samples=0)
