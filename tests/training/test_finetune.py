"""Fine-tuning a trained FourM with an added modality: weight transfer, staged training, resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from training_testing import PIX, save_trained_like, tiny_config, write_pixel_tokens

from fourm.data.masking import MaskedDataset, Masker, MaskingConfig, collate
from fourm.data.token_dataset import (
    ModalityTokens,
    TokenDatasetInfo,
    TokenSamples,
    load_token_dataset,
    write_token_dataset,
)
from fourm.errors import FourmError
from fourm.model import FourM, ModalityConfig
from fourm.model.patch_stem import patch_init_std
from fourm.training import load_train_config, train
from fourm.training.finetune import (
    OldParamsControl,
    expand_model,
    load_added_modalities,
    load_finetune_model,
    resolve_model_dir,
)
from fourm.training.synthetic import INFO, SPECIALS, synthetic_splits

OLD = {
    "rgb": ModalityConfig("image", 32, 16),
    "depth": ModalityConfig("image", 16, 16),
    "caption": ModalityConfig("sequence", 64, 12),
}
ARCH = {"dim": 32, "enc_depth": 1, "dec_depth": 1, "num_heads": 2}
NEW = "caption_embedding"


def _write_yaml(folder: Path, name: str = NEW, kind: str = "vector", vocab: int = 32, tokens: int = 4) -> Path:
    """A modality registry YAML ``folder/<name>.yaml``."""
    folder.mkdir(parents=True, exist_ok=True)
    size = f"max_length: {tokens}" if kind == "sequence" else f"num_tokens: {tokens}"
    path = folder / f"{name}.yaml"
    path.write_text(f"name: {name}\nkind: {kind}\nvocab_size: {vocab}\n{size}\n")
    return path


@pytest.fixture(scope="module")
def ce_yaml(tmp_path_factory) -> Path:
    return _write_yaml(tmp_path_factory.mktemp("mods"))


@pytest.fixture(scope="module")
def ce_tokens(tmp_path_factory) -> Path:
    """Synthetic rgb/depth/caption samples + a 4-token vector modality (vocab 32) that encodes the
    caption's words (token j in [8j, 8j + 8)), as a fine-tuning data set would have."""
    splits = synthetic_splits(num_train=48, num_val=8, seed=1)
    for samples in splits.values():
        for s in samples:
            words = [int(w) for w in s["caption"][:4]] + [0] * 4
            s[NEW] = np.array([8 * j + words[j] % 8 for j in range(4)])
    info = TokenDatasetInfo(
        modalities={**INFO.modalities, NEW: ModalityTokens(kind="vector", vocab_size=32, length=4)}, specials=SPECIALS
    )
    return write_token_dataset(tmp_path_factory.mktemp("ce") / "tokens", splits, info)


@pytest.fixture(scope="module", params=[False, True], ids=["untied", "tied"])
def base_dir(request, tmp_path_factory) -> Path:
    """A saved 'trained' model on the old modalities (random weights, untied or tied heads)."""
    return save_trained_like(OLD, request.param, ARCH, tmp_path_factory.mktemp("base") / "model")


def _old_rows_equal(old: dict, new: dict) -> None:
    for key, value in old.items():
        assert torch.equal(new[key][: value.shape[0]], value), f"{key} changed"


def _old_batch(tokens: Path, n: int = 6):
    """A deterministic masked batch of the old modalities only (model indices 0..2)."""
    dsd, _ = load_token_dataset(tokens)
    samples = TokenSamples(dsd["val"], list(OLD))
    cfg = MaskingConfig.from_dict(
        {"input_budget": 16, "target_budget": 16, "deterministic": True, "mixture": [{"name": "even"}]}
    )
    masked = MaskedDataset(samples, Masker(cfg, list(OLD), {k: m.kind for k, m in OLD.items()}, SPECIALS))
    return collate([masked[i] for i in range(n)])


