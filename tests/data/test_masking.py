"""4M masking: Dirichlet budgets, mixture, disjoint image masks, packed rows, seeding, collate, configs."""

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader

from fourm.data.masking import (
    MaskedDataset,
    Masker,
    MaskingConfig,
    SequenceSpecialTokens,
    allocate,
    collate,
    dirichlet_budgets,
    make_rng,
    unmask_spans,
)
from fourm.errors import FourmError

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "masking"
SP = SequenceSpecialTokens(pad=0, sos=1, eos=2, sentinels=list(range(3, 19)))
ORDER = ["rgb", "depth", "caption", "meta"]
KINDS = {"rgb": "image", "depth": "image", "caption": "sequence", "meta": "vector"}


def make_sample(rng: np.random.Generator, caption_len: int = 12, drop: tuple[str, ...] = ()) -> dict:
    sample = {
        "rgb": torch.from_numpy(rng.integers(0, 500, 64)),  # 8x8 grid
        "depth": torch.from_numpy(rng.integers(0, 500, 64)),
        "caption": torch.from_numpy(np.append(rng.integers(20, 900, caption_len), SP.eos)),
        "meta": torch.from_numpy(rng.integers(0, 50, 6)),
    }
    return {k: v for k, v in sample.items() if k not in drop}


def masker(**cfg) -> Masker:
    cfg.setdefault("input_budget", 48)
    cfg.setdefault("target_budget", 40)
    return Masker(MaskingConfig.from_dict(cfg), ORDER, KINDS, SP)


def parts(batch, side: str, modality: str):
    """Valid tokens of one modality on one side: (tokens or (input, target), positions)."""
    mod = ORDER.index(modality)
    if side == "enc":
        keep = batch.enc_valid[0] & (batch.enc_modality[0] == mod)
        return batch.enc_tokens[0, keep], batch.enc_position[0, keep]
    keep = batch.dec_valid[0] & (batch.dec_modality[0] == mod)
    return (batch.dec_input[0, keep], batch.dec_target[0, keep]), batch.dec_position[0, keep]


def same_batch(a, b) -> bool:
    """Every field equal (``enc_patches`` may be None on both)."""
    return all(
        (x is None and y is None) or (x is not None and y is not None and torch.equal(x, y))
        for x, y in ((getattr(a, f), getattr(b, f)) for f in vars(a))
    )


# ---- budgets ---------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    total=st.integers(0, 300),
    data=st.lists(
        st.tuples(st.floats(0, 1), st.integers(0, 200), st.integers(0, 30), st.integers(0, 250)),
        min_size=1,
        max_size=6,
    ),
)
def test_allocate_sums_exactly_and_respects_limits(total, data):
    shares, avail, mins, maxs = (np.array(c) for c in zip(*data))
    mins = np.minimum(mins, maxs)
    if mins.sum() > total:
        mins = np.zeros_like(mins)
    out = allocate(total, shares, avail, mins, maxs)
    cap = np.minimum(avail, maxs)
    lo = np.minimum(mins, cap)
    assert (out >= lo).all() and (out <= cap).all()
    can_take = lo.sum() + (cap - lo)[shares > 1e-12 * shares.sum()].sum()
    assert out.sum() == min(total, can_take)


def test_allocate_redistributes_and_is_proportional():
    assert allocate(10, np.array([0.5, 0.5]), np.array([3, 100])).tolist() == [3, 7]
    assert allocate(60, np.array([1, 2, 3]) / 6, np.array([99, 99, 99])).tolist() == [10, 20, 30]
    # min for the second modality, max on the third: the first takes the rest
    out = allocate(
        100, np.array([0.5, 0.0, 0.5]), np.array([99, 99, 99]), np.array([0, 20, 0]), np.array([99, 99, 10])
    )
    assert out.tolist() == [70, 20, 10]


def test_dirichlet_shares_follow_alpha():
    rng = np.random.default_rng(0)
    alphas = np.array([1.0, 2.0, 5.0])
    draws = np.stack([dirichlet_budgets(128, alphas, np.full(3, 1000), rng) for _ in range(3000)])
    assert (draws.sum(1) == 128).all()
    np.testing.assert_allclose(draws.mean(0) / 128, alphas / alphas.sum(), atol=0.015)
    # smaller alpha = peakier splits (same mean, larger variance)
    peaky = np.stack([dirichlet_budgets(128, np.full(3, 0.2), np.full(3, 1000), rng) for _ in range(2000)])
    flat = np.stack([dirichlet_budgets(128, np.full(3, 5.0), np.full(3, 1000), rng) for _ in range(2000)])
    assert peaky.std(0).min() > 2 * flat.std(0).max()
    assert dirichlet_budgets(128, alphas, np.full(3, 1000), None).tolist() == [16, 32, 80]


# ---- masker ----------------------------------------------------------------------------------------


