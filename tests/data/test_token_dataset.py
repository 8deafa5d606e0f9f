"""Token datasets: write/load round trip, clear errors, TokenSamples, MixedDataset, masking pipeline."""

import json

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from fourm.data.masking import MaskedDataset, Masker, MaskingConfig, SequenceSpecialTokens, collate
from fourm.data.token_dataset import (
    INFO_FILE,
    MixedDataset,
    ModalityTokens,
    TokenDatasetInfo,
    TokenSamples,
    load_token_dataset,
    write_token_dataset,
)
from fourm.errors import FourmError

SP = SequenceSpecialTokens(pad=0, sos=1, eos=2, sentinels=[3, 4, 5, 6])
INFO = TokenDatasetInfo(
    modalities={
        "rgb": ModalityTokens("image", vocab_size=64, length=16),
        "caption": ModalityTokens("sequence", vocab_size=100, length=12),
        "meta": ModalityTokens("vector", vocab_size=10, length=3),
    },
    specials=SP,
)


def samples(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        s = {
            "id": f"s{seed}_{i}",
            "rgb": rng.integers(0, 64, 16),
            "meta": torch.tensor(rng.integers(0, 10, 3)),
        }
        if i % 3:
            s["caption"] = list(rng.integers(7, 100, int(rng.integers(0, 11)))) + [SP.eos]
        elif i % 2:
            s["caption"] = []  # empty = missing
        out.append(s)
    return out


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok") / "ds"
    data = {"train": samples(30, 0), "val": iter(samples(7, 1))}  # a generator works too
    write_token_dataset(path, data, INFO)
    return path


def test_round_trip(written):
    dsd, info = load_token_dataset(written)
    assert info == INFO and set(dsd) == {"train", "val"}
    assert len(dsd["train"]) == 30 and len(dsd["val"]) == 7
    ts = TokenSamples(dsd["train"], include_id=True)
    for i, want in enumerate(samples(30, 0)):
        got = ts[i]
        assert got["id"] == want["id"]
        assert got["rgb"].dtype == torch.long and got["rgb"].tolist() == list(want["rgb"])
        assert got["meta"].tolist() == want["meta"].tolist()
        if want.get("caption"):
            assert got["caption"].tolist() == [int(t) for t in want["caption"]]
        else:
            assert "caption" not in got


def test_token_samples_selects_modalities(written):
    dsd, _ = load_token_dataset(written)
    ts = TokenSamples(dsd["val"], ["rgb"])
    assert set(ts[0]) == {"rgb"} and len(ts) == 7
    with pytest.raises(FourmError, match="unknown modality 'depth'"):
        TokenSamples(dsd["val"], ["depth"])


def test_load_errors(tmp_path, written):
    with pytest.raises(FourmError, match="not found"):
        load_token_dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FourmError, match=f"{INFO_FILE} is missing"):
        load_token_dataset(tmp_path / "empty")
    (tmp_path / "bad_json").mkdir()
    (tmp_path / "bad_json" / INFO_FILE).write_text("{not json")
    with pytest.raises(FourmError, match="malformed"):
        load_token_dataset(tmp_path / "bad_json")
    (tmp_path / "bad_kind").mkdir()
    (tmp_path / "bad_kind" / INFO_FILE).write_text(
        json.dumps({"modalities": {"rgb": {"kind": "img", "vocab_size": 4, "length": 1}}})
    )
    with pytest.raises(FourmError, match="modalities.rgb.kind"):
        load_token_dataset(tmp_path / "bad_kind")
    (tmp_path / "no_data").mkdir()
    (tmp_path / "no_data" / INFO_FILE).write_text((written / INFO_FILE).read_text())
    with pytest.raises(FourmError, match="corrupt token dataset"):
        load_token_dataset(tmp_path / "no_data")


def test_info_validation():
    with pytest.raises(FourmError, match="specials is missing"):
        TokenDatasetInfo.from_dict({"modalities": {"caption": {"kind": "sequence", "vocab_size": 9}}})
    with pytest.raises(FourmError, match="modalities.rgb: length"):
        TokenDatasetInfo.from_dict({"modalities": {"rgb": {"kind": "image", "vocab_size": 9}}})
    with pytest.raises(FourmError, match="modalities is empty"):
        TokenDatasetInfo.from_dict({})


@pytest.mark.parametrize(
    "bad, fragment",
    [
        ({"rgb": list(range(15))}, "rgb has 15 tokens \\(expected 16\\)"),
        ({"rgb": [64] * 16}, "rgb token ids must be in \\[0, 64\\)"),
        ({"caption": list(range(7, 30))}, "caption has 23 tokens \\(max 12\\)"),
        ({"depth": [1]}, "unknown modality 'depth'"),
        ({"meta": [0.5, 1.0, 2.0]}, "meta tokens must be integers"),
    ],
)
def test_write_validates_and_is_atomic(tmp_path, written, bad, fragment):
    target = tmp_path / "ds"
    write_token_dataset(target, {"train": samples(4, 2)}, INFO)
    rows = samples(4, 3)
    rows[2].update(bad)
    with pytest.raises(FourmError, match=fragment):
        write_token_dataset(target, {"train": rows}, INFO)
    dsd, _ = load_token_dataset(target)  # the old dataset is still intact
    assert dsd["train"]["id"] == [s["id"] for s in samples(4, 2)]
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # no temporary leftovers


