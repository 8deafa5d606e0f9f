"""Wrong results from odd but valid inputs: 16-bit / float images, EXIF orientation, huge images,
non-finite numbers in configs and generation settings, a config that does not match its weights."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from bad_inputs_support import BINARY, NON_UTF8, bomb_png, grey16_png
from PIL import Image

from fourm.codecs.values import load_image
from fourm.data.user.readers import read_depth, read_edges, read_rgb
from fourm.data.user.report import SkipSample
from fourm.errors import FourmError
from fourm.generation.chain import GenerationTarget
from fourm.utils.config import ALLOW_NONFINITE, Config, read_json_object, read_mapping, read_yaml_mapping

GRADIENT16 = (np.arange(32 * 32).reshape(32, 32) * 64).astype(np.uint16)  # 0 .. 65472


def test_16bit_png_reads_scaled_not_clipped(tmp_path):
    path = grey16_png(tmp_path / "g.png", GRADIENT16)
    expected = np.rint(GRADIENT16 / 257.0)
    rgb = read_rgb(path)
    assert rgb.shape == (32, 32, 3) and np.abs(rgb[..., 0] - expected).max() <= 1
    assert (rgb == 255).mean() < 0.01  # it used to be 99.6 % white
    cond = load_image(str(path), "rgb", 32)
    assert np.abs(cond[..., 0].astype(int) - expected).max() <= 1
    assert np.allclose(load_image(str(path), "depth", 32), GRADIENT16 / 65535.0, atol=1e-6)
    assert np.allclose(read_depth(path), GRADIENT16 / 65535.0, atol=1e-6)


def test_16bit_edges_ignore_faint_noise(tmp_path):
    values = np.full((32, 32), 40, dtype=np.uint16)  # faint noise: 40/65535, 0 in 8 bits
    values[:, 16] = 65535  # one real edge
    path = grey16_png(tmp_path / "e.png", values)
    edges = read_edges(path)
    assert edges[:, 16].all() and edges.sum() == 32  # it used to mark every pixel
    cond = load_image(str(path), "edges", 32)
    assert cond[:, 16].all() and cond.sum() == 32


def test_float_images_are_scaled(tmp_path):
    ramp = np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32)
    Image.fromarray(ramp, mode="F").save(tmp_path / "f.tif")
    assert abs(read_rgb(tmp_path / "f.tif").mean() - 127.5) < 1  # it used to be ~0 (clipped)
    metres = ramp * 10.0  # depth in metres: min-max, not clipped at 1
    Image.fromarray(metres, mode="F").save(tmp_path / "m.tif")
    depth = load_image(str(tmp_path / "m.tif"), "depth", 32)
    assert depth.min() == 0.0 and depth.max() == pytest.approx(1.0) and (depth < 1).mean() > 0.9


def test_one_bit_images_read_as_black_and_white(tmp_path):
    """A 1-bit picture (PIL mode 1) given as depth: white is 1, as its greyscale copy reads (it was / 65535)."""
    half = np.zeros((32, 32), dtype=bool)
    half[:, 16:] = True
    Image.fromarray(half).save(tmp_path / "bw.png")
    Image.fromarray(half.astype(np.uint8) * 255).save(tmp_path / "grey.png")
    depth = load_image(str(tmp_path / "bw.png"), "depth", 32)
    assert np.array_equal(depth, load_image(str(tmp_path / "grey.png"), "depth", 32))
    assert depth[:, :16].max() == 0.0 and depth[:, 16:].min() == 1.0
    assert np.array_equal(load_image(str(tmp_path / "bw.png"), "edges", 32), half.astype(np.uint8))


def test_exif_orientation_is_honoured(tmp_path):
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    img.paste((0, 0, 255), (0, 0, 20, 20))  # left half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown: the blue half goes on top
    img.save(tmp_path / "p.jpg", exif=exif, quality=95)
    for arr in (load_image(str(tmp_path / "p.jpg"), "rgb", 20), read_rgb(tmp_path / "p.jpg")):
        h = arr.shape[0]
        top, bottom = arr[h // 8].mean(0), arr[-h // 8].mean(0)
        assert top[2] > 200 and top[0] < 60, top
        assert bottom[0] > 200 and bottom[2] < 60, bottom


def test_decompression_bomb_is_refused(tmp_path):
    for side, message in ((100_000, "decompression bomb"), (9000, "too large: 9000x9000")):  # PIL only warns at 9000
        path = bomb_png(tmp_path / f"bomb{side}.png", side)
        with pytest.raises(FourmError, match=message):
            load_image(str(path), "rgb", 32)
        with pytest.raises(SkipSample):
            read_rgb(path)


@dataclass
class _Cfg(Config):
    lr: float = 1e-3
    clip: float | None = None
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    weights: dict[str, float] = field(default_factory=dict)
    limit: float = field(default=math.inf, metadata={ALLOW_NONFINITE: True})


@pytest.mark.parametrize(
    ("data", "field_name"),
    [({"lr": math.nan}, "lr"), ({"lr": math.inf}, "lr"), ({"clip": -math.inf}, "clip"),
     ({"betas": [0.9, math.nan]}, "betas[1]"), ({"weights": {"a": math.inf}}, "weights.a"), ({"lr": 10**400}, "lr")],
)  # fmt: skip
def test_config_floats_must_be_finite(data, field_name):
    with pytest.raises(FourmError, match=rf"'{field_name.replace('[', '.').replace(']', '.')}'.*finite"):
        _Cfg.from_dict(data)


def test_config_field_may_allow_nonfinite():
    assert _Cfg.from_dict({"limit": math.inf}).limit == math.inf
    assert _Cfg.from_dict({"lr": 2}).lr == 2.0


@pytest.mark.parametrize(
    "kwargs",
    [{"temperature": math.nan}, {"temperature": math.inf}, {"temperature_end": math.nan}, {"guidance_scale": math.nan},
     {"guidance_scale": -math.inf}, {"top_p": math.nan}, {"confidence_noise": math.nan},
     {"guidance_weights": {"caption": math.nan}}],
)  # fmt: skip
def test_generation_target_rejects_nonfinite(kwargs):
    with pytest.raises(FourmError, match="finite|top_p"):
        GenerationTarget("rgb", **kwargs)
    with pytest.raises(FourmError):
        GenerationTarget.from_dict({"modality": "rgb", **kwargs})


@pytest.mark.parametrize(
    ("content", "message"),
    [(BINARY, "not UTF-8 text"), (NON_UTF8, "not UTF-8 text"), (b"\x00\x00", "NUL"), (b"[1]", "must hold"),
     (b"{", "malformed")],
)  # fmt: skip
def test_shared_readers_give_one_line_errors(tmp_path, content, message):
    for name, reader in (("x.json", read_json_object), ("x.yaml", read_yaml_mapping), ("y.json", read_mapping)):
        path = tmp_path / name
        path.write_bytes(content)
        if reader is read_yaml_mapping and content == b"{":
            message_here = "malformed"
        else:
            message_here = message
        with pytest.raises(FourmError, match=message_here) as info:
            reader(path)
        assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_mismatched_config_is_refused_before_building_the_model(tmp_path, monkeypatch):
    """A config.json with a huge dim fails on the safetensors header; no model is built on a real device."""
    from fourm.model.fourm import FourM
    from fourm.testing.bundles import build_toy_bundle

    model = build_toy_bundle(tmp_path / "b") / "model"
    big = shutil.copytree(model, tmp_path / "big")
    cfg = json.loads((big / "config.json").read_text())
    cfg["dim"] = 65536
    (big / "config.json").write_text(json.dumps(cfg))
    built = []
    original = FourM.__init__

    def spy(self, *args, **kwargs):
        built.append(torch.empty(0).device.type)  # the default device while building
        original(self, *args, **kwargs)

    monkeypatch.setattr(FourM, "__init__", spy)
    with pytest.raises(FourmError, match="does not match"):
        FourM.from_pretrained(big)
    assert built == ["meta"]
    assert FourM.from_pretrained(model) is not None and built[-1] == "cpu"


def test_outputs_respect_the_umask(tmp_path):
    import os

    from fourm.utils.atomic import atomic_dir, atomic_write_text

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "f.txt", "x")
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "a").write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o644
    from fourm.utils.atomic import atomic_path

    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "g.bin") as tmp:  # a writer that replaces the temporary file
            tmp.unlink()
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600)
            os.close(fd)
    finally:
        os.umask(old)
    assert (tmp_path / "g.bin").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755