def test_mixture_weights_honoured():
    m = masker(
        mixture=[{"name": "a", "weight": 1.0}, {"name": "b", "weight": 3.0}, {"name": "c", "weight": 6.0}]
    )
    rng = np.random.default_rng(0)
    names = [m.pick_entry(rng).name for _ in range(5000)]
    freqs = [names.count(n) / len(names) for n in "abc"]
    np.testing.assert_allclose(freqs, [0.1, 0.3, 0.6], atol=0.02)


def test_mixture_entry_controls_the_split():
    m = masker(
        mixture=[
            {"name": "rgb_to_all", "weight": 1.0, "input_alpha": 0.0, "input_alphas": {"rgb": 1.0}},
            {"name": "all", "weight": 1.0},
        ]
    )
    only_rgb = 0
    for i in range(400):
        b = m(make_sample(np.random.default_rng(i)), make_rng(0, 0, i))
        assert b.enc_valid.sum() == 48
        only_rgb += bool((b.enc_modality[0, b.enc_valid[0]] == 0).all())
    assert 0.4 < only_rgb / 400 < 0.6  # rgb_to_all drawn half of the time (all-to-all ~never rgb-only)


@pytest.mark.parametrize("cfg", ["all_to_all.yaml", "mixture.yaml", "eval_fixed.yaml"])
def test_packed_rows_match_the_sample(cfg):
    config = MaskingConfig.from_file(CONFIGS / cfg).replace(input_budget=48, target_budget=40)
    m = Masker(config, ORDER, KINDS, SP)
    for i in range(150):
        rng = np.random.default_rng(i)
        drop = tuple(k for k in ORDER if rng.random() < 0.25)
        if len(drop) == len(ORDER):
            drop = drop[1:]
        sample = make_sample(rng, caption_len=int(rng.integers(0, 30)), drop=drop)
        b = m(sample, make_rng(7, 0, i))
        assert b.enc_tokens.shape == (1, 48) and b.dec_target.shape == (1, 40)
        n_enc, n_dec = int(b.enc_valid.sum()), int(b.dec_valid.sum())
        assert b.enc_valid[0, :n_enc].all() and b.dec_valid[0, :n_dec].all()  # valid tokens first
        grid_tokens = sum(len(sample[k]) for k in ("rgb", "depth", "meta") if k in sample)
        if grid_tokens >= 48 + 40:
            assert (n_enc, n_dec) == (48, 40)  # budgets used exactly when there is enough
        present_mods = {ORDER.index(k) for k in sample}
        assert set(b.enc_modality[0, b.enc_valid[0]].tolist()) <= present_mods
        for mod in sample:
            toks, pos = parts(b, "enc", mod)
            (dec_in, dec_tg), dpos = parts(b, "dec", mod)
            if KINDS[mod] == "sequence":
                original = sample[mod].tolist()
                if any(t in SP.sentinels for t in toks.tolist()):  # span masked
                    if dec_tg[-1] == SP.eos and toks[-1] == SP.eos:  # neither side cut: exact reconstruction
                        assert unmask_spans(toks, dec_tg, SP).tolist() == original
                    assert dec_tg[0] == SP.sentinels[0]
                    assert set(dec_tg.tolist()) <= set(original) | set(SP.sentinels)
                elif len(toks):  # whole sequence as input
                    assert toks.tolist() == original[: len(toks)] and not len(dec_tg)
                elif len(dec_tg):  # whole (maybe truncated) sequence as target
                    assert dec_tg.tolist() == original[: len(dec_tg)]
                if len(dec_tg):
                    assert dec_in.tolist() == [SP.sos] + dec_tg[:-1].tolist()
                    assert dpos.tolist() == list(range(len(dec_tg)))
                assert pos.tolist() == list(range(len(toks)))
            else:
                assert torch.equal(toks, sample[mod][pos])  # every encoder token is the original
                assert torch.equal(dec_tg, sample[mod][dpos])
                assert not set(pos.tolist()) & set(dpos.tolist())  # inputs and targets disjoint
                assert (pos.diff() > 0).all() and (dpos.diff() > 0).all()


def test_image_inputs_and_targets_disjoint_and_cover_all_positions():
    m = masker(input_budget=64, target_budget=64, input_modalities=["rgb"], target_modalities=["rgb"])
    b = m(make_sample(np.random.default_rng(0)), make_rng(0, 0, 0))
    (_, pos), (_, dpos) = parts(b, "enc", "rgb"), parts(b, "dec", "rgb")
    assert len(pos) + len(dpos) == 64
    assert sorted(pos.tolist() + dpos.tolist()) == list(range(64))


