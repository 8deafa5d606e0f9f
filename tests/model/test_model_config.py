"""FourMConfig: presets, YAML files, registry conversion, validation."""

from pathlib import Path
from types import SimpleNamespace

import pytest
from fourm_testing import TOY_MODALITIES

from fourm.errors import FourmError
from fourm.model import PRESETS, FourMConfig, ModalityConfig
from fourm.utils.config import read_mapping

REPO = Path(__file__).resolve().parents[2]


def test_presets_sizes():
    sizes = {n: (c["dim"], c["enc_depth"], c["dec_depth"], c["num_heads"]) for n, c in PRESETS.items()}
    assert sizes == {"tiny": (384, 6, 6, 6), "small": (512, 8, 8, 8), "base": (768, 12, 12, 12), "large": (1024, 24, 24, 16)}
    assert FourMConfig.preset("tiny", TOY_MODALITIES).mlp_hidden == 1024  # 8/3 * 384
    assert FourMConfig.preset("large", TOY_MODALITIES).mlp_hidden == 2752  # 2730.7 -> nearest multiple of 64


@pytest.mark.parametrize("name", list(PRESETS))
def test_yaml_files_match_presets(name):
    from_file = FourMConfig.load(REPO / "configs" / "models" / f"{name}.yaml", TOY_MODALITIES)
    assert from_file == FourMConfig.preset(name, TOY_MODALITIES)
    assert FourMConfig.load(name, TOY_MODALITIES) == from_file


def test_json_round_trip(tmp_path):
    cfg = FourMConfig.preset("small", TOY_MODALITIES, qk_norm=True)
    cfg.save_json(tmp_path / "c.json")
    assert FourMConfig.from_file(tmp_path / "c.json") == cfg
    assert cfg.modality_names == ["rgb", "depth", "caption", "meta"]
    assert cfg.modality_index("caption") == 2


def test_from_registry_objects():
    specs = [
        SimpleNamespace(name="rgb", kind="image", vocab_size=64, num_tokens=16, max_length=None, input=True, target=True),
        SimpleNamespace(name="caption", kind="sequence", vocab_size=99, num_tokens=None, max_length=20, input=True, target=False),
    ]
    cfg = FourMConfig.from_registry(specs, "tiny", dim=64, num_heads=4)
    assert cfg.modalities == {
        "rgb": ModalityConfig("image", 64, 16),
        "caption": ModalityConfig("sequence", 99, 20, input=True, target=False),
    }
    assert cfg.dim == 64 and cfg.enc_depth == 6


def test_from_repo_registry():
    from fourm.modalities import default_registry

    registry = default_registry()
    cfg = FourMConfig.from_registry(registry, "tiny")
    assert cfg.modality_names == registry.names
    for name in registry:
        assert cfg.modalities[name].vocab_size == registry[name].vocab_size
        assert cfg.modalities[name].length == registry[name].length


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"dim": 32}, "divisible by num_heads"),
        ({"dim": 42, "num_heads": 6}, "divisible by 4"),
        ({"enc_depth": 0}, "enc_depth must be > 0"),
        ({"dropout": 1.0}, "dropout must be in"),
        ({"modalities": {}}, "modalities is empty"),
        ({"modalities": {"rgb": {"kind": "image", "vocab_size": 8, "length": 15}}}, "square number"),
        ({"modalities": {"rgb": {"kind": "picture", "vocab_size": 8, "length": 16}}}, "invalid value for 'modalities.rgb.kind'"),
        ({"modalities": {"x": {"kind": "vector", "vocab_size": 8, "length": 2, "target": False}}}, "no modality has target"),
        ({"widht": 3}, "unknown config field 'widht'"),
    ],
)
def test_validation_errors(changes, message):
    data = {**PRESETS["tiny"], "modalities": {k: v.to_dict() for k, v in TOY_MODALITIES.items()}, **changes}
    with pytest.raises(FourmError, match=message):
        FourMConfig.from_dict(data)


def test_unknown_preset_and_bad_registry_kind():
    with pytest.raises(FourmError, match="unknown model preset 'huge'"):
        FourMConfig.preset("huge", TOY_MODALITIES)
    bad = SimpleNamespace(name="x", kind="graph", vocab_size=3, num_tokens=2, max_length=None)
    with pytest.raises(FourmError, match="unknown kind 'graph'"):
        FourMConfig.from_registry([bad])
    assert read_mapping(REPO / "configs" / "models" / "tiny.yaml")["dim"] == 384
