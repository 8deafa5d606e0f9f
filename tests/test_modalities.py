"""Modality registry: shipped configs, validation errors naming the field, lookups and order."""

import pytest
import yaml

from fourm.errors import FourmError
from fourm.modalities import CONFIG_DIR, ModalityRegistry, ModalitySpec, default_registry

RGB = {"name": "rgb", "kind": "image", "tokenizer": "tokenizers/rgb", "vocab_size": 1024, "num_tokens": 64}
CAPTION = {"name": "caption", "kind": "sequence", "vocab_size": 4096, "max_length": 48}


def _write(folder, name, data):
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_shipped_configs():
    reg = default_registry()
    assert reg.names == [
        "rgb", "depth", "semseg", "normals", "edges", "caption", "bboxes", "metadata", "color_palette"
    ]  # fmt: skip
    assert (reg["rgb"].vocab_size, reg["rgb"].num_tokens, reg["rgb"].channels, reg["rgb"].image_size) == (
        1024, 64, 3, 64
    )  # fmt: skip
    assert reg["depth"].vocab_size == 512 and reg["semseg"].num_classes == 8
    assert reg["caption"].kind == "sequence" and reg["caption"].max_length == 64
    assert reg["caption"].tokenizer == "tokenizers/text" and reg["edges"].tokenizer == "tokenizers/edges"
    assert [m.name for m in reg.image_modalities()] == ["rgb", "depth", "semseg", "normals", "edges"]
    assert [m.name for m in reg.sequence_modalities()] == ["caption", "bboxes", "metadata", "color_palette"]
    assert all(m.data_key == m.name for m in reg.values())
    assert reg["rgb"].grid_size == 8 and reg["metadata"].length == 48
    assert "rgb" in reg and "rgbb" not in reg and len(reg) == 9 and list(reg) == reg.names
    assert reg.index("caption") == 5


def test_round_trip_and_order(tmp_path):
    reg = default_registry()
    back = ModalityRegistry.from_dict(reg.to_dict())
    assert back.to_dict() == reg.to_dict()
    # order does not depend on the order specs were added: schema order, then others alphabetically
    extra = ModalitySpec.from_dict({"name": "clip", "kind": "vector", "vocab_size": 512, "num_tokens": 16})
    shuffled = ModalityRegistry([extra, reg["caption"], reg["rgb"], reg["depth"]])
    assert shuffled.names == ["rgb", "depth", "caption", "clip"]
    assert [m.name for m in shuffled.vector_modalities()] == ["clip"]


def test_unknown_modality_lookup():
    reg = default_registry()
    with pytest.raises(FourmError, match=r"unknown modality 'rgbb' \(known: rgb, depth, semseg"):
        reg["rgbb"]
    with pytest.raises(FourmError, match="unknown modality 'x'"):
        reg.subset(["rgb", "x"])


@pytest.mark.parametrize(
    "change, pattern",
    [
        ({"kind": "picture"}, r"'kind'.*'picture'"),
        ({"num_tokens": None}, r"modality 'rgb': field 'num_tokens' is required for kind 'image'"),
        ({"vocab_size": 0}, r"field 'vocab_size' must be > 0, got 0"),
        ({"colour": 3}, r"unknown config field 'colour'"),
        ({"input": False, "target": False}, r"'input' and 'target' are both false"),
        ({"num_tokens": 60}, r"field 'num_tokens' must be a square number"),
        ({"max_length": 10}, r"field 'max_length' does not apply to kind 'image'"),
        ({"value_range": [1.0, 0.0]}, r"field 'value_range' must be \[lo, hi\]"),
        ({"channels": -1}, r"field 'channels' must be > 0"),
        ({"vocab_size": "big"}, r"'vocab_size'.*expected an integer"),
    ],
)
def test_invalid_entry_names_the_field(tmp_path, change, pattern):
    data = {k: v for k, v in {**RGB, **change}.items() if v is not None}
    path = _write(tmp_path, "rgb", data)
    with pytest.raises(FourmError, match=pattern):
        ModalityRegistry.from_files([path])
    with pytest.raises(FourmError, match=pattern):
        ModalityRegistry.from_dir(tmp_path)


def test_sequence_needs_max_length(tmp_path):
    with pytest.raises(FourmError, match="field 'max_length' is required for kind 'sequence'"):
        ModalitySpec.from_dict({k: v for k, v in CAPTION.items() if k != "max_length"})
    with pytest.raises(FourmError, match="field 'num_tokens' does not apply to kind 'sequence'"):
        ModalitySpec.from_dict({**CAPTION, "num_tokens": 4})
    with pytest.raises(FourmError, match="missing config field 'vocab_size'"):
        ModalitySpec.from_dict({k: v for k, v in CAPTION.items() if k != "vocab_size"})


def test_name_file_mismatch(tmp_path):
    path = _write(tmp_path, "rgbx", RGB)
    with pytest.raises(FourmError, match=r"field 'name' is 'rgb' but the file is named 'rgbx.yaml'"):
        ModalityRegistry.from_dir(tmp_path)
    # a file without a name takes it from the file name
    path.unlink()
    _write(tmp_path, "photo", {k: v for k, v in RGB.items() if k != "name"})
    assert ModalityRegistry.from_dir(tmp_path).names == ["photo"]


def test_duplicate(tmp_path):
    (tmp_path / "a").mkdir()
    a = _write(tmp_path / "a", "rgb", RGB)
    b = _write(tmp_path, "rgb", RGB)
    with pytest.raises(FourmError, match="duplicate modality 'rgb'.*'name'"):
        ModalityRegistry.from_files([a, b])
    reg = default_registry()
    with pytest.raises(FourmError, match="duplicate modality 'caption'"):
        reg.add(ModalitySpec.from_dict(CAPTION))


def test_missing_dir_and_empty_dir(tmp_path):
    with pytest.raises(FourmError, match="modality config directory not found"):
        ModalityRegistry.from_dir(tmp_path / "nope")
    with pytest.raises(FourmError, match=r"no modality files \(\*.yaml\)"):
        ModalityRegistry.from_dir(tmp_path)


def test_config_dir_is_the_repo_one():
    assert CONFIG_DIR.is_dir() and (CONFIG_DIR / "rgb.yaml").is_file()
    for path in CONFIG_DIR.glob("*.yaml"):
        assert yaml.safe_load(path.read_text())["name"] == path.stem