def test_given_inputs_to_targets():
    m = masker(input_budget=64, target_budget=8, input_modalities=["rgb"], target_modalities=["caption"])
    sample = make_sample(np.random.default_rng(3), caption_len=20)
    for i in range(5):
        b = m(sample, make_rng(0, 0, i))
        toks, pos = parts(b, "enc", "rgb")
        assert torch.equal(toks, sample["rgb"]) and int(b.enc_valid.sum()) == 64  # all rgb visible
        (dec_in, dec_tg), _ = parts(b, "dec", "caption")
        assert dec_tg.tolist() == sample["caption"][:8].tolist()  # truncated target, teacher forcing
        assert dec_in.tolist() == [SP.sos] + sample["caption"][:7].tolist()
        assert int(b.dec_valid.sum()) == 8


def test_per_modality_min_max():
    m = masker(max_input_tokens={"rgb": 5}, min_target_tokens={"depth": 12}, max_target_tokens={"meta": 2})
    for i in range(100):
        b = m(make_sample(np.random.default_rng(i)), make_rng(0, 0, i))
        assert len(parts(b, "enc", "rgb")[0]) <= 5
        assert len(parts(b, "dec", "depth")[1]) >= 12
        assert len(parts(b, "dec", "meta")[1]) <= 2


def test_min_target_tokens_makes_a_vector_a_target_of_every_sample():
    """configs/masking/mixture_pixels_embedding.yaml's rule: a vector modality with min_target_tokens =
    its length is targeted in full wherever it is not an input, even by entries that give it alpha 0,
    and the target budget stays filled."""
    entries = [
        {"name": "all", "input_alpha": 0.5, "target_alpha": 0.5},
        {"name": "rgb_to_images", "input_alpha": 0.0, "input_alphas": {"rgb": 1.0},
         "target_alpha": 1.0, "target_alphas": {"meta": 0.0}},
    ]  # fmt: skip
    m = masker(min_target_tokens={"meta": 6}, mixture=entries)
    inputs_seen = 0
    for i in range(200):
        b = m(make_sample(np.random.default_rng(i)), make_rng(0, 0, i))
        enc_meta = parts(b, "enc", "meta")[1]
        dec_meta = parts(b, "dec", "meta")[1]
        assert len(enc_meta) + len(dec_meta) == 6  # all of it, split between the two sides
        assert not set(enc_meta.tolist()) & set(dec_meta.tolist())
        assert int(b.dec_valid.sum()) == 40
        inputs_seen += len(enc_meta) > 0
    assert 0 < inputs_seen < 200  # some samples give it as an input, the rest target it


def test_deterministic_mode_fixed_budgets_and_masks():
    config = MaskingConfig.from_file(CONFIGS / "eval_fixed.yaml").replace(input_budget=40, target_budget=40)
    m = Masker(config, ORDER, KINDS, SP)
    samples = [make_sample(np.random.default_rng(i), drop=("caption", "meta")) for i in range(6)]
    ds = MaskedDataset(samples, m)
    first = [ds[i] for i in range(6)]
    ds.set_epoch(5)
    again = [ds[i] for i in range(6)]
    for a, b in zip(first, again):
        assert torch.equal(a.enc_tokens, b.enc_tokens) and torch.equal(a.dec_position, b.dec_position)
        counts = torch.bincount(a.enc_modality[0, a.enc_valid[0]], minlength=4)
        assert counts[:2].tolist() == [20, 20]  # Dirichlet mean: an even split
    assert not torch.equal(first[0].enc_position, first[1].enc_position)  # masks still vary per sample


def test_seeds_and_epochs_change_masks():
    m = masker()
    sample = make_sample(np.random.default_rng(0))
    same = m(sample, make_rng(0, 0, 3)), m(sample, make_rng(0, 0, 3))
    assert same_batch(*same)
    for other in (make_rng(1, 0, 3), make_rng(0, 1, 3), make_rng(0, 0, 4)):
        b = m(sample, other)
        assert not (
            torch.equal(b.enc_position, same[0].enc_position)
            and torch.equal(b.enc_modality, same[0].enc_modality)
        )


def test_worker_safe_seeding():
    m = masker()
    samples = [make_sample(np.random.default_rng(i)) for i in range(12)]
    ds = MaskedDataset(samples, m, seed=11)
    loader = DataLoader(ds, batch_size=4, num_workers=2, collate_fn=collate, persistent_workers=True)
    for epoch in (0, 3):
        ds.set_epoch(epoch)
        got = list(loader)
        want = collate([m(s, make_rng(11, epoch, i)) for i, s in enumerate(samples)])
        assert torch.equal(torch.cat([b.enc_tokens for b in got]), want.enc_tokens)
        assert torch.equal(torch.cat([b.dec_position for b in got]), want.dec_position)


