"""Re-initialising one modality's vocabulary rows of a trained FourM (a new tokenizer for it): every
other weight carried over bit-exactly, one-line errors, the frozen stage, and a run from the saved model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from training_testing import save_trained_like, tiny_config

from fourm.errors import FourmError
from fourm.model import FourM, FourMConfig, ModalityConfig
from fourm.training import train
from fourm.training.finetune import (
    OldParamsControl,
    finetune_modalities,
    load_finetune_model,
    reinit_modalities,
    save_reinit_model,
)

OLD = {
    "rgb": ModalityConfig("image", 32, 16),
    "depth": ModalityConfig("image", 16, 16),
    "caption": ModalityConfig("sequence", 64, 12),
    "pix": ModalityConfig("image", 256, 16, target=False, patch_dim=12),
}
ARCH = {"dim": 32, "enc_depth": 1, "dec_depth": 1, "num_heads": 2}
PACKED = ("embeddings.enc_tokens", "embeddings.dec_tokens", "output_weight")


@pytest.fixture(scope="module", params=[False, True], ids=["untied", "tied"])
def base_dir(request, tmp_path_factory) -> Path:
    return save_trained_like(OLD, request.param, ARCH, tmp_path_factory.mktemp("base") / "model")


def _chunks(model: FourM, key: str) -> dict[str, torch.Tensor]:
    """{modality: its rows} of a packed table."""
    mods = model.config.modalities
    sizes = {
        "embeddings.enc_tokens": [m.table_rows for m in mods.values()],
        "embeddings.dec_tokens": [m.vocab_size if m.causal and m.target else 0 for m in mods.values()],
        "output_weight": [m.vocab_size if m.target else 0 for m in mods.values()],
    }[key]
    return dict(zip(mods, model.state_dict()[key].split(sizes)))


@pytest.mark.parametrize("name, vocab", [("rgb", 32), ("rgb", 48), ("caption", 40)])
def test_reinit_keeps_every_other_weight_bit_exactly(base_dir, tmp_path, name, vocab):
    old = FourM.from_pretrained(base_dir)
    entry = name
    if vocab != OLD[name].vocab_size:  # a new vocabulary size comes from a registry YAML
        entry = tmp_path / f"{name}.yaml"
        size = "max_length: 12" if name == "caption" else "num_tokens: 16"
        entry.write_text(f"name: {name}\nkind: {OLD[name].kind}\nvocab_size: {vocab}\n{size}\n")
    model, masks = load_finetune_model(base_dir, [], seed=0, reinit=[str(entry)])
    assert model.config.modalities[name].vocab_size == vocab
    assert finetune_modalities(base_dir, [], reinit=[str(entry)]) == model.config.modalities
    old_state, state = old.state_dict(), model.state_dict()
    for key, value in old_state.items():
        if key in PACKED and key in state:
            before, after = _chunks(old, key), _chunks(model, key)
            for mod, rows in before.items():
                if mod == name and rows.shape[0]:
                    assert after[mod].shape[0] == vocab
                    assert masks[key].sum() == vocab
                    if vocab == rows.shape[0]:
                        assert not torch.equal(after[mod], rows), f"{key}: {mod} rows not re-initialised"
                else:
                    assert torch.equal(after[mod], rows), f"{key}: {mod} rows changed"
        else:
            assert torch.equal(state[key], value), f"{key} changed"
    assert set(masks) <= set(PACKED) and "embeddings.enc_tokens" in masks
    # every other modality computes exactly what it did: a batch without the re-initialised one
    other = "depth" if name != "depth" else "rgb"
    torch.manual_seed(1)
    tokens = torch.randint(0, 16, (2, 16))
    batch_mod = torch.full((2, 16), list(OLD).index(other))
    pos = torch.arange(16).expand(2, 16)
    valid = torch.ones(2, 16, dtype=torch.bool)
    with torch.no_grad():
        a = old.encode(tokens, batch_mod, pos, valid)
        b = model.encode(tokens, batch_mod, pos, valid)
    assert torch.equal(a, b)


def test_reinit_same_seed_same_rows(base_dir):
    a, _ = load_finetune_model(base_dir, [], seed=3, reinit=["rgb"])
    b, _ = load_finetune_model(base_dir, [], seed=3, reinit=["rgb"])
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize(
    "entries, match",
    [
        (["rgbx"], r"cannot re-initialise modality 'rgbx': the model has no such modality \(model modalities: rgb,"),
        (["pix"], "reads pixel patches"),
        (["rgb", "rgb"], "re-initialised twice"),
        (["missing/rgb.yaml"], "modality file not found"),
    ],
)
def test_bad_reinit_names_are_one_line_errors(base_dir, entries, match):
    with pytest.raises(FourmError, match=match) as info:
        load_finetune_model(base_dir, [], reinit=entries)
    assert "\n" not in str(info.value)


def test_reinit_yaml_of_a_new_modality_is_refused(base_dir, tmp_path):
    yaml = tmp_path / "other.yaml"
    yaml.write_text("name: other\nkind: image\nvocab_size: 8\nnum_tokens: 16\n")
    with pytest.raises(FourmError, match="use add_modalities for a new one"):
        load_finetune_model(base_dir, [], reinit=[str(yaml)])
    rgb = tmp_path / "rgb.yaml"
    rgb.write_text("name: rgb\nkind: sequence\nvocab_size: 8\nmax_length: 16\n")
    with pytest.raises(FourmError, match="as sequence: the model's is image"):
        load_finetune_model(base_dir, [], reinit=[str(rgb)])


def test_reinit_and_add_together_mark_both_as_new(base_dir, tmp_path):
    yaml = tmp_path / "vec.yaml"
    yaml.write_text("name: vec\nkind: vector\nvocab_size: 8\nnum_tokens: 4\n")
    model, masks = load_finetune_model(base_dir, [str(yaml)], reinit=["rgb"])
    mask = masks["embeddings.enc_tokens"]
    chunk = dict(zip(model.config.modalities, torch.arange(mask.shape[0]).split(
        [m.table_rows for m in model.config.modalities.values()])))  # fmt: skip
    assert mask[chunk["rgb"]].all() and mask[chunk["vec"]].all()
    assert not mask[chunk["depth"]].any() and not mask[chunk["caption"]].any()
    assert masks["embeddings.enc_modality"].tolist() == [False] * 4 + [True]


def test_frozen_step_moves_only_reinitialised_rows():
    torch.manual_seed(0)
    table = torch.nn.Parameter(torch.randn(6, 3))
    trunk = torch.nn.Parameter(torch.randn(4))
    module = torch.nn.Module()
    module.table, module.trunk = table, trunk
    mask = torch.tensor([False, True, True, False, False, False])  # rows 1-2 re-initialised
    control = OldParamsControl(module, {"table": mask}, freeze_steps=1, lr_scale=1.0)
    opt = torch.optim.AdamW([table, trunk], lr=0.1, weight_decay=0.1)
    before_t, before_w = table.detach().clone(), trunk.detach().clone()
    table.grad, trunk.grad = torch.randn(6, 3), torch.randn(4)
    control.before_step(0)
    opt.step()
    control.after_step(0)
    assert torch.equal(table[~mask], before_t[~mask]) and torch.equal(trunk, before_w)
    assert not torch.equal(table[mask], before_t[mask])


def test_saved_reinit_model_fine_tunes(base_dir, token_data, tmp_path):
    init = save_reinit_model(base_dir, ["rgb"], tmp_path / "init", seed=0)
    start = FourM.from_pretrained(init)
    old = FourM.from_pretrained(base_dir)
    assert torch.equal(_chunks(start, "embeddings.enc_tokens")["depth"], _chunks(old, "embeddings.enc_tokens")["depth"])
    assert not torch.equal(_chunks(start, "embeddings.enc_tokens")["rgb"], _chunks(old, "embeddings.enc_tokens")["rgb"])
    cfg = tiny_config(token_data, tmp_path / "run", model={"overrides": {}, "init_from": str(init)}, steps=3,
                      optim={"warmup_steps": 1})  # fmt: skip
    result = train(cfg)
    assert result.final_model is not None and (result.final_model / "model.safetensors").is_file()


def test_reinit_field_needs_init_from(token_data, tmp_path):
    with pytest.raises(FourmError, match="reinit_modalities needs model.init_from"):
        tiny_config(token_data, tmp_path, model={"reinit_modalities": ["rgb"]})
    cfg = tiny_config(token_data, tmp_path, model={"overrides": {}, "init_from": "m", "reinit_modalities": ["rgb"],
                                                   "freeze_trunk_steps": 2})  # fmt: skip
    assert cfg.model.reinit_modalities == ["rgb"]
    with pytest.raises(FourmError):
        reinit_modalities(FourM(FourMConfig.preset("tiny", OLD, **ARCH)), [])


def _loop_passes_reinit() -> bool:
    import inspect

    from fourm.training import loop

    return "reinit_modalities" in inspect.getsource(loop)


@pytest.mark.skipif(not _loop_passes_reinit(), reason="fourm/training/loop.py does not pass model.reinit_modalities yet")
def test_train_reinit_field_frozen_stage_moves_only_the_new_rows(base_dir, token_data, tmp_path):
    section = {"overrides": {}, "init_from": str(base_dir), "reinit_modalities": ["rgb"], "freeze_trunk_steps": 3}
    cfg = tiny_config(token_data, tmp_path / "run", model=section, steps=6, optim={"warmup_steps": 1})
    start, masks = load_finetune_model(base_dir, [], seed=cfg.seed, reinit=["rgb"])
    result = train(cfg, stop_at=3)
    after = FourM.from_pretrained(result.checkpoint / "model").state_dict()
    for key, value in start.state_dict().items():
        if key in masks:
            assert torch.equal(after[key][~masks[key]], value[~masks[key]]), f"{key}: old rows moved"
            assert not torch.equal(after[key][masks[key]], value[masks[key]]), f"{key}: new rows did not train"
        else:
            assert torch.equal(after[key], value), f"{key} moved while frozen"


def _code_map_file(path: Path, mapping: list[int], old_vocab: int) -> Path:
    from tokenizers_zoo.image.code_map import CodeMap

    CodeMap(mapping, old_vocab, agreement=1.0, patches=1).save(path)
    return path


@pytest.mark.parametrize("vocab", [32, 48])
def test_row_maps_start_new_codes_from_the_mapped_old_rows(base_dir, tmp_path, vocab):
    entry = "rgb"
    if vocab != OLD["rgb"].vocab_size:
        entry = tmp_path / "rgb.yaml"
        entry.write_text(f"name: rgb\nkind: image\nvocab_size: {vocab}\nnum_tokens: 16\n")
    mapping = [(7 * j) % 32 for j in range(vocab)]
    mapping[5] = -1  # a new code no image used: a fresh row
    path = _code_map_file(tmp_path / "map.json", mapping, 32)
    old = FourM.from_pretrained(base_dir)
    model, masks = load_finetune_model(base_dir, [], seed=0, reinit=[str(entry)], row_maps={"rgb": path})
    fresh, _ = load_finetune_model(base_dir, [], seed=0, reinit=[str(entry)])
    index = torch.tensor(mapping)
    for key in PACKED:
        if key not in model.state_dict():
            continue
        before, after, unmapped = _chunks(old, key)["rgb"], _chunks(model, key)["rgb"], _chunks(fresh, key)["rgb"]
        if not before.shape[0]:
            continue
        keep = index >= 0
        assert torch.equal(after[keep], before[index[keep]]), f"{key}: mapped rows are not the old codes' rows"
        assert torch.equal(after[5], unmapped[5]), f"{key}: an unused code does not start afresh"
        assert masks[key].sum() == vocab  # the rows still count as new for the frozen stage
        assert torch.equal(_chunks(model, key)["depth"], _chunks(old, key)["depth"])


def test_bad_row_maps_are_one_line_errors(base_dir, tmp_path, token_data):
    cases = [
        (_code_map_file(tmp_path / "short.json", [0] * 31, 32), "has 31 codes, its new vocabulary 32"),
        (_code_map_file(tmp_path / "other.json", [0] * 32, 64), "maps from 64 codes, the model's 'rgb' has 32"),
        (tmp_path / "missing.json", "not found"),
    ]
    (tmp_path / "bad.json").write_text("{\"mapping\": [1, 2]}")
    cases.append((tmp_path / "bad.json", "is malformed"))
    for path, match in cases:
        with pytest.raises(FourmError, match=match) as info:
            load_finetune_model(base_dir, [], reinit=["rgb"], row_maps={"rgb": path})
        assert "\n" not in str(info.value)
    good = _code_map_file(tmp_path / "good.json", [0] * 32, 32)
    with pytest.raises(FourmError, match="'depth', which is not re-initialised"):
        depth = _code_map_file(tmp_path / "depth.json", [0] * 16, 16)
        load_finetune_model(base_dir, [], reinit=["rgb"], row_maps={"rgb": good, "depth": depth})
    with pytest.raises(FourmError, match="row_maps needs model.reinit_modalities"):
        tiny_config(token_data, tmp_path, model={"overrides": {}, "init_from": "m", "row_maps": {"rgb": str(good)}})


@pytest.mark.skipif(not _loop_passes_reinit(), reason="fourm/training/loop.py does not pass model.reinit_modalities yet")
def test_train_starts_mapped_rows_from_the_old_codes(base_dir, token_data, tmp_path):
    mapping = [31 - j for j in range(32)]
    path = _code_map_file(tmp_path / "map.json", mapping, 32)
    section = {"overrides": {}, "init_from": str(base_dir), "reinit_modalities": ["rgb"], "row_maps": {"rgb": str(path)}}
    cfg = tiny_config(token_data, tmp_path / "run", model=section, steps=2, optim={"warmup_steps": 1, "lr": 1e-3})
    result = train(cfg, stop_at=1)
    after = FourM.from_pretrained(result.checkpoint / "model")
    old = FourM.from_pretrained(base_dir)
    rows, want = _chunks(after, "embeddings.enc_tokens")["rgb"], _chunks(old, "embeddings.enc_tokens")["rgb"][mapping]
    assert float((rows - want).abs().max()) < 0.01  # one AdamW step of lr 1e-3 away from the mapped old rows
    fresh, _ = load_finetune_model(base_dir, [], seed=cfg.seed, reinit=["rgb"])
    assert float((_chunks(fresh, "embeddings.enc_tokens")["rgb"] - want).abs().max()) > 0.05


def test_reinit_onto_a_finer_grid_keeps_the_old_grid_as_the_image_frame(base_dir, tmp_path):
    """rgb moved from 4 x 4 tokens onto 8 x 8: the model's image_frame becomes 4, so the new tokens' positions
    sit where the old grid's were (a 2 x 2 block around each old cell) and every other image's positions
    are unchanged bit-exactly; a saved model keeps the frame."""
    entry = tmp_path / "rgb.yaml"
    entry.write_text("name: rgb\nkind: image\nvocab_size: 48\nnum_tokens: 64\n")
    old = FourM.from_pretrained(base_dir)
    model, _ = load_finetune_model(base_dir, [], seed=0, reinit=[str(entry)])
    assert old.config.image_frame is None and model.config.image_frame == 4
    assert model.config.modalities["rgb"].length == 64

    def rows(m: FourM, name: str) -> torch.Tensor:
        sizes = [c.num_positions for c in m.config.modalities.values()]
        return dict(zip(m.config.modalities, m.embeddings.pos_table.split(sizes)))[name]

    for name in ("depth", "pix"):
        assert torch.equal(rows(model, name), rows(old, name))
    old_rgb, new_rgb = rows(old, "rgb").view(4, 4, -1), rows(model, "rgb").view(8, 8, -1)
    nearest = torch.cdist(new_rgb.flatten(0, 1), old_rgb.flatten(0, 1)).argmin(1).view(8, 8)
    expected = (torch.arange(8)[:, None] // 2) * 4 + torch.arange(8)[None, :] // 2
    assert torch.equal(nearest, expected)
    model.save_pretrained(tmp_path / "moved")
    assert FourM.from_pretrained(tmp_path / "moved").config.image_frame == 4


def test_reinit_of_images_from_two_grids_at_once_is_a_one_line_error(base_dir, tmp_path):
    """rgb (4 x 4) and a depth made 2 x 2 moved onto 8 x 8 in one run: no one frame keeps both old grids."""
    old = FourM.from_pretrained(base_dir)
    small = old.config.replace(modalities={**old.config.modalities, "depth": ModalityConfig("image", 16, 4)})
    moved = {"rgb": ModalityConfig("image", 32, 64), "depth": ModalityConfig("image", 16, 64)}
    with pytest.raises(FourmError, match=r"come from grids of \[2, 4\] cells a side"):
        reinit_modalities(FourM(small), moved)


def test_train_reinit_by_name_takes_a_finer_grid_from_the_data(base_dir, tmp_path):
    """Data re-tokenized with an rgb tokenizer on an 8 x 8 grid of 40 codes (``fourm-data tokenize
    --tokenizer``) and ``model.reinit_modalities=[rgb]`` by name: the model takes the data's length and
    vocabulary with the old 4 x 4 grid as its image frame (before: refused, the data's 64 tokens did not
    fit the model's 16); depth, whose data matches, keeps its own."""
    import numpy as np

    from fourm.data.token_dataset import ModalityTokens, write_token_dataset
    from fourm.training.synthetic import INFO, synthetic_splits

    splits = synthetic_splits(24, 4, seed=2)
    for samples in splits.values():
        for s in samples:  # each old token becomes a 2 x 2 block of new codes 0-39
            grid = s["rgb"].reshape(4, 4).repeat(2, 0).repeat(2, 1)
            s["rgb"] = (grid + np.arange(64).reshape(8, 8) % 2 * 8) % 40
    info = INFO.__class__(modalities={**INFO.modalities, "rgb": ModalityTokens(kind="image", vocab_size=40, length=64)},
                          specials=INFO.specials)  # fmt: skip
    data = write_token_dataset(tmp_path / "fine", splits, info)
    section = {"overrides": {}, "init_from": str(base_dir), "reinit_modalities": ["rgb"]}
    cfg = tiny_config(data, tmp_path / "run", model=section, steps=2, optim={"warmup_steps": 1},
                      masking={"input_budget": 32, "target_budget": 32})  # fmt: skip
    result = train(cfg)
    model = FourM.from_pretrained(result.final_model)
    rgb, depth = model.config.modalities["rgb"], model.config.modalities["depth"]
    assert (rgb.length, rgb.vocab_size, model.config.image_frame) == (64, 40, 4)
    assert (depth.length, depth.vocab_size) == (16, 16)