# ------------------------------------------------------------------------------------------ transfer
def test_expanded_model_keeps_every_old_weight_and_output(base_dir, ce_yaml, ce_tokens):
    old = FourM.from_pretrained(base_dir)
    old_state = {k: v.clone() for k, v in old.state_dict().items()}
    model, new_rows = expand_model(old, load_added_modalities([ce_yaml]), seed=0)
    assert model.modality_names == [*OLD, NEW]
    state = model.state_dict()
    for key, value in old_state.items():  # every old tensor, bit for bit (whole or as leading rows)
        if key in new_rows:
            assert state[key].shape[0] > value.shape[0] and state[key].shape[1:] == value.shape[1:]
            assert torch.equal(state[key][: value.shape[0]], value), key
        else:
            assert torch.equal(state[key], value), key
    tied = model.config.tie_embeddings
    expected = {"embeddings.enc_tokens", "embeddings.enc_modality", "embeddings.dec_modality"}
    assert set(new_rows) == expected | (set() if tied else {"output_weight"})
    for key, n_old in new_rows.items():
        rows, old_rows = state[key][n_old:], state[key][:n_old]
        assert rows.shape[0] == (1 if "modality" in key else 32)
        assert torch.isfinite(rows).all() and (rows != 0).any(dim=-1).all()
        if rows.shape[0] > 1:  # mean/std matched to the table's old rows
            assert 0.5 < float(rows.std()) / float((old_rows - old_rows.mean(0)).std()) < 2.0
    # nothing of the new modality takes part for a batch of old modalities: same logits
    batch = _old_batch(ce_tokens)
    with torch.no_grad():
        a, b = old.eval()(batch), model.eval()(batch)
    assert a.keys() == b.keys() and a
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-6)
    # deterministic in the seed (the bench rebuilds the start model this way)
    again, _ = load_finetune_model(base_dir, [ce_yaml], seed=0)
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in state.items())


def test_model_dir_resolves_from_checkpoint_and_run(base_dir, tmp_path):
    assert resolve_model_dir(base_dir) == base_dir
    run = tmp_path / "run"
    FourM.from_pretrained(base_dir).save_pretrained(run / "checkpoints" / "step_00000004" / "model")
    (run / "checkpoints" / "step_00000004" / "trainer_state.json").write_text("{}")
    assert resolve_model_dir(run / "checkpoints" / "step_00000004") == run / "checkpoints" / "step_00000004" / "model"
    assert resolve_model_dir(run) == run / "checkpoints" / "step_00000004" / "model"
    with pytest.raises(FourmError, match="not found"):
        resolve_model_dir(tmp_path / "nope")
    with pytest.raises(FourmError, match="holds no saved FourM"):
        resolve_model_dir(tmp_path)


# ------------------------------------------------------------------------------------------ refusals
@pytest.mark.parametrize(
    "name, kind, vocab, match",
    [
        ("caption", "sequence", 64, r"cannot add modality 'caption': the model already has it \(sequence"),
        ("rgb", "vector", 32, r"already has it \(image with vocab_size 32, length 16, the added one is vector"),
    ],
)
def test_adding_an_existing_modality_is_refused(base_dir, tmp_path, name, kind, vocab, match):
    yaml = _write_yaml(tmp_path, name=name, kind=kind, vocab=vocab, tokens=12 if kind == "sequence" else 4)
    with pytest.raises(FourmError, match=match) as err:
        load_finetune_model(base_dir, [yaml])
    assert "\n" not in str(err.value)


def test_modality_added_twice_is_refused(ce_yaml, tmp_path):
    copy = _write_yaml(tmp_path / "other")
    with pytest.raises(FourmError, match=f"modality '{NEW}' is added twice"):
        load_added_modalities([ce_yaml, copy])


def _ft(base: Path, yaml: Path) -> dict:
    return {"overrides": {}, "init_from": str(base), "add_modalities": [str(yaml)]}


def test_data_conflicts_are_refused(base_dir, ce_tokens, token_data, tmp_path):
    small = _write_yaml(tmp_path / "small", vocab=16)  # the data's tokens go up to 31
    cfg = tiny_config(ce_tokens, tmp_path / "a", model=_ft(base_dir, small))
    with pytest.raises(FourmError, match=f"data modality '{NEW}' \\(vector, vocab_size 32\\) does not fit"):
        train(cfg)
    seq = _write_yaml(tmp_path / "seq", kind="sequence")
    cfg = tiny_config(ce_tokens, tmp_path / "b", model=_ft(base_dir, seq))
    with pytest.raises(FourmError, match=f"data modality '{NEW}' \\(vector.*does not fit the model"):
        train(cfg)
    good = _write_yaml(tmp_path / "good")
    cfg = tiny_config(token_data, tmp_path / "c", model=_ft(base_dir, good))
    with pytest.raises(FourmError, match=f"added modality '{NEW}' is not in the token datasets"):
        train(cfg)