def test_collate_pads():
    m = masker(pad_to_budget=False, input_budget=30, target_budget=30)
    items = [m(make_sample(np.random.default_rng(i), caption_len=3 * i), make_rng(0, 0, i)) for i in range(5)]
    items.append(
        Masker(m.config.replace(input_modalities=["meta"]), ORDER, KINDS, SP)(
            make_sample(np.random.default_rng(9)), make_rng(0, 0, 9)
        )
    )
    batch = collate(items, pad_to_multiple=8)
    longest = max(it.enc_tokens.shape[1] for it in items)
    assert batch.enc_tokens.shape == (6, -(-longest // 8) * 8) and batch.dec_valid.shape[1] % 8 == 0
    for row, it in enumerate(items):
        n = it.enc_tokens.shape[1]
        assert int(it.enc_valid.sum()) == n  # unpadded items hold only valid tokens
        assert torch.equal(batch.enc_tokens[row, :n], it.enc_tokens[0])
        assert torch.equal(batch.enc_modality[row, :n], it.enc_modality[0])
        assert not batch.enc_valid[row, n:].any() and (batch.enc_tokens[row, n:] == 0).all()
        nd = it.dec_target.shape[1]
        assert (
            torch.equal(batch.dec_target[row, :nd], it.dec_target[0]) and not batch.dec_valid[row, nd:].any()
        )
    assert batch.num_tokens() == sum(it.num_tokens() for it in items)


# ---- configs ---------------------------------------------------------------------------------------


def test_shipped_configs():
    mix = MaskingConfig.from_file(CONFIGS / "mixture.yaml")
    names = [e.name for e in mix.mixture]
    assert {"all_to_all_0.2", "all_to_all_0.5", "all_to_all_1.0", "rgb_to_all", "caption_biased"} == set(
        names
    )
    rgb = mix.mixture[names.index("rgb_to_all")]
    assert rgb.alpha("input", "rgb") == 1.0 and rgb.alpha("input", "depth") == 0.0
    assert MaskingConfig.from_file(CONFIGS / "eval_fixed.yaml").deterministic
    assert MaskingConfig.from_file(CONFIGS / "all_to_all.yaml").mixture[0].input_alpha == 0.5


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"mixture": [{"input_alpha": -1.0}]}, "mixture[0].input_alpha"),
        ({"mixture": [{"target_alphas": {"rgb": -0.5}}]}, "mixture[0].target_alphas.rgb"),
        ({"mixture": [{"weight": 0.0}]}, "mixture[0].weight"),
        ({"mixture": [{}, {"weight": -2.0}]}, "mixture[1].weight"),
        ({"mixture": []}, "mixture"),
        ({"min_input_tokens": {"rgb": 9}, "max_input_tokens": {"rgb": 3}}, "min_input_tokens.rgb"),
        ({"min_target_tokens": {"rgb": -1}}, "min_target_tokens.rgb"),
        ({"min_input_tokens": {"rgb": 100, "depth": 100}}, "min_input_tokens"),
        ({"noise_density": 1.5}, "noise_density"),
        ({"span_probability": 1.2}, "span_probability"),
        ({"span_probability": -0.1}, "span_probability"),
        ({"mixture": [{"drop_inputs_probability": 1.5}]}, "mixture[0].drop_inputs_probability"),
        ({"mean_span_length": 0.5}, "mean_span_length"),
        ({"input_budget": 0}, "input_budget"),
        ({"input_modalities": []}, "input_modalities"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_config_errors_name_the_field(data, fragment):
    with pytest.raises(FourmError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        MaskingConfig.from_dict(data)


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"input_modalities": ["rgbb"]}, "unknown modality 'rgbb' in input_modalities"),
        ({"mixture": [{"input_alphas": {"txt": 1.0}}]}, "unknown modality 'txt' in mixture[0].input_alphas"),
        ({"max_target_tokens": {"x": 1}}, "unknown modality 'x' in max_target_tokens"),
    ],
)
def test_unknown_modalities(data, fragment):
    with pytest.raises(FourmError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        Masker(MaskingConfig.from_dict(data), ORDER, KINDS, SP)


def test_masker_argument_errors():
    with pytest.raises(FourmError, match="unknown kind 'grid'"):
        Masker(MaskingConfig(), ["rgb"], {"rgb": "grid"})
    with pytest.raises(FourmError, match="SequenceSpecialTokens"):
        Masker(MaskingConfig(), ["caption"], {"caption": "sequence"})
    with pytest.raises(FourmError, match="none of the modalities"):
        masker()({"other": torch.ones(3)}, make_rng(0, 0, 0))


# ---- patch modalities ------------------------------------------------------------------------------

P_ORDER = ["rgb", "pix", "caption", "meta"]
P_KINDS = {"rgb": "image", "pix": "image", "caption": "sequence", "meta": "vector"}


def patch_sample(rng: np.random.Generator, drop: tuple[str, ...] = ()) -> dict:
    sample = make_sample(rng, drop=("depth",))
    sample["pix"] = torch.from_numpy(rng.integers(0, 256, 16 * 12))  # 16 patches of 12 values, flat
    return {k: v for k, v in sample.items() if k not in drop}


def patch_masker(patch_dims=None, **cfg) -> Masker:
    cfg.setdefault("input_budget", 24)
    cfg.setdefault("target_budget", 24)
    return Masker(MaskingConfig.from_dict(cfg), P_ORDER, P_KINDS, SP, {"pix": 12} if patch_dims is None else patch_dims)


def check_patches(batch, sample: dict, row: int = 0) -> None:
    """enc_patches holds the sample's patches at pix slots (token id 0) and zeros elsewhere."""
    pix = P_ORDER.index("pix")
    at = batch.enc_valid[row] & (batch.enc_modality[row] == pix)
    want = sample["pix"].reshape(16, 12)[batch.enc_position[row, at]].to(torch.uint8)
    assert batch.enc_patches.dtype == torch.uint8
    assert torch.equal(batch.enc_patches[row, at], want)
    assert (batch.enc_patches[row, ~at] == 0).all() and (batch.enc_tokens[row, at] == 0).all()


def parts_of(batch, modality: str):
    keep = batch.enc_valid[0] & (batch.enc_modality[0] == P_ORDER.index(modality))
    return batch.enc_tokens[0, keep], batch.enc_position[0, keep]


def test_patch_modality_is_an_input_only_image():
    # the config would target pix, and strongly: it still never reaches the decoder
    m = patch_masker(target_modalities=["pix", "rgb"], mixture=[{"target_alphas": {"pix": 50.0}}])
    assert m.targets == {"rgb"} and "pix" in m.inputs and m.patch_width == 12
    seen_pix = 0
    for i in range(60):
        sample = patch_sample(np.random.default_rng(i))
        b = m(sample, make_rng(0, 0, i))
        assert b.enc_patches.shape == (1, 24, 12) and int(b.enc_valid.sum()) == 24  # exactly the budget
        assert not (b.dec_valid[0] & (b.dec_modality[0] == P_ORDER.index("pix"))).any()
        check_patches(b, sample)
        pos = b.enc_position[0, b.enc_valid[0] & (b.enc_modality[0] == 1)]
        assert (pos.diff() > 0).all() and (pos < 16).all()  # image positions: ascending grid indices
        seen_pix += len(pos)
        c = m(sample, make_rng(0, 0, i))
        assert same_batch(b, c)  # same rng, same batch
    assert seen_pix > 0


def test_patch_budget_counts_patches_not_values():
    m = patch_masker(input_budget=16, target_budget=8, input_modalities=["pix"], target_modalities=["rgb"])
    sample = patch_sample(np.random.default_rng(1))
    b = m(sample, make_rng(0, 0, 0))
    _, pos = parts_of(b, "pix")
    assert pos.tolist() == list(range(16)) and int(b.enc_valid.sum()) == 16  # all 16 patches, 192 values
    check_patches(b, sample)
    m = patch_masker(input_budget=10, target_budget=8, input_modalities=["pix"])
    b = m(sample, make_rng(0, 0, 1))
    assert len(parts_of(b, "pix")[1]) == 10 and int(b.enc_valid.sum()) == 10
    check_patches(b, sample)


def test_patch_collate_keeps_patches_aligned():
    m = patch_masker(pad_to_budget=False, input_budget=21, target_budget=9)
    samples = [patch_sample(np.random.default_rng(i), drop=("caption",) * (i % 2)) for i in range(6)]
    samples.append(patch_sample(np.random.default_rng(9), drop=("pix",)))  # no patches at all
    items = [m(s, make_rng(3, 0, i)) for i, s in enumerate(samples)]
    batch = collate(items, pad_to_multiple=8)
    n = batch.enc_tokens.shape[1]
    assert n % 8 == 0 and batch.enc_patches.shape == (7, n, 12)
    for row, (it, sample) in enumerate(zip(items, samples)):
        k = it.enc_tokens.shape[1]
        assert torch.equal(batch.enc_patches[row, :k], it.enc_patches[0])
        assert (batch.enc_patches[row, k:] == 0).all()
        if "pix" in sample:
            check_patches(batch, sample, row)
    assert (items[-1].enc_patches == 0).all()
    moved = batch.to("cpu")
    assert torch.equal(moved.enc_patches, batch.enc_patches)


def test_runs_without_patch_modalities_are_unchanged():
    plain = masker()
    b = plain(make_sample(np.random.default_rng(0)), make_rng(0, 0, 0))
    assert b.enc_patches is None and b.to("cpu").enc_patches is None
    batch = collate([b, plain(make_sample(np.random.default_rng(1)), make_rng(0, 0, 1))], pad_to_multiple=7)
    assert batch.enc_patches is None
    # a patch modality absent from the sample does not change how the rng is used
    as_tokens = patch_masker(patch_dims={}, target_modalities=["rgb", "caption", "meta"])
    as_patches = patch_masker(target_modalities=["rgb", "caption", "meta"])
    for i in range(40):
        sample = patch_sample(np.random.default_rng(i), drop=("pix",))
        a, p = as_tokens(sample, make_rng(0, 0, i)), as_patches(sample, make_rng(0, 0, i))
        assert a.enc_patches is None and (p.enc_patches == 0).all()
        assert same_batch(a, p.__class__(**{**vars(p), "enc_patches": None}))


def test_patch_masker_errors():
    with pytest.raises(FourmError, match="patch_dims: unknown modality 'x'"):
        patch_masker(patch_dims={"x": 3})
    with pytest.raises(FourmError, match="patch_dims: modality 'caption' is a sequence"):
        patch_masker(patch_dims={"caption": 3})
    with pytest.raises(FourmError, match="patch_dims.pix must be >= 1"):
        patch_masker(patch_dims={"pix": 0})
    m = patch_masker()
    sample = patch_sample(np.random.default_rng(0))
    with pytest.raises(FourmError, match="patch modality 'pix': 191 values is not a whole number of patches of 12"):
        m({**sample, "pix": sample["pix"][:-1]}, make_rng(0, 0, 0))
    with pytest.raises(FourmError, match=r"patch modality 'pix': values must be in \[0, 256\)"):
        m({**sample, "pix": sample["pix"] + 256}, make_rng(0, 0, 0))


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("**/*.yaml")), ids=lambda p: str(p.relative_to(CONFIGS)))
def test_shipped_masking_configs_load(path):
    config = MaskingConfig.from_file(path)
    config.validate()
    assert config.input_budget > 0 and config.target_budget > 0 and config.mixture
    if path.parent.name == "eval":  # validation tasks: fixed masks
        assert config.deterministic


