"""Generation on CUDA (skipped without a GPU): seeding, partial conditions, cache = no cache, bf16."""

import pytest
import torch
from gen_testing import random_tokens, toy_model

from fourm.generation import GenerationPlan, GenerationTarget, GivenTokens, generate_chained

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

PLAN = GenerationPlan(targets=[
    GenerationTarget("rgb", steps=4, guidance_scale=2.0),
    GenerationTarget("depth", scheme="roar", steps=3),
    GenerationTarget("caption", scheme="ar", temperature=0.0),
])


def test_chain_on_cuda_is_seeded_and_keeps_given_tokens():
    model = toy_model().to("cuda")
    rgb = GivenTokens.at(torch.tensor([3, 4]), positions=torch.tensor([1, 9]))
    a = generate_chained(model, {"rgb": rgb, "meta": torch.tensor([1, 2, 3])}, PLAN, num_samples=4, seed=0)
    b = generate_chained(model, {"rgb": rgb, "meta": torch.tensor([1, 2, 3])}, PLAN, num_samples=4, seed=0)
    c = generate_chained(
        model, {"rgb": rgb, "meta": torch.tensor([1, 2, 3])}, PLAN, num_samples=4, seed=0, use_cache=False
    )
    assert all(t.device.type == "cuda" for t in a.values())
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(a["caption"], c["caption"])
    assert a["rgb"][:, [1, 9]].tolist() == [[3, 4]] * 4


def test_cuda_bf16_autocast_runs():
    model = toy_model().to("cuda")
    out = generate_chained(model, {"depth": random_tokens("depth")}, PLAN, 2, autocast_dtype=torch.bfloat16)
    assert ((out["rgb"] >= 0) & (out["rgb"] < 32)).all()
