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
                    if dec_tg[-1] == SP.eos:  # target not truncated: exact reconstruction
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


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_masking_configs_load(path):
    config = MaskingConfig.from_file(path)
    config.validate()
    assert config.input_budget > 0 and config.target_budget > 0 and config.mixture