# ---- whole sequences, budget scaling, condition dropout, starved targets ---------------------------


def seq_roles(b, sample: dict, modality: str) -> str:
    """How ``modality`` (a sequence) was masked: "span", "input", "target", "both" or "none"."""
    toks, _ = parts(b, "enc", modality)
    (_, dec_tg), _ = parts(b, "dec", modality)
    if any(t in SP.sentinels for t in toks.tolist()):
        return "span"
    return {(True, False): "input", (False, True): "target", (True, True): "both"}.get(
        (bool(len(toks)), bool(len(dec_tg))), "none"
    )


def test_whole_sequences_go_to_one_side_untruncated():
    # caption has both budgets in every sample; its Dirichlet target budget (~40 / 4) is far below its 26 tokens
    m = masker(span_probability=0.0, mixture=[{"input_alpha": 1.0, "target_alpha": 1.0}])
    roles = []
    for i in range(300):
        sample = make_sample(np.random.default_rng(i), caption_len=25)
        b = m(sample, make_rng(0, 0, i))
        role = seq_roles(b, sample, "caption")
        roles.append(role)
        toks, _ = parts(b, "enc", "caption")
        (dec_in, dec_tg), _ = parts(b, "dec", "caption")
        if role == "target":  # whole, with [EOS], not cut to its target budget
            assert dec_tg.tolist() == sample["caption"].tolist()
            assert dec_in.tolist() == [SP.sos] + sample["caption"][:-1].tolist()
        if role == "input":
            assert toks.tolist() == sample["caption"].tolist()
        assert int(b.enc_valid.sum()) == 48 and int(b.dec_valid.sum()) == 40  # images fill what is left
    assert roles.count("span") == 0 and roles.count("both") == 0
    assert 0.15 < roles.count("target") / 300 < 0.85 and 0.15 < roles.count("input") / 300 < 0.85
    spans = [
        seq_roles(masker(span_probability=1.0)(s, make_rng(0, 0, i)), s, "caption")
        for i, s in enumerate(make_sample(np.random.default_rng(i), caption_len=25) for i in range(100))
    ]
    assert spans.count("span") > 90  # span_probability 1: span-masked whenever it has both budgets


