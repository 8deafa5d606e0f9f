"""fourm.generation.bundle_layout: the one home of a bundle's files (paths, checked reads, atomic writes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import fourm.generation.bundle_layout as layout
from fourm.errors import FourmError
from fourm.generation.assemble import assemble_bundle
from fourm.generation.bundle_layout import (
    GENERATION_FILE,
    MODEL_DIR,
    REGISTRY_FILE,
    is_bundle,
    load_generation_defaults,
    load_registry,
    resolve_bundle,
    tokenizer_ref,
    write_bundle,
    write_generation_defaults,
    write_registry,
)
from fourm.generation.pipeline import DEFAULT_BUNDLE, FourMPipeline
from fourm.testing.bundles import toy_pipeline
from fourm.utils.config import read_json_object
from fourm.utils.weights import load_state_checked

MODS = ("rgb", "caption", "bboxes")


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    pipe = toy_pipeline(modalities=MODS)
    pipe.set_defaults("rgb", guidance_scale=2.0)
    return pipe.save_pretrained(tmp_path_factory.mktemp("layout") / "bundle")


def test_round_trip_save_load_is_equal_and_writes_the_same_files(bundle, tmp_path):
    assert is_bundle(bundle) and sorted(p.name for p in bundle.iterdir()) == [
        GENERATION_FILE, REGISTRY_FILE, MODEL_DIR, "tokenizers"]  # fmt: skip
    pipe = FourMPipeline.from_pretrained(bundle, device="cpu")
    original = toy_pipeline(modalities=MODS)
    for key, value in original.model.state_dict().items():
        assert torch.equal(pipe.model.state_dict()[key], value)
    for name in pipe.modalities:  # the same registry entries, tokenizer paths now inside the bundle
        saved, given = pipe.registry[name].to_dict(), original.registry[name].to_dict()
        assert {**saved, "tokenizer": None} == {**given, "tokenizer": None}
        assert saved["tokenizer"] is None or (bundle / saved["tokenizer"]).is_dir()
    assert pipe.generation_defaults == {"rgb": {"guidance_scale": 2.0}}
    again = pipe.save_pretrained(tmp_path / "again")
    assert files(again) == files(bundle)  # loading and saving again writes the very same bytes


def test_registry_and_generation_defaults_round_trip(bundle, tmp_path):
    registry = load_registry(bundle)
    write_registry(tmp_path, registry)
    assert load_registry(tmp_path).to_dict() == registry.to_dict()
    assert (tmp_path / REGISTRY_FILE).read_bytes() == (bundle / REGISTRY_FILE).read_bytes()
    write_generation_defaults(tmp_path, {"caption": {"top_p": 0.5}})
    assert load_generation_defaults(tmp_path) == {"caption": {"top_p": 0.5}}
    assert load_generation_defaults(tmp_path / "nothing_here") == {}
    assert tokenizer_ref("rgb") == "tokenizers/rgb"


def test_the_shipped_bundle_still_loads():
    root = resolve_bundle(DEFAULT_BUNDLE)
    assert is_bundle(root) and len(load_registry(root)) > 0
    assert isinstance(load_generation_defaults(root), dict)


def test_write_registry_refuses_an_invalid_entry(tmp_path):
    with pytest.raises(FourmError) as e:
        write_registry(tmp_path, {"rgb": ["not", "a", "mapping"]})
    assert "rgb" in one_line(e) and not (tmp_path / REGISTRY_FILE).exists()


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda b: (b / REGISTRY_FILE).write_text("{"), "corrupt registry file"),
        (lambda b: (b / REGISTRY_FILE).write_text("[1, 2]"), "corrupt registry file"),
        (lambda b: (b / REGISTRY_FILE).write_bytes(b"\xff\xfe{}"), "corrupt registry file"),
        (lambda b: (b / GENERATION_FILE).write_text('{"targets": '), "corrupt generation defaults"),
        (lambda b: (b / GENERATION_FILE).write_text('{"rgb": {}}'), "expected a JSON object"),
    ],
)
def test_a_corrupt_json_part_is_one_line_naming_the_file(bundle, tmp_path, damage, message):
    import shutil

    copy = Path(shutil.copytree(bundle, tmp_path / "b"))
    damage(copy)
    with pytest.raises(FourmError, match=message) as e:
        FourMPipeline.from_pretrained(copy, device="cpu")
    text = one_line(e)
    assert str(copy / (REGISTRY_FILE if "registry" in message else GENERATION_FILE)) in text


@pytest.mark.parametrize("part", [MODEL_DIR, "tokenizers/rgb", "model/model.safetensors"])
def test_a_missing_part_is_one_line_naming_it(bundle, tmp_path, part):
    import shutil

    copy = Path(shutil.copytree(bundle, tmp_path / "b"))
    target = copy / part
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(FourmError) as e:
        FourMPipeline.from_pretrained(copy, device="cpu")
    assert Path(part).name in one_line(e) and str(copy) in str(e.value)


def test_a_missing_bundle_is_one_line(tmp_path):
    with pytest.raises(FourmError, match="model bundle not found") as e:
        resolve_bundle(tmp_path / "nope")
    one_line(e)
    with pytest.raises(FourmError, match="no model/ directory") as e:
        resolve_bundle(tmp_path)
    one_line(e)


def _fail(*args, **kwargs):
    raise RuntimeError("disk full (simulated)")


def test_save_pretrained_failing_midway_leaves_no_half_bundle(tmp_path, monkeypatch):
    import fourm.generation.pipeline as pipeline_module

    pipe = toy_pipeline(modalities=MODS)
    pipe.set_defaults("rgb", guidance_scale=2.0)
    monkeypatch.setattr(pipeline_module, "write_generation_defaults", _fail)  # the last part written
    with pytest.raises(RuntimeError, match="simulated"):
        pipe.save_pretrained(tmp_path / "new")
    assert list(tmp_path.iterdir()) == []  # no bundle, no temporary left behind

    monkeypatch.undo()
    old = pipe.save_pretrained(tmp_path / "old")
    before = files(old)
    monkeypatch.setattr(pipeline_module, "write_registry", _fail)
    pipe.set_defaults("rgb", guidance_scale=3.0)
    with pytest.raises(RuntimeError, match="simulated"):
        pipe.save_pretrained(old)
    assert files(old) == before and [p.name for p in tmp_path.iterdir()] == ["old"]


def test_write_bundle_is_all_or_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with write_bundle(tmp_path / "out") as tmp:
            write_registry(tmp, {})
            _fail()
    assert list(tmp_path.iterdir()) == []
    with write_bundle(tmp_path / "out") as tmp:
        write_registry(tmp, {})
    assert json.loads((tmp_path / "out" / REGISTRY_FILE).read_text()) == {}


def test_assemble_failing_midway_leaves_no_half_bundle(bundle, tmp_path, monkeypatch):
    import fourm.generation.assemble as assemble_module

    monkeypatch.setattr(assemble_module, "write_registry", _fail)
    with pytest.raises(RuntimeError, match="simulated"):
        assemble_bundle(bundle / MODEL_DIR, tmp_path / "out", base=bundle)
    assert list(tmp_path.iterdir()) == []


def test_writers_are_atomic_per_file(tmp_path, monkeypatch):
    write_registry(tmp_path, {})
    before = (tmp_path / REGISTRY_FILE).read_bytes()
    monkeypatch.setattr(layout.json, "dumps", _fail)
    with pytest.raises(RuntimeError):
        write_registry(tmp_path, {})
    assert (tmp_path / REGISTRY_FILE).read_bytes() == before


# ------------------------------------------------------------------------------ the shared helpers
def test_read_json_object_with_the_owner_wording(tmp_path):
    path = tmp_path / "state.json"
    path.write_text("{broken")
    with pytest.raises(FourmError, match=f"^corrupt thing {path}: ") as e:
        read_json_object(path, "thing", corrupt="corrupt thing")
    one_line(e)
    path.write_text("[]")
    with pytest.raises(FourmError, match="expected a JSON object, got list"):
        read_json_object(path, "thing", corrupt="corrupt thing")
    with pytest.raises(FourmError, match="thing not found"):
        read_json_object(tmp_path / "missing.json", "thing", corrupt="corrupt thing")
    path.write_text('{"a": 1}')
    assert read_json_object(path, corrupt="corrupt thing") == {"a": 1}


def test_load_state_checked_names_missing_unexpected_and_shapes():
    module = torch.nn.Linear(2, 3)
    with pytest.raises(FourmError, match=r"^subject: missing \['bias'\]"):
        load_state_checked(module, {"weight": torch.zeros(3, 2)}, "subject")
    with pytest.raises(FourmError, match=r"unexpected \['extra'\]"):
        load_state_checked(module, {**module.state_dict(), "extra": torch.zeros(1)}, "subject")
    with pytest.raises(FourmError, match="'weight' has shape"):
        load_state_checked(module, {"weight": torch.zeros(2, 2), "bias": torch.zeros(3)}, "subject")
    state = {"weight": torch.ones(3, 2), "bias": torch.ones(3)}
    assert load_state_checked(module, state, "subject") is module and torch.equal(module.weight, state["weight"])
