"""Training data: per-rank epoch batches, reproducible masks, multi-dataset mixing, validation scoring."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from training_testing import tiny_config

from fourm.data.masking import collate
from fourm.data.token_dataset import ModalityTokens, TokenDatasetInfo, write_token_dataset
from fourm.errors import FourmError
from fourm.training.data import EpochBatchSampler, ShardSampler, build_training_data
from fourm.training.loop import build_model, evaluate
from fourm.training.synthetic import INFO, synthetic_splits


def test_epoch_batches_partition_each_global_batch_across_ranks():
    samplers = [EpochBatchSampler(30, batch_size=4, seed=3, rank=r, num_replicas=2) for r in range(2)]
    assert samplers[0].batches_per_epoch == 3  # 30 // 8, tail dropped
    per_rank = [list(s) for s in samplers]
    for k in range(3):
        together = per_rank[0][k] + per_rank[1][k]
        assert len(set(together)) == 8
    used = sorted(i for batches in per_rank for b in batches for i in b)
    assert len(used) == 24 and len(set(used)) == 24
    samplers[0].set_position(1)
    assert list(samplers[0]) != per_rank[0]  # another epoch, another order


def test_starting_mid_epoch_yields_the_rest_of_that_epoch():
    full = EpochBatchSampler(20, batch_size=3, seed=0)
    full.set_position(epoch=2)
    batches = list(full)
    tail = EpochBatchSampler(20, batch_size=3, seed=0)
    tail.set_position(epoch=2, start_batch=4)
    assert list(tail) == batches[4:] and len(tail) == len(batches) - 4
    with pytest.raises(FourmError, match="start_batch"):
        tail.set_position(0, 99)


def test_shard_sampler_covers_every_val_sample_once():
    shards = [list(ShardSampler(11, batch_size=2, rank=r, num_replicas=3)) for r in range(3)]
    flat = sorted(i for shard in shards for batch in shard for i in batch)
    assert flat == list(range(11))


def test_train_masks_depend_on_seed_epoch_index_and_val_masks_are_fixed(token_data, tmp_path):
    cfg = tiny_config(token_data, tmp_path / "run")
    a, b = build_training_data(cfg), build_training_data(cfg)

    def same(x, y) -> bool:
        pairs = [(getattr(x, f), getattr(y, f)) for f in vars(x)]
        return all((u is None and v is None) or torch.equal(u, v) for u, v in pairs)

    a.train.set_epoch(3)
    b.train.set_epoch(3)
    assert same(a.train[5], b.train[5])
    b.train.set_epoch(4)
    assert not same(a.train[5], b.train[5])
    a.val.set_epoch(0)
    b.val.set_epoch(7)
    assert same(a.val[2], b.val[2])  # deterministic evaluation masks
    assert int(a.train[0].enc_valid.sum()) <= 16 and a.train[0].enc_valid.shape[1] == 16  # budget override
    assert list(a.modalities) == ["rgb", "depth", "caption"]
    assert a.modalities["caption"].kind == "sequence" and a.modalities["rgb"].vocab_size == 32


def test_mixing_two_datasets_by_weight(token_data, tmp_path):
    # a second source without depth and with 3x the weight
    info = TokenDatasetInfo(modalities={k: INFO.modalities[k] for k in ("rgb", "caption")}, specials=INFO.specials)
    splits = {
        split: [{k: s[k] for k in ("id", "rgb", "caption")} for s in samples]
        for split, samples in synthetic_splits(40, 4, seed=9).items()
    }
    other = write_token_dataset(tmp_path / "other", splits, info)
    cfg = tiny_config(
        token_data,
        tmp_path / "run",
        data={"datasets": [{"path": str(token_data), "weight": 1.0}, {"path": str(other), "weight": 3.0}],
              "epoch_length": 2000},
    )
    data = build_training_data(cfg)
    assert list(data.modalities) == ["rgb", "depth", "caption"]
    sources = data.train.samples.sources
    assert len(data.train) == 2000
    assert np.mean(sources == 1) == pytest.approx(0.75, abs=0.04)
    without_depth = sum("depth" not in data.train.samples[i] for i in range(200))
    assert without_depth == int((sources[:200] == 1).sum())
    assert len(data.val) == 8 + 4  # val splits of both sources

    bad = TokenDatasetInfo(modalities={"rgb": ModalityTokens(kind="image", vocab_size=64, length=16)})
    clash = write_token_dataset(tmp_path / "clash", {"train": [{"rgb": np.zeros(16, dtype=np.int64)}]}, bad)
    cfg = tiny_config(token_data, tmp_path / "run", data={"datasets": [{"path": str(token_data)}, {"path": str(clash)}]})
    with pytest.raises(FourmError, match="modality 'rgb' is image with vocab_size 64"):
        build_training_data(cfg)


def test_evaluate_matches_the_model_loss_on_one_batch(token_data, tmp_path):
    cfg = tiny_config(token_data, tmp_path / "run")
    data = build_training_data(cfg)
    torch.manual_seed(0)
    model = build_model(cfg, data.modalities).eval()
    loader = DataLoader(data.val, batch_size=len(data.val), collate_fn=collate)
    metrics = evaluate(model, loader, torch.device("cpu"), "fp32", None, lambda t: t)
    with torch.no_grad():
        loss, per_modality = model.loss(next(iter(loader)))
    for name, value in per_modality.items():
        assert metrics[f"val_loss_{name}"] == pytest.approx(value, rel=1e-5)
    assert metrics["val_loss"] == pytest.approx(loss.item(), rel=1e-5)


def test_patch_modality_is_an_input_only_model_modality(token_data, tmp_path):
    """A patch modality in the data: input-only model modality with its patch_dim, patches in the batches."""
    from fourm.training.data import check_fits_model, merge_modalities

    info = TokenDatasetInfo(
        modalities={**INFO.modalities, "pix": ModalityTokens(kind="image", vocab_size=256, length=16, patch_dim=12)},
        specials=INFO.specials,
    )
    rng = np.random.default_rng(0)
    splits = {
        split: [{**s, "pix": rng.integers(0, 256, 16 * 12)} for s in samples]
        for split, samples in synthetic_splits(12, 4, seed=2).items()
    }
    path = write_token_dataset(tmp_path / "pix", splits, info)
    data = build_training_data(tiny_config(path, tmp_path / "run"))
    pix = data.modalities["pix"]
    assert (pix.patch_dim, pix.input, pix.target, pix.length) == (12, True, False, 16)
    assert all(m.patch_dim == 0 for n, m in data.modalities.items() if n != "pix")
    assert data.train.masker.patch_dims == {"pix": 12} and "pix" not in data.train.masker.targets
    for batch in (data.train[0], data.val[0]):
        assert batch.enc_patches.shape == (1, 16, 12) and batch.enc_patches.dtype == torch.uint8
        assert not (batch.dec_modality[0, batch.dec_valid[0]] == list(data.modalities).index("pix")).any()

    no_patches = {**info.modalities, "pix": ModalityTokens(kind="image", vocab_size=256, length=16)}
    with pytest.raises(FourmError, match="modality 'pix' has patch_dim 0, but an earlier dataset has patch_dim 12"):
        merge_modalities([info, TokenDatasetInfo(modalities=no_patches, specials=INFO.specials)], None)
    with pytest.raises(FourmError, match="data modality 'pix' has patch_dim 0 but the model 'm' has 12"):
        check_fits_model(no_patches, data.modalities, "'m'")


def test_shipped_mixture_drops_entries_of_modalities_the_run_lacks(tmp_path):
    from fourm.model import ModalityConfig
    from fourm.training.config import MaskingSection
    from fourm.training.data import load_masking

    path = "configs/masking/finetune_caption_embedding.yaml"
    base = {
        "rgb": ModalityConfig("image", 32, 16),
        "caption": ModalityConfig("sequence", 64, 12),
        "caption_embedding": ModalityConfig("vector", 32, 4),
    }
    names = [e.name for e in load_masking(path, MaskingSection(), base).mixture]
    assert names == ["all_to_all_0.5", "rgb_to_caption_embedding", "caption_to_caption_embedding"]
    with_pixels = {**base, "rgb_pixels": ModalityConfig("image", 256, 16, target=False, patch_dim=12)}
    full = load_masking(path, MaskingSection(), with_pixels)
    assert [e.name for e in full.mixture][:3] == ["all_to_all_0.5", "rgb_pixels_to_all", "rgb_pixels_to_caption_embedding"]
    only = tmp_path / "pixels_only.yaml"
    only.write_text("input_budget: 8\ntarget_budget: 8\nmixture:\n  - name: pix\n    input_alpha: 0.0\n"
                    "    input_alphas: {rgb_pixels: 1.0}\n")
    with pytest.raises(FourmError, match="no mixture entry applies"):
        load_masking(str(only), MaskingSection(), base)


EVAL_TASKS = {
    "caption_to_rgb": "configs/masking/eval/caption_to_rgb.yaml",
    "caption_to_bboxes": "configs/masking/eval/caption_to_bboxes.yaml",  # no bboxes in the synthetic data
    "rgb_to_all": "configs/masking/eval/rgb_to_all.yaml",  # no rgb_pixels: falls back to the rgb tokens
}


def test_validation_tasks_mask_the_val_split_as_named(token_data, tmp_path):
    cfg = tiny_config(token_data, tmp_path / "run", masking={"eval_tasks": EVAL_TASKS})
    data = build_training_data(cfg)
    assert list(data.val_tasks) == ["caption_to_rgb", "rgb_to_all"]
    assert data.notes == ["validation task caption_to_bboxes skipped: configs/masking/eval/caption_to_bboxes.yaml "
                          "needs modalities this run lacks"]  # fmt: skip
    rgb, depth, caption = 0, 1, 2
    for i in range(len(data.val)):
        b = data.val_tasks["caption_to_rgb"][i]
        sample = data.val.samples[i]
        assert b.enc_tokens.shape == (1, 16)  # the run's budget overrides apply to the tasks too
        assert (b.enc_modality[0, b.enc_valid[0]] == caption).all()
        assert b.enc_tokens[0, b.enc_valid[0]].tolist() == list(sample["caption"])[: int(b.enc_valid.sum())]
        assert (b.dec_modality[0, b.dec_valid[0]] == rgb).all() and int(b.dec_valid.sum()) == 16
        a = data.val_tasks["rgb_to_all"][i]
        assert (a.enc_modality[0, a.enc_valid[0]] == rgb).all() and int(a.enc_valid.sum()) == 16
        assert set(a.dec_modality[0, a.dec_valid[0]].tolist()) <= {depth, caption} and a.dec_valid.any()
    again = build_training_data(cfg).val_tasks["caption_to_rgb"]
    assert torch.equal(again[3].dec_position, data.val_tasks["caption_to_rgb"][3].dec_position)  # fixed masks
    bad = tmp_path / "random.yaml"
    bad.write_text("mixture:\n  - name: x\n")
    with pytest.raises(FourmError, match="masking.eval_tasks.r: .* is not deterministic"):
        build_training_data(tiny_config(token_data, tmp_path / "run", masking={"eval_tasks": {"r": str(bad)}}))
    with pytest.raises(FourmError, match="bad task name 'a/b'"):
        tiny_config(token_data, tmp_path / "run", masking={"eval_tasks": {"a/b": str(bad)}})


def test_sequence_length_measured_from_arrow_offsets_of_the_rows_in_view():
    import datasets

    from fourm.errors import FourmError
    from fourm.training.data import _sequence_length

    ds = datasets.Dataset.from_dict({"caption": [[1, 2, 3], [4], [5, 6, 7, 8, 9], [], None]})
    whole = datasets.DatasetDict({"train": ds})
    view = datasets.DatasetDict({"train": ds.select([0, 1])})  # an indices mapping, not a copy
    assert _sequence_length("caption", [(whole, None)], "train") == 5
    assert _sequence_length("caption", [(view, None)], "train") == 3
    assert _sequence_length("caption", [(view, None), (whole, None)], "train") == 5
    empty = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"caption": [[], None]})})
    with pytest.raises(FourmError, match="no samples to measure it from"):
        _sequence_length("caption", [(empty, None)], "train")