def test_span_probability_sets_the_span_share():
    def span_share(p: float) -> float:
        m = masker(span_probability=p, mixture=[{"input_alpha": 1.0, "target_alpha": 1.0}])
        samples = [make_sample(np.random.default_rng(i), caption_len=20) for i in range(600)]
        return np.mean([seq_roles(m(s, make_rng(1, 0, i)), s, "caption") == "span" for i, s in enumerate(samples)])

    both = span_share(1.0)  # = how often the caption gets both budgets
    assert both > 0.9
    assert abs(span_share(0.2) - 0.2 * both) < 0.05
    assert span_share(0.0) == 0


def test_budgets_scale_down_to_small_samples():
    m = masker(input_budget=128, target_budget=128)
    assert m.sample_budgets(69) == (34, 35) and m.sample_budgets(300) == (128, 128)
    assert masker(input_budget=96, target_budget=32).sample_budgets(40) == (30, 10)
    assert masker(input_budget=128, target_budget=128).sample_budgets(1) == (1, 0)
    rgb_targets = 0
    for i in range(200):  # 64 rgb tokens + a 4-token caption with [EOS]: 69 tokens for 128 + 128 budgets
        sample = make_sample(np.random.default_rng(i), caption_len=4, drop=("depth", "meta"))
        b = m(sample, make_rng(0, 0, i))
        assert b.enc_tokens.shape == (1, 128) and b.dec_target.shape == (1, 128)  # rows keep the budgets
        n_enc, n_dec = int(b.enc_valid.sum()), int(b.dec_valid.sum())
        assert n_enc + n_dec <= 69 and n_enc <= 34 + 5 and n_dec >= 1
        rgb_targets += len(parts(b, "dec", "rgb")[1]) > 0
    assert rgb_targets > 150  # before the scaling the inputs took all 69 tokens and rgb was never a target


