"""N-D sin-cos positions of a vector modality laid out on a row-major grid (``position_grid``):
the table, its validation, a tiny FourM that uses it, and the registry YAML that sets it."""

from __future__ import annotations

import json
import math

import pytest
import torch
from fourm_testing import TOY_MODALITIES, pack, toy_config

from fourm.errors import FourmError
from fourm.modalities import ModalityRegistry, ModalitySpec
from fourm.model import FourM, FourMConfig, ModalityConfig
from fourm.model.config import modality_from_spec
from fourm.model.embeddings import PackedEmbeddings
from fourm.model.pos_embed import sincos_table_1d, sincos_table_2d, sincos_table_nd
from fourm.resources import CONFIG_ROOT, DEFAULT_BUNDLE

EXTRA = CONFIG_ROOT / "modalities" / "extra"


# ------------------------------------------------------------------------------------------ table
@pytest.mark.parametrize("g, dim", [(1, 4), (4, 16), (8, 32), (5, 256)])
def test_square_grid_is_the_2d_table_exactly(g, dim):
    assert torch.equal(sincos_table_nd((g, g), dim), sincos_table_2d(g, dim))


def test_one_axis_is_the_1d_table():
    assert torch.equal(sincos_table_nd((10,), 8), sincos_table_1d(10, 8))