def test_cli_reports_a_duplicate_as_one_line(base_dir, ce_tokens, tmp_path, capsys):
    from fourm.cli.train import main

    config = tmp_path / "ft.json"
    tiny_config(ce_tokens, tmp_path / "run").save_json(config)
    dup = _write_yaml(tmp_path, name="caption", kind="sequence", vocab=64, tokens=12)
    code = main(["--config", str(config), "--init-from", str(base_dir), "--add-modality", str(dup)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0
    assert err.startswith("error: cannot add modality 'caption': the model already has it")


@pytest.mark.parametrize(
    "model, match",
    [
        ({"freeze_trunk_steps": 2}, "need model.add_modalities"),
        ({"add_modalities": ["x.yaml"]}, "needs model.init_from"),
        ({"init_from": "m", "add_modalities": ["x.yaml"], "old_params_lr_scale": 0.0}, r"must be in \(0, 1\]"),
        ({"init_from": "m", "add_modalities": ["x.yaml"], "freeze_trunk_steps": 6}, r"must be < steps \(6\)"),
    ],
)
def test_finetune_fields_are_validated(token_data, tmp_path, model, match):
    with pytest.raises(FourmError, match=match):
        tiny_config(token_data, tmp_path, model=model)


def test_cli_flags_set_the_config_fields(token_data, tmp_path):
    path = tmp_path / "c.json"
    tiny_config(token_data, tmp_path / "run").save_json(path)
    cfg = load_train_config(path, init_from="models/x", add_modalities=["a.yaml", "b.yaml"])
    assert cfg.model.init_from == "models/x" and cfg.model.add_modalities == ["a.yaml", "b.yaml"]


# ------------------------------------------------------------------------------------------ training
def _ft_config(tokens: Path, out: Path, base: Path, yaml: Path, **model):
    section = {"overrides": {}, "init_from": str(base), "add_modalities": [str(yaml)], **model}
    return tiny_config(tokens, out, steps=6, model=section, optim={"warmup_steps": 1})


def test_frozen_stage_trains_only_new_rows_then_everything(base_dir, ce_yaml, ce_tokens, tmp_path):
    cfg = _ft_config(ce_tokens, tmp_path / "run", base_dir, ce_yaml, freeze_trunk_steps=3)
    start, new_rows = load_finetune_model(base_dir, [ce_yaml], seed=cfg.seed)
    start = {k: v.clone() for k, v in start.state_dict().items()}
    old = FourM.from_pretrained(base_dir).state_dict()

    frozen = train(cfg, stop_at=3)
    state = frozen.model.state_dict()
    _old_rows_equal(old, state)  # every old weight still bit-identical after 3 steps
    for key, n_old in new_rows.items():
        assert not torch.equal(state[key][n_old:], start[key][n_old:]), f"new rows of {key} did not train"
    log = (tmp_path / "run" / "metrics.csv").read_text()
    assert f"loss_{NEW}" in log.splitlines()[0]

    done = train(cfg, resume="auto")
    final = done.model.state_dict()
    changed = [k for k, v in old.items() if not torch.equal(final[k][: v.shape[0]], v)]
    assert set(changed) == set(old)  # after the stage every weight (old rows included) trains
    for key, n_old in new_rows.items():
        assert not torch.equal(final[key][n_old:], state[key][n_old:])


def test_resume_across_the_stage_boundary_is_exact(base_dir, ce_yaml, ce_tokens, tmp_path):
    def cfg(out):
        return _ft_config(ce_tokens, tmp_path / out, base_dir, ce_yaml, freeze_trunk_steps=2, old_params_lr_scale=0.5)

    straight = train(cfg("straight")).model.state_dict()
    train(cfg("split"), stop_at=1)  # checkpoint inside the frozen stage
    train(cfg("split"), resume="auto", stop_at=4)  # crosses the boundary after a resume
    resumed = train(cfg("split"), resume="auto").model.state_dict()
    assert straight.keys() == resumed.keys()
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), f"{key} differs after resume"


def test_old_params_lr_scale_scales_the_adamw_update_exactly():
    torch.manual_seed(0)
    table = torch.nn.Parameter(torch.randn(5, 3))  # 3 old rows + 2 new rows
    trunk = torch.nn.Parameter(torch.randn(4))
    module = torch.nn.Module()
    module.table, module.trunk = table, trunk
    grads = [torch.randn(5, 3), torch.randn(4)]

    def run(scale: float, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            t0, w0 = table.detach().clone(), trunk.detach().clone()
        opt = torch.optim.AdamW([table, trunk], lr=lr, weight_decay=0.1)
        control = OldParamsControl(module, {"table": 3}, freeze_steps=0, lr_scale=scale)
        table.grad, trunk.grad = grads[0].clone(), grads[1].clone()
        control.before_step(0)
        opt.step()
        control.after_step(0)
        out = table.detach().clone(), trunk.detach().clone()
        with torch.no_grad():
            table.copy_(t0)
            trunk.copy_(w0)
        return out

    scaled_table, scaled_trunk = run(0.25, lr=0.1)
    ref_table, ref_trunk = run(1.0, lr=0.025)  # the reference: plain AdamW with lr x 0.25
    full_table, _ = run(1.0, lr=0.1)
    torch.testing.assert_close(scaled_trunk, ref_trunk)
    torch.testing.assert_close(scaled_table[:3], ref_table[:3])
    assert torch.equal(scaled_table[3:], full_table[3:])  # the new rows get the full update


# ------------------------------------------------------------------------------------------ report bench
def test_report_bench_on_a_toy_run(base_dir, ce_yaml, ce_tokens, tmp_path, capsys, load_bench):
    bench = load_bench("finetune_report")

    run = tmp_path / "run"
    cfg = _ft_config(ce_tokens, run, base_dir, ce_yaml, freeze_trunk_steps=2, old_params_lr_scale=0.5)
    # the shipped fine-tuning mixture names the new modality: the report's old-modality data must cope
    cfg = cfg.replace(masking={**cfg.masking.to_dict(), "train": "configs/masking/finetune_caption_embedding.yaml"})
    train(cfg)
    result = bench.report(run, None, None, 4, tolerance=0.05)
    assert list(result["old_modalities"]) == list(OLD) and list(result["new_modalities"]) == [NEW]
    for r in result["old_modalities"].values():
        assert r["original"] > 0 and r["finetuned"] > 0 and r["ratio"] == pytest.approx(r["finetuned"] / r["original"])
    new = result["new_modalities"][NEW]
    assert new["end"] < new["start"]  # 6 steps on the new modality lower its val loss
    # the same model on both sides: the same batches and masks, so exactly ratio 1
    same = bench.report(run, run / "model", None, 4, tolerance=0.0)
    assert same["ok"] and all(r["ratio"] == 1.0 for r in same["old_modalities"].values())
    assert bench.main(["--run", str(run), "--json", str(tmp_path / "r.json"), "--tolerance", "100"]) == 0
    out = capsys.readouterr().out
    assert "old modality" in out and NEW in out and (tmp_path / "r.json").is_file()
    assert bench.main(["--run", str(tmp_path)]) == 2  # not a run: one error line


def test_report_bench_on_a_continuation_without_added_modalities(base_dir, ce_tokens, tmp_path, load_bench):
    """experiments/configs/train/world_pixels_embedding.yaml's case: init_from, nothing added; every modality is old."""
    bench = load_bench("finetune_report")
    run = tmp_path / "run"
    section = {"overrides": {}, "init_from": str(base_dir), "add_modalities": []}
    train(tiny_config(ce_tokens, run, steps=4, model=section, optim={"warmup_steps": 1},
                      data={"datasets": [{"path": str(ce_tokens)}], "modalities": list(OLD)}))  # fmt: skip
    result = bench.report(run, None, None, 4, tolerance=0.05)
    assert result["original"] == str(base_dir) and set(result["old_modalities"]) <= set(OLD)
    assert "rgb" in result["old_modalities"] and result["new_modalities"] == {} and result["new_inputs"] == {}
    for r in result["old_modalities"].values():
        assert r["ratio"] == pytest.approx(r["finetuned"] / r["original"]) and r["ratio"] != 1.0  # 4 steps moved it
    scratch = tmp_path / "scratch"
    train(tiny_config(ce_tokens, scratch, steps=2, data={"datasets": [{"path": str(ce_tokens)}], "modalities": list(OLD)}))
    with pytest.raises(FourmError, match="not a fine-tuning run"):
        bench.report(scratch, None, None, 4, tolerance=0.05)


# ------------------------------------------------------------------------------------------ patch modality
@pytest.fixture(scope="module")
def pix_yaml(tmp_path_factory) -> Path:
    """A patch modality over an 8 px rgb image: 16 patches of 2 x 2 x 3 values."""
    path = tmp_path_factory.mktemp("pixmods") / f"{PIX}.yaml"
    path.write_text(
        f"name: {PIX}\nkind: image\ndata_key: rgb\nvocab_size: 256\nnum_tokens: 16\npatch_size: 2\n"
        "channels: 3\nimage_size: 8\nvalue_range: [0, 255]\ninput: true\ntarget: false\n"
    )
    return path


@pytest.fixture(scope="module")
def pix_tokens(tmp_path_factory) -> Path:
    return write_pixel_tokens(tmp_path_factory.mktemp("pix") / "tokens")


def test_adding_a_patch_modality_trains_its_projection_only_while_frozen(base_dir, pix_yaml, pix_tokens, tmp_path):
    old = FourM.from_pretrained(base_dir).state_dict()
    model, new_rows = load_finetune_model(base_dir, [pix_yaml])
    assert model.config.modalities[PIX].patch_dim == 12 and not model.config.modalities[PIX].target
    assert {f"embeddings.patch_embed.{PIX}.weight", f"embeddings.patch_embed.{PIX}.bias"} <= set(new_rows)
    _old_rows_equal(old, model.state_dict())
    # the token table gets no rows for pixels: only the modality embeddings grow
    assert "embeddings.enc_tokens" not in new_rows
    proj = model.embeddings.patch_embed[PIX]  # the model's own init, at the position table's scale
    assert proj.weight.std().item() == pytest.approx(patch_init_std(12), rel=0.15)
    assert torch.equal(proj.bias, torch.zeros_like(proj.bias))

    cfg = _ft_config(pix_tokens, tmp_path / "run", base_dir, pix_yaml, freeze_trunk_steps=3)
    cfg = cfg.replace(masking=cfg.masking.replace(input_budget=24))
    trained = train(cfg, stop_at=3).model
    state = trained.state_dict()
    _old_rows_equal(old, state)
    weight = f"embeddings.patch_embed.{PIX}.weight"
    assert not torch.equal(state[weight], model.state_dict()[weight])
    import csv

    with open(tmp_path / "run" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows and all(not r.get(f"loss_{PIX}") for r in rows)  # never a target: no loss
    assert all(r["loss_depth"] for r in rows)


def test_report_compares_the_new_input_with_the_old_tokens(base_dir, pix_yaml, pix_tokens, tmp_path, load_bench):
    bench = load_bench("finetune_report")
    cfg = _ft_config(pix_tokens, tmp_path / "run", base_dir, pix_yaml, freeze_trunk_steps=2)
    train(cfg.replace(masking=cfg.masking.replace(input_budget=24)))
    result = bench.report(tmp_path / "run", None, None, 4, tolerance=0.05)
    assert result["new_modalities"] == {}  # an input-only modality has no loss of its own
    new = result["new_inputs"][PIX]
    assert new["source"] == "rgb" and set(new["targets"]) == {"depth", "caption"}  # rgb: input on one side
    for v in new["targets"].values():
        assert all(np.isfinite(x) and x > 0 for x in v.values())
        assert v["original_tokens"] != v["finetuned_new"]


def test_a_new_token_table_starts_at_token_init_std():
    """Adding the first sequence target makes the decoder-input table new: its rows start at the model's
    token_init_std (the encoder rows of the added modality match the old rows' statistics)."""
    from fourm.model.config import FourMConfig

    images = {k: v for k, v in OLD.items() if k != "caption"}
    old = FourM(FourMConfig.from_dict({**ARCH, "dim": 64, "token_init_std": 0.5, "modalities": images}))
    model, new_rows = expand_model(old, {"caption": ModalityConfig("sequence", 256, 12)}, seed=0)
    assert new_rows["embeddings.dec_tokens"] == 0
    assert abs(float(model.embeddings.dec_tokens.detach().std()) - 0.5) < 0.05
    assert float(model.output_weight.detach()[-256:].std()) < 0.05  # the new head: init_std (0.02)
