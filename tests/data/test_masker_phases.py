"""The phases of ``Masker.__call__``, each on its own: plan, first-pass budgets, sequences, grids."""

from __future__ import annotations

import numpy as np
import pytest

from fourm.data.masking import Masker, MaskingConfig, SequenceSpecialTokens
from fourm.data.masking.masker import SamplePlan

SP = SequenceSpecialTokens(pad=0, sos=1, eos=2, sentinels=list(range(3, 19)))
ORDER = ["rgb", "caption", "meta"]
KINDS = {"rgb": "image", "caption": "sequence", "meta": "vector"}


def masker(**cfg) -> Masker:
    cfg.setdefault("input_budget", 20)
    cfg.setdefault("target_budget", 16)
    return Masker(MaskingConfig.from_dict(cfg), ORDER, KINDS, SP, warn_after=None)


def tokens(caption_len: int = 6) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "rgb": rng.integers(100, 500, 16),
        "caption": np.append(rng.integers(20, 90, caption_len), SP.eos),
        "meta": rng.integers(600, 650, 4),
    }


def test_plan_in_deterministic_mode_uses_mean_shares_and_the_budgets():
    m = masker(deterministic=True, target_modalities=["rgb", "caption"], input_budget=12, target_budget=8)
    plan = m.plan(tokens(), np.random.default_rng(0))
    assert plan.in_mods == ["rgb", "caption", "meta"] and plan.tg_mods == ["rgb", "caption"]
    assert plan.in_shares == pytest.approx({"rgb": 1 / 3, "caption": 1 / 3, "meta": 1 / 3})
    assert (plan.budget_in, plan.budget_tg) == (12, 8)  # the sample's 27 tokens cover both
    assert plan.grid_in == ["rgb", "meta"] and plan.grid_tg == ["rgb"]
    small = m.plan({"rgb": tokens()["rgb"][:9]}, np.random.default_rng(0))  # 9 tokens < 12 + 8: 12:8 split
    assert (small.budget_in, small.budget_tg) == (5, 4)


def test_plan_drops_every_input_with_the_entry_probability():
    m = masker(mixture=[{"drop_inputs_probability": 1.0}])
    plan = m.plan(tokens(), np.random.default_rng(0))
    assert plan.in_mods == [] and plan.in_shares == {} and plan.grid_in == []
    assert plan.tg_mods == ORDER


def test_first_pass_budgets_leave_target_images_only_what_the_inputs_did_not_take():
    m = masker()
    plan = SamplePlan(
        ["rgb", "caption"], ["rgb", "caption"], {"rgb": 0.75, "caption": 0.25}, {"rgb": 0.5, "caption": 0.5},
        budget_in=16, budget_tg=16, grid_in=["rgb"], grid_tg=["rgb"],
    )  # fmt: skip
    b_in, b_tg = m.first_pass_budgets(tokens(), plan)
    assert b_in == {"rgb": 12, "caption": 4}
    assert b_tg == {"rgb": 4, "caption": 7}  # rgb: 16 - 12 left; caption: all 7 available again
    assert sum(b_tg.values()) <= 16


def test_mask_sequences_whole_caption_to_the_only_side_with_a_budget():
    m = masker()
    seq = tokens()
    plan = SamplePlan(
        ["caption"], ["rgb"], {"caption": 1.0}, {"rgb": 1.0}, 20, 16, grid_in=[], grid_tg=["rgb"]
    )
    enc, dec, left_in, left_tg = m.mask_sequences(
        seq, plan, {"caption": 20}, {"rgb": 16}, np.random.default_rng(0)
    )
    np.testing.assert_array_equal(enc["caption"][0], seq["caption"])
    np.testing.assert_array_equal(enc["caption"][1], np.arange(7))
    assert dec == {} and (left_in, left_tg) == (20 - 7, 16)


def test_mask_grids_draws_disjoint_sorted_positions_within_the_budgets():
    m = masker()
    seq = tokens()
    plan = SamplePlan(
        ["rgb", "meta"], ["rgb"], {"rgb": 0.5, "meta": 0.5}, {"rgb": 1.0}, 8, 6, ["rgb", "meta"], ["rgb"]
    )
    enc, dec = m.mask_grids(seq, plan, left_in=8, left_tg=6, rng=np.random.default_rng(1))
    assert set(enc) == {"rgb", "meta"} and set(dec) == {"rgb"}
    assert len(enc["rgb"][1]) + len(enc["meta"][1]) == 8 and len(dec["rgb"][2]) == 6
    pos_in, pos_tg = enc["rgb"][1], dec["rgb"][2]
    assert not set(pos_in) & set(pos_tg)
    assert list(pos_in) == sorted(pos_in) and list(pos_tg) == sorted(pos_tg)
    np.testing.assert_array_equal(enc["rgb"][0], seq["rgb"][pos_in])
    np.testing.assert_array_equal(dec["rgb"][1], seq["rgb"][pos_tg])
    assert not dec["rgb"][0].any()  # image decoder inputs are mask slots (id 0)


def test_call_is_the_composition_of_the_phases():
    m, sample = masker(), tokens()
    batch = m(sample, np.random.default_rng(5))
    rng = np.random.default_rng(5)
    plan = m.plan(sample, rng)
    b_in, b_tg = m.first_pass_budgets(sample, plan)
    seq_enc, seq_dec, left_in, left_tg = m.mask_sequences(sample, plan, b_in, b_tg, rng)
    grid_enc, grid_dec = m.mask_grids(sample, plan, left_in, left_tg, rng)
    n_enc = sum(len(p[0]) for p in {**seq_enc, **grid_enc}.values())
    n_dec = sum(len(p[1]) for p in {**seq_dec, **grid_dec}.values())
    assert int(batch.enc_valid.sum()) == n_enc and int(batch.dec_valid.sum()) == n_dec
    for m_name, (toks, pos) in {**seq_enc, **grid_enc}.items():
        keep = batch.enc_valid[0] & (batch.enc_modality[0] == ORDER.index(m_name))
        assert batch.enc_tokens[0, keep].tolist() == toks.tolist()
        assert batch.enc_position[0, keep].tolist() == pos.tolist()