def chain_masker(**entry) -> Masker:
    """A masker of the world's modalities (bench/masking_frequencies.py) with one mixture entry."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("mf", Path(__file__).resolve().parents[2] / "bench" / "masking_frequencies.py")
    mf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mf)
    mods = mf.world_modalities(chain=True)
    from fourm.training.data import build_masker

    return build_masker(MaskingConfig.from_dict({"mixture": [entry]}), mods, mf.SPECIALS), mf


def test_entry_caption_to_whole_bboxes():
    m, mf = chain_masker(input_alpha=0.0, input_alphas={"caption": 1.0}, target_alpha=0.0, target_alphas={"bboxes": 1.0})
    for i in range(200):
        sample = mf.world_sample(np.random.default_rng(i), mf.world_modalities(chain=True))
        enc, dec = mf.roles(m(sample, make_rng(0, 0, i)), m.order)
        assert set(enc) == {"caption"} and torch.equal(enc["caption"], sample["caption"])
        assert set(dec) == {"bboxes"} and torch.equal(dec["bboxes"], sample["bboxes"])  # with its [EOS]


def test_entry_caption_bboxes_to_all_rgb():
    m, mf = chain_masker(
        input_alpha=0.0, input_alphas={"caption": 1.0, "bboxes": 1.0}, target_alpha=0.0, target_alphas={"rgb": 1.0}
    )
    for i in range(200):
        sample = mf.world_sample(np.random.default_rng(i), mf.world_modalities(chain=True))
        b = m(sample, make_rng(0, 0, i))
        enc, dec = mf.roles(b, m.order)
        assert set(enc) == {"caption", "bboxes"}
        assert torch.equal(enc["caption"], sample["caption"]) and torch.equal(enc["bboxes"], sample["bboxes"])
        assert set(dec) == {"rgb"} and torch.equal(dec["rgb"], sample["rgb"])  # all 64, in grid order
        assert b.enc_patches is not None and not b.enc_patches.any()  # no pixels in this task


def test_drop_inputs_feeds_the_unconditional_encoder():
    from fourm.generation.conditions import EncoderInputs
    from fourm.model import FourM, FourMConfig, ModalityConfig

    entry = {"input_alpha": 0.0, "input_alphas": {"caption": 1.0}, "target_alpha": 0.0, "target_alphas": {"rgb": 1.0}}
    m = masker(mixture=[{**entry, "drop_inputs_probability": 0.3}])
    dropped = 0
    for i in range(400):
        sample = make_sample(np.random.default_rng(i))
        b = m(sample, make_rng(0, 0, i))
        assert int(b.dec_valid.sum()) == 40 and (b.dec_modality[0, b.dec_valid[0]] == 0).all()  # target kept
        if not b.enc_valid.any():
            dropped += 1
            assert b.enc_tokens.shape == (1, 48) and not b.enc_tokens.any()  # all padding
        else:
            assert torch.equal(parts(b, "enc", "caption")[0], sample["caption"])
    assert 0.24 < dropped / 400 < 0.36
    unpadded = masker(pad_to_budget=False, mixture=[{**entry, "drop_inputs_probability": 1.0}])
    b = unpadded(make_sample(np.random.default_rng(0)), make_rng(0, 0, 0))
    assert b.enc_valid.shape == (1, 1) and not b.enc_valid.any()  # one padding slot, as generation's rows

    # the model sees the same thing as in the unconditional guidance pass (generation.conditions)
    mods = {"rgb": ModalityConfig("image", 500, 64), "depth": ModalityConfig("image", 500, 64),
            "caption": ModalityConfig("sequence", 900, 40), "meta": ModalityConfig("vector", 50, 6)}  # fmt: skip
    torch.manual_seed(0)
    model = FourM(FourMConfig.from_dict({"dim": 32, "enc_depth": 1, "dec_depth": 1, "num_heads": 2, "modalities": mods}))
    model.eval()
    b = masker(mixture=[{**entry, "drop_inputs_probability": 1.0}])(make_sample(np.random.default_rng(1)), make_rng(0, 0, 1))
    dec = (b.dec_input, b.dec_modality, b.dec_position, b.dec_valid)
    with torch.no_grad():
        trained = model.decode(model.encode(b.enc_tokens, b.enc_modality, b.enc_position, b.enc_valid), b.enc_valid, *dec)
        rows = EncoderInputs.empty(1).compact()
        unconditional = model.decode(rows.encode_with(model), rows.valid, *dec)
        assert torch.isfinite(model.loss(b)[0])
    torch.testing.assert_close(trained, unconditional)


def test_role_counts_and_starved_target_warning():
    import warnings

    never_depth = [{"input_alpha": 1.0, "target_alpha": 0.0, "target_alphas": {"caption": 1.0, "meta": 1.0}}]
    m = Masker(MaskingConfig.from_dict({"input_budget": 48, "target_budget": 40, "mixture": never_depth}),
               ORDER, KINDS, SP, warn_after=50)  # fmt: skip
    with pytest.warns(UserWarning, match="target modalities rgb, depth were present") as record:
        for i in range(120):
            m(make_sample(np.random.default_rng(i)), make_rng(0, 0, i))
    assert len(record) == 1  # once
    counts = m.role_counts()
    assert counts["depth"] == {"present": 120, "input": counts["depth"]["input"], "target": 0}
    assert counts["caption"]["target"] > 0 and counts["rgb"]["input"] > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a healthy mixture: no warning
        healthy = masker()
        healthy.warn_after = 50
        for i in range(60):
            healthy(make_sample(np.random.default_rng(i)), make_rng(0, 0, i))
        assert not healthy.starved_targets()
        quiet = Masker(m.config, ORDER, KINDS, SP, warn_after=None)
        for i in range(60):
            quiet(make_sample(np.random.default_rng(i)), make_rng(0, 0, i))
        assert quiet.starved_targets() == ["rgb", "depth"]


def test_chain_mixture_gives_the_generation_tasks(load_bench):
    mf = load_bench("masking_frequencies")
    mods = mf.world_modalities(chain=True)
    samples = [mf.world_sample(np.random.default_rng(i), mods) for i in range(2000)]
    f = mf.frequencies(mf.world_masker(str(CONFIGS / "mixture_chain.yaml"), chain=True), samples)
    assert f["caption_only_to_whole_bboxes"] >= 0.10  # caption alone -> whole bboxes
    assert f["caption_bboxes_only_to_rgb48"] >= 0.10  # caption + bboxes -> >= 48 rgb tokens
    assert f["caption_only_input"] >= 0.2
    assert f["image_only_to_whole_caption"] >= 0.10  # the whole image alone -> the whole caption
    assert 0.02 < f["empty_encoder"] < 0.08  # condition dropout (a tenth of the chain entries)
    assert f["bboxes_targets_cut_before_eos"] <= 0.01 and f["sequence_targets_cut_before_eos"] <= 0.02


def test_caption_mixture_adds_the_image_to_caption_task(load_bench):
    """Stage 3's mixture: the rgb -> whole caption task about twice as often, the chain's tasks kept."""
    mf = load_bench("masking_frequencies")
    mods = mf.world_modalities(chain=True)
    samples = [mf.world_sample(np.random.default_rng(i), mods) for i in range(2000)]
    base = mf.frequencies(mf.world_masker(str(CONFIGS / "mixture_chain_boxmap.yaml"), chain=True), samples)
    f = mf.frequencies(mf.world_masker(str(CONFIGS / "mixture_chain_caption.yaml"), chain=True), samples)
    assert base["image_only_to_whole_caption"] < 0.13 and f["image_only_to_whole_caption"] > 0.15
    for task in ("caption_only_to_whole_bboxes", "caption_bboxes_only_to_rgb48"):
        assert abs(f[task] - base[task]) < 0.02  # the chain's whole-sequence tasks as often as before
    assert f["sequence_targets_cut_before_eos"] <= 0.02


def test_default_mixture_span_share_follows_span_probability(load_bench):
    mf = load_bench("masking_frequencies")
    mods = mf.world_modalities()
    samples = [mf.world_sample(np.random.default_rng(i), mods) for i in range(1000)]
    mixture = str(CONFIGS / "mixture.yaml")
    always = mf.frequencies(mf.world_masker(mixture, span_probability=1.0), samples)
    default = mf.frequencies(mf.world_masker(mixture), samples)  # span_probability 0.2
    both = always["span_masked_per_present_sequence"]  # share of sequences with both budgets
    assert both > 0.4
    assert abs(default["span_masked_per_present_sequence"] - 0.2 * both) < 0.04
    assert default["bboxes_targets_span_masked"] < 0.3 and default["bboxes_targets_cut_before_eos"] < 0.02
    assert default["whole_caption_to_whole_bboxes"] > 0.05  # was 0.35% with every sequence span-masked