def test_tokens_on_one_row_share_the_row_features():
    rows, cols, d = 3, 5, 16
    table = sincos_table_nd((rows, cols), d)
    assert table.shape == (rows * cols, d)
    a, b, c = table[1 * cols + 0], table[1 * cols + 4], table[2 * cols + 0]  # (1, 0), (1, 4), (2, 0)
    assert torch.equal(a[: d // 2], b[: d // 2]) and not torch.equal(a[d // 2 :], b[d // 2 :])
    assert torch.equal(a[d // 2 :], c[d // 2 :]) and not torch.equal(a[: d // 2], c[: d // 2])
    by_row = sincos_table_1d(rows, d // 2)[:, None].expand(rows, cols, d // 2)
    assert torch.equal(table.view(rows, cols, d)[:, :, : d // 2], by_row)


@pytest.mark.parametrize(
    "grid, dim, chunk", [((5, 8, 8), 384, 128), ((2, 3, 4), 32, 10), ((5, 8, 8), 256, 84)]
)
def test_three_axes_are_row_major_with_even_chunks_and_zero_remainder(grid, dim, chunk):
    table = sincos_table_nd(grid, dim)
    assert table.shape == (math.prod(grid), dim)
    cube = table.view(*grid, dim)
    for axis, size in enumerate(grid):
        block = cube[..., axis * chunk : (axis + 1) * chunk]  # (G, R, C, chunk): depends only on this axis
        ref = sincos_table_1d(size, chunk).view(*[size if k == axis else 1 for k in range(3)], chunk)
        assert torch.equal(block, ref.expand_as(block))
    assert torch.equal(table[:, 3 * chunk :], torch.zeros(table.shape[0], dim - 3 * chunk))
    assert torch.cdist(table, table).add(torch.eye(len(table)) * 10).min() > 1e-3  # every token differs


def test_video_layout_token_index_is_group_row_column():
    table = sincos_table_nd((5, 8, 8), 384)
    g, i, j = 3, 2, 7
    index = g * 64 + i * 8 + j  # docs/experiments/video.md
    expected = torch.cat([sincos_table_1d(5, 128)[g], sincos_table_1d(8, 128)[i], sincos_table_1d(8, 128)[j]])
    assert torch.equal(table[index], expected)


@pytest.mark.parametrize(
    "grid, dim, match",
    [((), 16, "non-empty"), ((4, 0), 16, ">= 1"), ((4, -1), 16, ">= 1"), ((2.0, 2), 16, "integers"),
     ((2, 2, 2), 4, "dim >= 6")],
)  # fmt: skip
def test_bad_grids_fail(grid, dim, match):
    with pytest.raises(FourmError, match=match):
        sincos_table_nd(grid, dim)


# ------------------------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    "mod, match",
    [
        (
            ModalityConfig("vector", 16, 12, position_grid=(3, 5)),
            r"position_grid \[3, 5\] has 15 cells, expected length 12",
        ),
        (ModalityConfig("vector", 16, 12, position_grid=(3, 0, 4)), "integers >= 1"),
        (ModalityConfig("vector", 16, 12, position_grid=()), "non-empty"),
        (ModalityConfig("image", 16, 16, position_grid=(4, 4)), "needs kind vector, got image"),
        (ModalityConfig("sequence", 16, 12, position_grid=(3, 4)), "needs kind vector, got sequence"),
        (
            ModalityConfig("vector", 16, 12, positions="learned", position_grid=(3, 4)),
            "needs positions: sincos",
        ),
    ],
)
def test_modality_config_refuses_bad_grids_in_one_line(mod, match):
    with pytest.raises(FourmError, match=match) as err:
        mod.check("grid")
    assert str(err.value).startswith("modality 'grid': position_grid") and "\n" not in str(err.value)


def test_config_coerces_and_validates_the_field():
    cfg = toy_config(modalities={**TOY_MODALITIES, "grid": {"kind": "vector", "vocab_size": 8, "length": 12,
                                                            "position_grid": [3, 4]}})  # fmt: skip
    assert cfg.modalities["grid"].position_grid == (3, 4)
    with pytest.raises(FourmError, match="position_grid"):
        toy_config(
            modalities={"g": {"kind": "vector", "vocab_size": 8, "length": 12, "position_grid": [3, True]}}
        )
    with pytest.raises(FourmError, match=r"modality 'g': position_grid \[2, 2\] has 4 cells"):
        toy_config(
            modalities={"g": {"kind": "vector", "vocab_size": 8, "length": 12, "position_grid": [2, 2]}}
        )


# ----------------------------------------------------------------------- unchanged without it
def _table_before(config: FourMConfig) -> torch.Tensor:
    """The fixed position table as built before ``position_grid`` existed (2D for images, else 1D)."""
    tables = [
        torch.zeros(m.num_positions, config.dim)
        if m.learned_positions
        else sincos_table_2d(m.grid_size, config.dim) if m.kind == "image" else sincos_table_1d(m.num_positions, config.dim)
        for m in config.modalities.values()
    ]  # fmt: skip
    return torch.cat(tables) * config.position_scale


def test_configs_without_the_field_keep_their_tables_bit_identical():
    extra = {
        "vec": ModalityConfig("vector", 1, 4, value_dim=6),
        "glob": ModalityConfig("vector", 8, 2, positions="learned"),
    }
    config = toy_config(modalities={**TOY_MODALITIES, **extra})
    assert all(m.position_grid is None for m in config.modalities.values())
    assert torch.equal(PackedEmbeddings(config).pos_table, _table_before(config))


def test_the_shipped_model_loads_unchanged():
    path = DEFAULT_BUNDLE / "model" / "config.json"
    if not path.is_file():
        pytest.skip("models/world-default is not in this checkout")
    saved = json.loads(path.read_text())
    for mod in saved["modalities"].values():  # a config saved before position_grid existed, and the shipped one
        mod.pop("position_grid", None)
    for config in (FourMConfig.from_dict(saved), FourMConfig.from_file(path)):
        assert all(m.position_grid is None for m in config.modalities.values())
        assert torch.equal(PackedEmbeddings(config).pos_table, _table_before(config))
    registry = ModalityRegistry.from_dict(json.loads((DEFAULT_BUNDLE / "modalities.json").read_text()))
    assert all(s.position_grid is None and "position_grid" not in s.to_dict() for s in registry.values())


# ----------------------------------------------------------------------------------- tiny model
MODS = {
    **TOY_MODALITIES,
    "grid": ModalityConfig("vector", 16, 12, position_grid=(3, 2, 2)),  # discrete
    "patches": ModalityConfig("vector", 1, 4, value_dim=6, position_grid=(2, 2)),  # continuous
}
GRID, PATCHES = list(MODS).index("grid"), list(MODS).index("patches")


def _batch():
    s0 = {"enc": [(0, 0, 5), (GRID, 0, 3), (GRID, 7, 9), (PATCHES, 1, 0)],
          "dec": [(GRID, 5, 0, 2), (GRID, 11, 0, 15), (PATCHES, 3, 0, 0), (2, 0, 1, 20)]}  # fmt: skip
    s1 = {"enc": [(GRID, 2, 4), (PATCHES, 0, 0)], "dec": [(GRID, 0, 0, 1), (PATCHES, 2, 0, 0)]}
    b = pack([s0, s1])
    g = torch.Generator().manual_seed(0)
    b.enc_values = torch.randn(2, 4, 6, generator=g) * (b.enc_modality == PATCHES)[..., None]
    b.dec_values = torch.randn(2, 4, 6, generator=g)
    return b


def test_tiny_model_uses_the_grid_runs_and_round_trips(tmp_path):
    model = FourM(toy_config(modalities=MODS)).eval()
    emb = model.embeddings
    start = int(emb.pos_offsets[GRID])
    assert torch.equal(emb.pos_table[start : start + 12], sincos_table_nd((3, 2, 2), 32))
    start = int(emb.pos_offsets[PATCHES])
    assert torch.equal(emb.pos_table[start : start + 4], sincos_table_2d(2, 32))
    with torch.no_grad():  # away from init, so a fresh model would differ
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    batch = _batch()
    out = model(batch)
    assert out and all(
        torch.isfinite(v).all() for v in out.values() if torch.is_tensor(v) and v.is_floating_point()
    )

    model.save_pretrained(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "config.json").read_text())["modalities"]
    assert saved["grid"]["position_grid"] == [3, 2, 2] and saved["patches"]["position_grid"] == [2, 2]
    assert saved["rgb"]["position_grid"] is None
    loaded = FourM.from_pretrained(tmp_path / "m").eval()
    assert loaded.config == model.config and loaded.config.modalities["grid"].position_grid == (3, 2, 2)
    again = loaded(batch)
    assert all(torch.equal(out[k], again[k]) for k in out if torch.is_tensor(out[k]))


# -------------------------------------------------------------------------------------- registry
@pytest.mark.parametrize("name, grid", [("video", (5, 8, 8)), ("rgb_patches_dh", (8, 8))])
def test_shipped_yaml_sets_the_grid_and_the_model_gets_it(name, grid):
    spec = ModalityRegistry.from_files([EXTRA / f"{name}.yaml"])[name]
    assert spec.position_grid == grid and spec.to_dict()["position_grid"] == list(grid)
    mod = modality_from_spec(spec)
    assert mod.position_grid == grid and mod.length == math.prod(grid)


def _spec(**fields) -> dict:
    return {"name": "v", "kind": "vector", "vocab_size": 16, "num_tokens": 12, **fields}


def test_spec_without_the_grid_serialises_as_before():
    spec = ModalitySpec.from_dict(_spec())
    assert spec.position_grid is None and "position_grid" not in spec.to_dict()
    assert modality_from_spec(spec).position_grid is None
    assert ModalitySpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize(
    "fields, match",
    [({"position_grid": [5, 2]}, r"modality 'v': field 'position_grid' \[5, 2\] has 10 cells, expected num_tokens 12"),
     ({"position_grid": [0, 12]}, "modality 'v': field 'position_grid' must be .* integers >= 1"),
     ({"position_grid": [3, "4"]}, "invalid value for 'position_grid'"),  # the registry file names the entry
     ({"kind": "image", "num_tokens": 16, "position_grid": [4, 4]}, "modality 'v': .* needs kind 'vector', got 'image'"),
     ({"kind": "sequence", "num_tokens": None, "max_length": 12, "position_grid": [3, 4]},
      "modality 'v': .* needs kind 'vector', got 'sequence'")],
)  # fmt: skip
def test_spec_refuses_bad_grids_in_one_line(fields, match):
    with pytest.raises(FourmError, match=match) as err:
        ModalitySpec.from_dict(_spec(**fields))
    assert "\n" not in str(err.value)


def test_yaml_passes_the_field_through_to_the_model_config(tmp_path):
    path = tmp_path / "tiles.yaml"
    path.write_text("kind: vector\nvocab_size: 1\nnum_tokens: 6\nvalue_dim: 3\nposition_grid: [2, 3]\n")
    registry = ModalityRegistry.from_files([path])
    assert registry["tiles"].position_grid == (2, 3)
    config = FourMConfig.from_registry(registry, "tiny")
    assert config.modalities["tiles"].position_grid == (2, 3)
    assert PackedEmbeddings(config.replace(dim=16, num_heads=2)).pos_table.shape == (6, 16)
    path.write_text("kind: vector\nvocab_size: 1\nnum_tokens: 6\nvalue_dim: 3\nposition_grid: [4, 3]\n")
    with pytest.raises(FourmError, match=r"tiles.yaml: modality 'tiles': field 'position_grid'"):
        ModalityRegistry.from_files([path])


def test_train_config_position_grids_reach_a_new_model():
    from fourm.model import ModalityConfig
    from fourm.training.config import ModelSection
    from fourm.training.data import apply_position_grids

    mods = {"rgb": ModalityConfig("image", 16, 16), "video": ModalityConfig("vector", 8, 12)}
    out = apply_position_grids(mods, {"video": [3, 2, 2]})
    assert out["video"].position_grid == (3, 2, 2) and mods["video"].position_grid is None
    with pytest.raises(FourmError, match="'clip' is not a modality of the data"):
        apply_position_grids(mods, {"clip": [12]})
    with pytest.raises(FourmError, match="model.position_grids.video"):
        apply_position_grids(mods, {"video": [5, 5]})  # 25 cells for 12 tokens
    with pytest.raises(FourmError, match="model.position_grids.rgb"):
        apply_position_grids(mods, {"rgb": [4, 4]})  # images have their grid already
    with pytest.raises(FourmError, match="applies to a new model"):
        ModelSection(init_from="runs/x", position_grids={"video": [3, 2, 2]}).validate()
