"""Dynamic-length (LaVIT-style) image tokenizer: selector, merger, ratio loss, token layout, I/O, configs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fourm.errors import FourmError
from fourm.modalities import ModalitySpec
from fourm.resources import CONFIG_ROOT
from fourm.utils.config import apply_overrides, read_mapping
from tokenizers_zoo.image import (
    DynamicImageTokenizer,
    ImageTokenizer,
    ImageTokenizerConfig,
    build_image_tokenizer,
)
from tokenizers_zoo.image.dynamic import ensure_one_kept, gumbel_keep, merge_dropped
from tokenizers_zoo.image.dynamic_layout import EOS_ID, PAD_ID, DynamicTokenLayout
from tokenizers_zoo.image.trainer import train_image_tokenizer
from tokenizers_zoo.text.vocabulary import SPECIAL_TOKENS, StructuredVocabConfig, structured_tokens

CONFIG = CONFIG_ROOT / "tokenizers" / "rgb_dynamic.yaml"
# 32x32 images, 4x4 patches -> an 8x8 grid of 64 patches; a few channels everywhere
TOY = [
    "image_size=32",
    "downsample=4",
    "width=8",
    "channel_mult=[1,1,2]",
    "num_heads=2",
    "quantizer.dim=8",
    "quantizer.codebook_size=32",
    "dynamic.token_width=16",
    # the selector from step 0 and a fixed threshold, unless a test turns the schedule on
    "dynamic.keep_all_steps=0",
    "dynamic.ratio_ramp_steps=0",
    "dynamic.threshold_mode=fixed",
]


def toy_cfg(*overrides: str) -> ImageTokenizerConfig:
    return ImageTokenizerConfig.from_dict(apply_overrides(read_mapping(CONFIG), TOY + list(overrides)))


def toy_tok(*overrides: str, seed: int = 0) -> DynamicImageTokenizer:
    torch.manual_seed(seed)
    return build_image_tokenizer(toy_cfg(*overrides))


def scenes(n: int = 6, size: int = 32) -> torch.Tensor:
    """Images of growing complexity: flat, then 1, 2, ... coloured squares, then noise. (n, 3, S, S)."""
    g = torch.Generator().manual_seed(0)
    out = torch.full((n, 3, size, size), -0.3)
    for i in range(1, n - 1):
        for _ in range(i):
            y, x = torch.randint(0, size - 8, (2,), generator=g).tolist()
            out[i, :, y : y + 8, x : x + 8] = torch.rand(3, 1, 1, generator=g) * 2 - 1
    out[-1] = torch.rand(3, size, size, generator=g) * 2 - 1
    return out


# ---- selector -----------------------------------------------------------------------------------


def test_gumbel_keep_is_hard_forward_with_softmax_gradient():
    logits = torch.tensor([[0.3, 1.1], [0.9, -0.4], [0.0, 0.2]], requires_grad=True)  # [drop, keep]
    tau, weights = 0.7, torch.tensor([1.0, -2.0, 0.5])
    keep, soft = gumbel_keep(logits, tau, noise=torch.zeros(3, 2))
    assert keep.tolist() == [1.0, 0.0, 1.0]  # exactly 0/1: the argmax of each row
    (keep * weights).sum().backward()
    # by hand: s = softmax(l / tau); d s_keep / d l_keep = s_k s_d / tau, d s_keep / d l_drop = -s_k s_d / tau
    with torch.no_grad():
        s = (logits / tau).softmax(-1)
        sk_sd = s[:, 1] * s[:, 0] / tau
        want = torch.stack([-weights * sk_sd, weights * sk_sd], dim=1)
    torch.testing.assert_close(logits.grad, want)
    torch.testing.assert_close(soft, s[:, 1])


def test_gumbel_noise_changes_decisions_and_one_patch_is_always_kept():
    logits = torch.zeros(2, 64, 2)
    keep, _ = gumbel_keep(logits, 1.0)
    assert 0 < keep.sum() < 128  # random decisions at p = 0.5
    none = ensure_one_kept(torch.zeros(2, 4), torch.tensor([[0.1, 0.9, 0.2, 0.3], [0.5, 0.1, 0.0, 0.2]]))
    assert none.tolist() == [[0, 1, 0, 0], [1, 0, 0, 0]]


# ---- merger -------------------------------------------------------------------------------------


def test_merge_dropped_splits_each_dropped_patch_among_kept_tokens():
    tokens = torch.tensor([[[1.0], [2.0], [3.0], [4.0]]])  # (1, 4, 1)
    values = torch.tensor([[[10.0], [20.0], [30.0], [40.0]]])
    keep = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    scores = torch.zeros(1, 4, 4)
    scores[0, 2, 1] = math.log(3.0)  # patch 1 -> kept 0 / kept 2 with weights 1/4, 3/4
    scores[0, 0, 3] = 5.0  # patch 3 -> mostly kept 0
    w = 1 / (1 + math.exp(-5.0))
    out = merge_dropped(tokens, values, scores, keep)
    want = [1 + 0.25 * 20 + w * 40, 0.0, 3 + 0.75 * 20 + (1 - w) * 40, 0.0]
    torch.testing.assert_close(out[0, :, 0], torch.tensor(want))
    # mass: kept tokens + dropped values
    assert float(out.sum()) == pytest.approx(1 + 3 + 20 + 40)


def test_merge_dropped_passes_the_selector_gradient():
    keep_logit = torch.zeros(1, 3, 2, requires_grad=True)
    keep, _ = gumbel_keep(keep_logit, 1.0, noise=torch.tensor([[[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]]))
    out = merge_dropped(torch.ones(1, 3, 2), torch.ones(1, 3, 2), torch.zeros(1, 3, 3), keep)
    out.sum().backward()
    assert keep_logit.grad.abs().sum() > 0


# ---- ratio loss ---------------------------------------------------------------------------------


def test_ratio_loss_moves_the_kept_fraction_toward_the_target():
    tok = toy_tok("dynamic.target_ratio=0.2")
    with torch.no_grad():
        h = tok.keep_logits(scenes(4))[0]  # patch features, fixed: only the selector learns here
    opt = torch.optim.Adam(tok.selector.parameters(), lr=0.05)

    def kept_prob() -> float:
        with torch.no_grad():
            return float(tok.selector(h).softmax(-1)[..., 1].mean())

    before = kept_prob()
    tok.train()
    for _ in range(20):
        keep, _ = tok.select(tok.selector(h))  # Gumbel-softmax, straight-through
        opt.zero_grad()
        tok.ratio_loss(keep).backward()
        opt.step()
    after = kept_prob()
    assert before == pytest.approx(0.5, abs=0.1)
    assert abs(after - 0.2) < 0.5 * abs(before - 0.2), (before, after)
    _, logs = tok.loss(scenes(2))  # the training loss carries the same term
    assert logs["ratio"] == pytest.approx((0.2 - logs["kept_fraction"]) ** 2)


# ---- keep-all warm-up, ratio ramp, learned threshold ------------------------------------------


def test_ratio_target_schedule_keeps_all_then_ramps_linearly():
    tok = toy_tok("dynamic.target_ratio=0.25", "dynamic.keep_all_steps=10", "dynamic.ratio_ramp_steps=20")
    got = [tok.ratio_target_at(s) for s in (0, 9, 10, 15, 20, 29, 30, 31, 1000)]
    # by hand: 1 - 0.75 * (step - 10) / 20 between steps 10 and 30
    want = [1.0, 1.0, 1.0, 1 - 0.75 * 5 / 20, 0.625, 1 - 0.75 * 19 / 20, 0.25, 0.25, 0.25]
    assert got == pytest.approx(want)
    no_ramp = toy_tok("dynamic.target_ratio=0.25", "dynamic.keep_all_steps=10")
    assert [no_ramp.ratio_target_at(s) for s in (9, 10)] == [1.0, 0.25]
    assert [toy_tok().ratio_target_at(s) for s in (0, 5)] == [0.25, 0.25]  # defaults: no schedule


def test_keep_all_warmup_keeps_every_patch_and_pushes_the_selector_toward_one():
    tok = toy_tok("dynamic.keep_all_steps=2", "dynamic.ratio_ramp_steps=4").train()
    images = scenes(4)
    for step in (0, 1):
        torch.manual_seed(step)
        _, logs = tok.loss(images, step=step)
        assert logs["kept_fraction"] == 1.0 and logs["ratio_target"] == 1.0
    f = tok.forward_dynamic(images, keep_all=True)
    assert bool((f.keep == 1).all()) and bool((f.indices >= 0).all())
    assert 0 < float(f.sampled_keep.detach().mean()) < 1  # the selector (keep 0.5 at init) still samples
    # the only selector gradient in the warm-up is the ratio term toward 1: the keep logit goes up
    tok.zero_grad()
    loss, logs = tok.loss(images, step=0)
    loss.backward()
    bias = tok.selector.net[-1].bias.grad  # [drop, keep]
    assert (
        logs["ratio"] == pytest.approx((1.0 - logs["selected_fraction"]) ** 2)
        and logs["selected_fraction"] < 1
    )
    assert float(bias[1]) < 0 < float(bias[0])  # descent raises keep, lowers drop
    torch.manual_seed(0)
    _, logs = tok.loss(images, step=2)  # first step after the warm-up: the selector decides
    assert logs["kept_fraction"] < 1.0 and logs["ratio_target"] == 1.0
    assert tok.loss(images, step=4)[1]["ratio_target"] == pytest.approx(1 - 0.75 * 2 / 4)


def test_shipped_config_turns_the_schedule_and_learned_threshold_on():
    d = ImageTokenizerConfig.from_dict(read_mapping(CONFIG)).dynamic
    assert d.keep_all_steps > 0 and d.ratio_ramp_steps > 0 and d.threshold_mode == "quantile"


def test_quantile_threshold_buffer_is_the_ema_of_batch_quantiles():
    tok = toy_tok("dynamic.threshold_mode=quantile", "dynamic.threshold_ema=0.9")
    assert tok.inference_threshold == pytest.approx(0.5)  # dynamic.threshold until trained
    probs = (torch.arange(10, dtype=torch.float32) / 10 + 0.05).reshape(2, 5)  # 0.05, 0.15, ..., 0.95
    tok.update_threshold(probs, ratio=0.2)
    # 0.8 quantile of 10 sorted values, linear: index 0.8 * 9 = 7.2 -> 0.75 + 0.2 * (0.85 - 0.75)
    assert tok.inference_threshold == pytest.approx(0.77)
    tok.update_threshold(torch.full((2, 5), 0.3), ratio=0.2)
    assert tok.inference_threshold == pytest.approx(0.9 * 0.77 + 0.1 * 0.3)
    assert int(tok.threshold_updates) == 2
    # fixed mode ignores the buffer
    fixed = toy_tok("dynamic.threshold=0.4")
    fixed.update_threshold(probs, ratio=0.2)
    assert fixed.inference_threshold == 0.4


def test_training_loss_updates_the_threshold_to_the_target_quantile_and_encode_uses_it():
    tok = toy_tok(
        "dynamic.threshold_mode=quantile", "dynamic.threshold_ema=0", "dynamic.target_ratio=0.3"
    ).train()
    images = scenes(6)
    tok.loss(images, step=0)  # no optimiser step: the selector is unchanged afterwards
    with torch.no_grad():
        probs = tok.keep_logits(images)[1].softmax(-1)[..., 1].numpy()
    want = float(np.quantile(probs.reshape(-1), 0.7))
    assert tok.inference_threshold == pytest.approx(want, abs=1e-5)
    counts = [len(p) for p, _ in tok.encode_sets(images)]
    assert counts == [max(1, int((row > tok.inference_threshold).sum())) for row in probs]
    assert sum(counts) == pytest.approx(0.3 * probs.size, abs=2)  # the target fraction over the batch
    # an explicit threshold overrides the learned one
    assert [len(p) for p, _ in tok.encode_sets(images, threshold=0.999)] == [1] * 6
    # in the warm-up the buffer is left alone
    warm = toy_tok("dynamic.threshold_mode=quantile", "dynamic.keep_all_steps=3").train()
    warm.loss(images, step=0)
    assert int(warm.threshold_updates) == 0 and warm.inference_threshold == 0.5


def test_learned_threshold_is_saved_and_fixed_mode_checkpoints_have_no_buffer(tmp_path):
    tok = toy_tok("dynamic.threshold_mode=quantile")
    tok.update_threshold(torch.linspace(0, 1, 64)[None], ratio=0.25)
    tok.save_pretrained(tmp_path / "q")
    loaded = ImageTokenizer.from_pretrained(tmp_path / "q")
    assert loaded.inference_threshold == pytest.approx(0.75) == pytest.approx(tok.inference_threshold)
    assert "keep_threshold" not in toy_tok().state_dict()  # tokenizers saved before still load


def test_kmeans_after_keep_all_reruns_the_codebook_init_once():
    tok = toy_tok("dynamic.keep_all_steps=2", "dynamic.kmeans_after_keep_all=true").train()
    assert tok.cfg.quantizer.kmeans_init  # rgb.yaml: k-means on the first batch
    calls, original = [], tok.quantizer._kmeans_init
    tok.quantizer._kmeans_init = lambda z: (calls.append(z.shape[0]), original(z))
    images = scenes(2)
    for step in range(4):
        tok.loss(images, step=step)
    assert len(calls) == 2  # step 0 (first batch) and step 2 (first step after the warm-up)
    assert calls[0] == 2 * 64  # in the warm-up every patch is a token
    assert bool(tok.quantizer.initialized)


# ---- encode / decode ----------------------------------------------------------------------------


def test_token_counts_vary_across_images_with_a_fixed_threshold():
    tok = toy_tok().eval()
    images = scenes(6)
    sets = tok.encode_sets(images)
    counts = [len(p) for p, _ in sets]
    assert len(set(counts)) > 1, counts
    probs = tok.keep_logits(images)[1].softmax(-1)[..., 1]
    for (positions, _), p in zip(sets, probs):
        want = torch.nonzero(p > tok.inference_threshold).flatten()
        assert torch.equal(positions, want) or (len(want) == 0 and len(positions) == 1)
    ids = tok.encode(images)
    assert tok.token_counts(ids).tolist() == counts
    # a fixed budget instead: exactly k tokens each
    assert [len(p) for p, _ in tok.encode_sets(images, top_k=5)] == [5] * 6


def test_encode_layout_and_decode_shapes():
    tok = toy_tok().eval()
    images = scenes(3)
    ids = tok.encode(images)
    assert ids.shape == (3, tok.max_length) == (3, 2 * 64 + 1) and ids.dtype == torch.long
    assert 0 <= int(ids.min()) and int(ids.max()) < tok.vocab_size == 37 + 64 + 32
    for row, (positions, codes) in zip(ids, tok.encode_sets(images)):
        n = len(positions)
        assert row[2 * n] == EOS_ID and (row[2 * n + 1 :] == PAD_ID).all()
        assert torch.equal(row[: 2 * n : 2] - 37, positions) and torch.equal(
            row[1 : 2 * n : 2] - 37 - 64, codes
        )
        assert (positions.diff() > 0).all()
    decoded = tok.decode(ids)
    assert decoded.shape == (3, 3, 32, 32) and decoded.dtype == torch.float32
    assert float(decoded.min()) >= -1 and float(decoded.max()) <= 1
    assert torch.equal(tok.decode_sets(tok.encode_sets(images)), decoded)
    # the decoder reads exactly the training-mode path in eval: decode(encode(x)) == forward(x)
    torch.testing.assert_close(decoded, tok(images)[0].clamp(-1, 1), atol=1e-4, rtol=1e-4)
    # empty set and capped sets decode too
    assert tok.decode_sets([(torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long))]).shape == (
        1, 3, 32, 32)  # fmt: skip
    capped = toy_tok("dynamic.max_tokens=3").eval()
    assert capped.max_length == 7 and max(len(p) for p, _ in capped.encode_sets(images)) <= 3


def test_layout_round_trip_and_lenient_reading():
    layout = DynamicTokenLayout(num_reserved=37, num_positions=64, codebook_size=32)
    ids = layout.pack(torch.tensor([3, 10]), torch.tensor([7, 0]))
    assert ids == [37 + 3, 101 + 7, 37 + 10, 101 + 0, EOS_ID]
    positions, codes = layout.unpack(ids + [PAD_ID])
    assert positions.tolist() == [3, 10] and codes.tolist() == [7, 0]
    # malformed: a [pos] without [code], a stray code, a repeated position (last wins), text after [EOS]
    messy = [37 + 5, 37 + 3, 101 + 1, 101 + 2, 37 + 3, 101 + 4, EOS_ID, 37 + 9, 101 + 9]
    positions, codes = layout.unpack(messy)
    assert positions.tolist() == [3] and codes.tolist() == [4]
    assert layout.code_ids(torch.tensor([[37 + 3, 101 + 1, EOS_ID]])).tolist() == [1]


def test_reserved_ids_are_the_text_vocabulary_specials():
    text = structured_tokens(StructuredVocabConfig())
    reserved = toy_cfg().dynamic.num_reserved
    assert reserved == len(SPECIAL_TOKENS) + StructuredVocabConfig().num_sentinels
    assert text[PAD_ID] == "[PAD]" and text[EOS_ID] == "[EOS]" and text[reserved - 1].startswith("[S_")
    assert not text[reserved].startswith("[S_")


def test_modality_yaml_matches_the_tokenizer():
    spec = ModalitySpec.from_dict(read_mapping(CONFIG_ROOT / "modalities" / "extra" / "rgb_dynamic.yaml"))
    spec.validate()
    cfg = ImageTokenizerConfig.from_dict(read_mapping(CONFIG))
    patches = (cfg.image_size // cfg.downsample) ** 2
    assert spec.kind == "sequence" and spec.data_key == "rgb"
    assert spec.vocab_size == cfg.dynamic.num_reserved + patches + cfg.quantizer.codebook_size
    assert spec.max_length == 2 * patches + 1


# ---- training and persistence -------------------------------------------------------------------


def test_training_step_reaches_every_parameter():
    tok = toy_tok()
    tok.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, logs = tok.loss(scenes(4))
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    for name, p in tok.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert tok.selector.net[-1].weight.grad.abs().sum() > 0
    assert {"recon", "ratio", "kept_fraction", "loss"} <= set(logs)


def test_save_load_round_trip(tmp_path):
    tok = toy_tok().eval()
    images = scenes(4)
    ids, decoded = tok.encode(images), tok.decode(tok.encode(images))
    tok.save_pretrained(tmp_path / "tok")
    loaded = ImageTokenizer.from_pretrained(tmp_path / "tok")
    assert type(loaded) is DynamicImageTokenizer and loaded.cfg == tok.cfg
    assert torch.equal(loaded.encode(images), ids)
    assert torch.equal(loaded.decode(ids), decoded)
    for (a, b), (c, d) in zip(loaded.encode_sets(images), tok.encode_sets(images)):
        assert torch.equal(a, c) and torch.equal(b, d)


def test_train_image_tokenizer_runs_the_dynamic_architecture(tmp_path):
    rng = np.random.default_rng(0)
    samples = [{"id": f"s{i}", "rgb": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)} for i in range(8)]
    cfg = toy_cfg("train.batch_size=4", "train.eval_samples=4", "train.mixed_precision='no'")
    result = train_image_tokenizer(cfg, samples, samples, tmp_path, steps=2, progress=False)
    assert 1 <= result["final"]["tokens_per_image"] <= 64
    assert type(ImageTokenizer.from_pretrained(tmp_path / "tokenizer")) is DynamicImageTokenizer


# ---- configs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "override, message",
    [
        ("dynamic.target_ratio=0", "dynamic.target_ratio must be in \\(0, 1\\]"),
        ("dynamic.target_ratio=1.5", "dynamic.target_ratio must be in \\(0, 1\\]"),
        ("dynamic.threshold=1", "dynamic.threshold must be in \\(0, 1\\)"),
        ("dynamic.gumbel_temperature=0", "dynamic.gumbel_temperature must be > 0"),
        ("dynamic.ratio_weight=-1", "dynamic.ratio_weight must be >= 0"),
        ("dynamic.max_tokens=0", "dynamic.max_tokens must be >= 1"),
        ("dynamic.max_tokens=65", "dynamic.max_tokens must be <= the 64 patches"),
        ("dynamic.token_width=18", "dynamic.token_width 18 must be divisible by num_heads 4"),
        ("dynamic.num_reserved=2", "dynamic.num_reserved must be >= 3"),
        ("gan.enabled=true", "architecture 'dynamic' supports decoder 'deterministic' without gan"),
        ("dynamic.decoder_depth=0", "dynamic.decoder_depth must be >= 1"),
        ("channel_mult=[1,2]", "channel_mult needs 4 entries"),
        ("dynamic.keep_all_steps=-1", "dynamic.keep_all_steps and dynamic.ratio_ramp_steps must be >= 0"),
        ("dynamic.ratio_ramp_steps=-5", "dynamic.keep_all_steps and dynamic.ratio_ramp_steps must be >= 0"),
        (
            "dynamic.kmeans_after_keep_all=true dynamic.keep_all_steps=0",
            "dynamic.kmeans_after_keep_all needs dynamic.keep_all_steps >= 1",
        ),
        (
            "dynamic.kmeans_after_keep_all=true quantizer.kind=fsq quantizer.dim=4",
            "needs quantizer kind 'vq'",
        ),
        ("dynamic.threshold_ema=1", "dynamic.threshold_ema must be in \\[0, 1\\)"),
        ("dynamic.threshold_mode=median", "invalid value for 'dynamic.threshold_mode'"),
    ],
)
def test_bad_config_values_give_one_line_errors(override, message):
    data = apply_overrides(read_mapping(CONFIG), override.split())  # space-separated overrides
    with pytest.raises(FourmError, match=message) as info:
        ImageTokenizerConfig.from_dict(data).validate()
    assert "\n" not in str(info.value)


def test_the_base_class_refuses_a_dynamic_config():
    with pytest.raises(FourmError, match="built by DynamicImageTokenizer"):
        ImageTokenizer(toy_cfg())
