"""``base:`` includes in config files (fourm.utils.config.read_mapping): merge rules, relative and
shipped paths, chains, cycles and missing bases, and the shipped configs that use it."""

from pathlib import Path

import pytest
import yaml

from fourm.errors import FourmError
from fourm.resources import CONFIG_ROOT
from fourm.utils.config import merge_mappings, read_mapping

REPO = Path(__file__).resolve().parents[2]


def write(path: Path, data: dict | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def test_merge_rules():
    base = {"a": 1, "opt": {"lr": 1.0, "betas": [0.9, 0.95], "inner": {"x": 1, "y": 2}}, "items": [1, 2, 3]}
    update = {"opt": {"lr": 2.0, "betas": [0.5], "inner": {"y": 3}}, "items": [4], "b": None}
    merged = merge_mappings(base, update)
    assert merged == {"a": 1, "opt": {"lr": 2.0, "betas": [0.5], "inner": {"x": 1, "y": 3}}, "items": [4], "b": None}
    assert base["opt"]["inner"] == {"x": 1, "y": 2} and base["items"] == [1, 2, 3]  # inputs untouched
    # a scalar replaces a mapping and a mapping replaces a scalar
    assert merge_mappings({"s": {"k": 1}}, {"s": 0}) == {"s": 0}
    assert merge_mappings({"s": 0}, {"s": {"k": 1}}) == {"s": {"k": 1}}


def test_base_relative_to_the_file_and_chained(tmp_path, monkeypatch):
    write(tmp_path / "configs" / "root.yaml", {"steps": 10, "optim": {"lr": 1.0, "wd": 0.1}, "tags": ["a", "b"]})
    write(tmp_path / "configs" / "sub" / "mid.yaml", {"base": "../root.yaml", "optim": {"lr": 2.0}})
    leaf = write(tmp_path / "configs" / "sub" / "leaf.json", '{"base": "mid.yaml", "tags": ["c"], "seed": 3}')
    monkeypatch.chdir(REPO)  # the working directory plays no part in a relative base
    assert read_mapping(leaf) == {"steps": 10, "optim": {"lr": 2.0, "wd": 0.1}, "tags": ["c"], "seed": 3}


def test_base_names_a_shipped_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the checkout: "configs/..." is the packaged copy
    mine = write(tmp_path / "elsewhere" / "tok.yaml", {"base": "configs/tokenizers/rgb.yaml", "train": {"steps": 7}})
    short = write(tmp_path / "elsewhere" / "tok2.yaml", {"base": "tokenizers/rgb.yaml"})
    shipped = read_mapping(CONFIG_ROOT / "tokenizers" / "rgb.yaml")
    assert read_mapping(mine) == merge_mappings(shipped, {"train": {"steps": 7}})
    assert read_mapping(short) == shipped


def test_base_cycle_is_one_line_error(tmp_path):
    write(tmp_path / "a.yaml", {"base": "b.yaml", "x": 1})
    write(tmp_path / "b.yaml", {"base": "a.yaml", "y": 2})
    with pytest.raises(FourmError, match="cycle") as e:
        read_mapping(tmp_path / "a.yaml")
    assert "\n" not in str(e.value) and "a.yaml -> " in str(e.value)
    write(tmp_path / "self.yaml", {"base": "self.yaml"})
    with pytest.raises(FourmError, match="cycle"):
        read_mapping(tmp_path / "self.yaml")


@pytest.mark.parametrize(
    "base, fragment",
    [("nowhere.yaml", "base 'nowhere.yaml' not found"), (3, "must name a config file"), ("", "must name a config file"),
     ([1], "must name a config file")],
)
def test_bad_base_is_one_line_error(tmp_path, base, fragment):
    path = write(tmp_path / "c.yaml", {"base": base, "x": 1})
    with pytest.raises(FourmError, match=fragment) as e:
        read_mapping(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_malformed_base_names_the_base_file(tmp_path):
    write(tmp_path / "broken.yaml", "a: [1, 2\n")
    path = write(tmp_path / "c.yaml", {"base": "broken.yaml"})
    with pytest.raises(FourmError, match="broken.yaml"):
        read_mapping(path)


def test_shipped_configs_that_use_base_load():
    from tokenizers_zoo.image.config import ImageTokenizerConfig

    titok = read_mapping(REPO / "configs" / "tokenizers" / "rgb_titok.yaml")
    assert "base" not in titok and titok["architecture"] == "titok" and titok["quantizer"]["kind"] == "vq"
    vqgan = ImageTokenizerConfig.from_dict(read_mapping(REPO / "configs" / "tokenizers" / "rgb_vqgan.yaml"))
    assert vqgan.gan.enabled and vqgan.quantizer.codebook_size == 1024 and vqgan.loss.detail_weight == 0.0