class _Range(torch.utils.data.Dataset):
    def __init__(self, name, n):
        self.name, self.n = name, n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return (self.name, i)


def test_mixed_dataset_weights_and_determinism():
    a, b = _Range("a", 50), _Range("b", 7)
    mix = MixedDataset([a, b], [1.0, 3.0], length=4000, seed=5)
    items = [mix[i] for i in range(len(mix))]
    share_b = sum(name == "b" for name, _ in items) / len(items)
    assert abs(share_b - 0.75) < 0.025
    # each source is walked in random order without repeats until exhausted
    from_b = [i for name, i in items if name == "b"]
    assert sorted(from_b[:7]) == list(range(7)) and sorted(from_b[7:14]) == list(range(7))
    assert from_b[:7] != list(range(7)) or from_b[7:14] != list(range(7))
    again = MixedDataset([a, b], [1.0, 3.0], length=4000, seed=5)
    assert [again[i] for i in range(len(again))] == items
    other = MixedDataset([a, b], [1.0, 3.0], length=4000, seed=6)
    assert [other[i] for i in range(len(other))] != items
    assert len(MixedDataset([a, b], [1, 1])) == 57


def test_mixed_dataset_errors():
    with pytest.raises(FourmError, match="weights must be positive"):
        MixedDataset([_Range("a", 3)], [0.0])
    with pytest.raises(FourmError, match="2 weights for 1 datasets"):
        MixedDataset([_Range("a", 3)], [1.0, 1.0])
    with pytest.raises(FourmError, match="empty"):
        MixedDataset([_Range("a", 0)], [1.0])


def test_pipeline_to_packed_batches(written):
    dsd, info = load_token_dataset(written)
    masker = Masker(
        MaskingConfig(input_budget=8, target_budget=8), info.modality_order, info.kinds, info.specials
    )
    loader = DataLoader(MaskedDataset(TokenSamples(dsd["train"]), masker), batch_size=8, collate_fn=collate)
    batches = list(loader)
    assert sum(b.batch_size for b in batches) == 30
    for b in batches:
        assert b.enc_tokens.shape[1] == 8 and b.dec_target.shape[1] == 8
        assert (b.enc_valid.sum(1) == 8).all() and (b.dec_valid.sum(1) == 8).all()  # 19 grid tokens each


# ---- patch modalities ------------------------------------------------------------------------------

PATCH_INFO = TokenDatasetInfo(
    modalities={
        "rgb": ModalityTokens("image", vocab_size=64, length=16),
        "pix": ModalityTokens("image", vocab_size=256, length=4, patch_dim=12),
    }
)


def patch_samples(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [
        {"id": f"p{i}", "rgb": rng.integers(0, 64, 16), "pix": rng.integers(0, 256, (4, 12)).astype(np.uint8)}
        for i in range(n)
    ]


def test_patch_modality_round_trip(tmp_path):
    rows = patch_samples(5, 0)
    rows[3]["pix"] = None  # missing like any modality
    write_token_dataset(tmp_path / "ds", {"train": rows}, PATCH_INFO)
    dsd, info = load_token_dataset(tmp_path / "ds")
    assert info == PATCH_INFO and info.modalities["pix"].num_values == 48
    assert dsd["train"].features["pix"].feature.dtype == "uint8"
    assert dsd["train"].features["rgb"].feature.dtype == "int32"
    items = TokenSamples(dsd["train"])
    for i, row in enumerate(rows):
        if row["pix"] is None:
            assert "pix" not in items[i]
            continue
        flat = items[i]["pix"]
        assert flat.dtype == torch.long and flat.shape == (48,)  # flat (N * P,); patch k = flat[12k:12(k+1)]
        assert np.array_equal(flat.reshape(4, 12).numpy(), row["pix"])


@pytest.mark.parametrize(
    "bad, fragment",
    [
        (np.zeros(47, dtype=np.int64), r"pix has 47 patch values \(expected 4 patches x 12 = 48\)"),
        (np.full(48, 256), r"pix patch values must be in \[0, 256\), got 256..256"),
        (np.full(48, -1), r"pix patch values must be in \[0, 256\)"),
    ],
)
def test_patch_rows_are_validated(tmp_path, bad, fragment):
    rows = patch_samples(3, 1)
    rows[1]["pix"] = bad
    with pytest.raises(FourmError, match=r"^split 'train': sample p1: " + fragment) as e:
        write_token_dataset(tmp_path / "ds", {"train": rows}, PATCH_INFO)
    assert "\n" not in str(e.value)


def test_patch_dim_validation():
    with pytest.raises(FourmError, match="modalities.pix: patch_dim must be >= 1, got 0"):
        TokenDatasetInfo.from_dict({"modalities": {"pix": {"kind": "image", "vocab_size": 256, "length": 4, "patch_dim": 0}}})
    with pytest.raises(FourmError, match="modalities.v: patch_dim applies to image modalities only"):
        TokenDatasetInfo.from_dict({"modalities": {"v": {"kind": "vector", "vocab_size": 256, "length": 4, "patch_dim": 3}}})
