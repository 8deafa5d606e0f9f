"""fourm-recipe folder: the whole recipe on 64 tiny generated images, its resume, and bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from PIL import Image, ImageDraw

from fourm.cli.recipe import main
from fourm.recipe import STAGE_SHARES, plan_minutes

COLOURS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 70, 220), "yellow": (230, 210, 40)}
SHAPES = ("circle", "square", "triangle", "cross")
STAGES = ["import", "tokenizer_rgb", "text", "tokenize", "train", "bundle", "report"]


def draw(shape: str, colour: str, size: int = 32) -> Image.Image:
    img = Image.new("RGB", (size, size), (235, 235, 225))
    d, rgb, a, b = ImageDraw.Draw(img), COLOURS[colour], size // 5, size - size // 5
    if shape == "circle":
        d.ellipse([a, a, b, b], fill=rgb)
    elif shape == "square":
        d.rectangle([a, a, b, b], fill=rgb)
    elif shape == "triangle":
        d.polygon([(size // 2, a), (a, b), (b, b)], fill=rgb)
    else:
        d.rectangle([size // 2 - 3, a, size // 2 + 3, b], fill=rgb)
        d.rectangle([a, size // 2 - 3, b, size // 2 + 3], fill=rgb)
    return img


def make_folder(root: Path, num: int = 64, captions: bool = True, column: str = "text", size: int = 32) -> Path:
    """``num`` ``size`` x ``size`` pictures of a coloured shape and a metadata.jsonl naming them."""
    root.mkdir(parents=True)
    rows = []
    for i in range(num):
        colour, shape = list(COLOURS)[i % 4], SHAPES[(i // 4) % 4]
        name = f"img_{i:03d}.png"
        draw(shape, colour, size).save(root / name)
        row = {"file_name": name}
        if captions:
            row[column] = f"a {colour} {shape} on a pale ground"
        else:
            row["source"] = "generated"
        rows.append(json.dumps(row))
    (root / "metadata.jsonl").write_text("\n".join(rows) + "\n")
    return root


TINY = ["--minutes", "1", "--tiny", "--tokenizer-steps", "8", "--train-steps", "6", "--val-fraction", "0.2"]


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("recipe")
    root = make_folder(base / "images")
    out = base / "run"
    rc = main(["folder", "--root", str(root), "--out", str(out), *TINY])
    assert rc == 0
    return root, out


def test_plan_shares_sum_to_one():
    assert abs(sum(STAGE_SHARES.values()) - 1.0) < 1e-9
    plan = plan_minutes(60)
    assert [s for s, _, _ in plan] == list(STAGE_SHARES)
    assert abs(sum(m for _, _, m in plan) - 60) < 1e-6


def test_recipe_writes_every_stage(recipe_run, capsys):
    _, out = recipe_run
    # 1. import, 2. tokenizer, 3. text vocabulary, 4. tokens, 5. run, 6. bundle, 7. report
    assert (out / "data" / "fourm_dataset.json").is_file()
    assert (out / "tokenizers" / "rgb" / "tokenizer" / "config.json").is_file()
    text = json.loads((out / "text_vocab.json").read_text())
    assert text["choice"] in ("shipped", "trained") and text["trained"]["tokens_per_caption"] > 1
    if text["choice"] == "trained":
        assert (out / "tokenizers" / "text" / "tokenizer.json").is_file()
    assert (out / "tokens" / "fourm_tokens.json").is_file()
    masking = yaml.safe_load((out / "masking.yaml").read_text())
    names = {e["name"] for e in masking["mixture"]}
    assert {"caption_to_rgb", "rgb_pixels_to_all"} <= names and "bboxes_to_rgb" not in names
    for entry in masking["mixture"]:
        assert set(entry["input_alphas"]) | set(entry["target_alphas"]) <= {"rgb", "caption", "rgb_pixels"}
    assert (out / "train" / "model" / "model.safetensors").is_file()
    assert (out / "bundle" / "modalities.json").is_file() and (out / "bundle" / "model").is_dir()
    assert set(json.loads((out / "bundle" / "modalities.json").read_text())) == {"rgb", "caption", "rgb_pixels"}
    for stage in STAGES:
        assert (out / "stages" / f"{stage}.json").is_file(), stage
    plan = json.loads((out / "recipe.json").read_text())["plan"]
    assert [p["stage"] for p in plan] == list(STAGE_SHARES)

    report = json.loads((out / "report.json").read_text())
    assert 5.0 < report["tokenizer"]["psnr"] < 80.0 and report["tokenizer"]["num"] >= 4
    ret = report["retrieval"]
    assert ret["query"] == "caption" and ret["key"] == "rgb_pixels" and ret["num"] >= 4
    for k in ("@1", "@5", "@10"):
        assert 0.0 <= ret["recall"][k] <= 1.0
        assert ret["chance"][k] == pytest.approx(min(int(k[1:]), ret["num"]) / ret["num"])
    assert 1 <= ret["median_rank"] <= ret["num"] and 0 < ret["mrr"] <= 1
    assert 1 <= len(report["generation"]["captions"]) <= 8 and report["generation"]["samples"] == 4
    spread = report["diversity"]  # pixel distances of generated images: different vs same caption
    assert spread["prompts"] >= 4 and spread["samples"] == 4
    assert 0.0 <= spread["same"] <= 1.0 and 0.0 <= spread["different"] <= 1.0 and 0.0 <= spread["reference"] <= 1.0
    assert spread["ratio"] == pytest.approx(spread["different"] / spread["same"])
    with Image.open(out / "report.png") as img:
        assert img.width > 300 and img.height > 100


def test_second_run_skips_every_stage(recipe_run, capsys):
    root, out = recipe_run
    before = (out / "report.json").read_text()
    stamp = (out / "train" / "model" / "model.safetensors").stat().st_mtime_ns
    assert main(["folder", "--root", str(root), "--out", str(out), *TINY]) == 0
    printed = capsys.readouterr().out
    for stage in STAGES:
        assert f"[{stage}] skipped" in printed, stage
    assert "running" not in printed
    assert (out / "report.json").read_text() == before
    assert (out / "train" / "model" / "model.safetensors").stat().st_mtime_ns == stamp


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    return err


def test_no_images(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["folder", "--root", str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    assert "no images found" in _error(capsys)
    assert not (tmp_path / "out").exists()


def test_no_caption_column(tmp_path, capsys):
    root = make_folder(tmp_path / "images", num=20, captions=False)
    assert main(["folder", "--root", str(root), "--out", str(tmp_path / "out")]) == 2
    assert "no captions column" in _error(capsys)


def test_too_few_images_for_a_val_split(tmp_path, capsys):
    root = make_folder(tmp_path / "images", num=10)
    assert main(["folder", "--root", str(root), "--out", str(tmp_path / "out")]) == 2
    assert "too few images for a val split" in _error(capsys)


def test_bad_modality_and_budget(tmp_path, capsys):
    root = make_folder(tmp_path / "images", num=20)
    assert main(["folder", "--root", str(root), "--out", str(tmp_path / "o"), "--modalities", "rgb,depth,caption"]) == 2
    assert "unknown modality 'depth'" in _error(capsys)
    assert main(["folder", "--root", str(root), "--out", str(tmp_path / "o"), "--minutes", "0"]) == 2
    assert "--minutes" in _error(capsys)


def test_changed_input_reruns_only_what_it_changes(recipe_run, capsys):
    """A new --text-threshold re-runs the text stage; the vocabulary it picks is the same (the same
    trained one, byte for byte), so the tokens and everything after them are skipped."""
    root, out = recipe_run
    assert main(["folder", "--root", str(root), "--out", str(out), *TINY, "--text-threshold", "1.6"]) == 0
    printed = capsys.readouterr().out
    assert "[text] inputs changed (threshold): running it again" in printed
    for stage in ["import", "tokenizer_rgb", "tokenize", "train", "bundle", "report"]:
        assert f"[{stage}] skipped" in printed, stage
