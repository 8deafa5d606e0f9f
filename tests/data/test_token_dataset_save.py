"""save_token_splits: already built token splits written atomically with their info."""

from __future__ import annotations

import pytest

from fourm.data.token_dataset import (
    ModalityTokens,
    TokenDatasetInfo,
    load_token_dataset,
    save_token_splits,
    write_token_dataset,
)
from fourm.errors import FourmError


def test_save_token_splits_round_trips_a_mapped_dataset(tmp_path):
    info = TokenDatasetInfo(modalities={"rgb": ModalityTokens("image", 16, 4)})
    write_token_dataset(tmp_path / "a", {"train": [{"rgb": [i % 16] * 4} for i in range(5)]}, info)
    ds, loaded = load_token_dataset(tmp_path / "a")
    doubled = {"train": ds["train"].map(lambda row: {"rgb": [min(15, 2 * t) for t in row["rgb"]]})}
    save_token_splits(tmp_path / "b", doubled, loaded)
    ds2, info2 = load_token_dataset(tmp_path / "b")
    assert info2.to_dict() == loaded.to_dict()
    assert [r["rgb"] for r in ds2["train"]] == [[min(15, 2 * (i % 16))] * 4 for i in range(5)]
    with pytest.raises(FourmError, match="no splits"):
        save_token_splits(tmp_path / "c", {}, loaded)
    assert not (tmp_path / "c").exists()
