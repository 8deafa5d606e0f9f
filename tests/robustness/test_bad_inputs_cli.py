"""Every CLI given bad input: exit code 2, one ``error: ...`` line on stderr naming the bad value, and
no existing file changed (the whole input tree is hashed before and after).

Cases are ``(id, command, argv, expected text in the error)``; ``{name}`` in argv is replaced by
the path of fixture ``name`` (see :func:`inputs`), ``{out}`` by a fresh output path outside it.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from bad_inputs_support import BINARY, NON_UTF8, bomb_png, corrupt_model_dir, tree_hash, write_index

REPO = Path(__file__).resolve().parents[2]
SURROGATE = b"a red \xff circle".decode("utf-8", "surrogateescape")  # how Python hands over non-UTF-8 argv


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """Tiny good and bad inputs in one folder (built once per module, ~3 s)."""
    return build_inputs(tmp_path_factory.mktemp("inputs"))


def build_inputs(root: Path) -> dict[str, Path]:
    """The inputs of :data:`CASES` under the existing empty folder ``root`` -> {name: path} (``root``
    too); also used by ``bench/bad_inputs.py``."""
    from fourm.data.raw_dataset import write_world_dataset
    from fourm.testing.bundles import build_toy_bundle

    p: dict[str, Path] = {"root": root}
    p["bundle"] = build_toy_bundle(root / "bundle", image_size=32)
    p["model"] = p["bundle"] / "model"
    p["raw"] = write_world_dataset(root / "raw", 4, size=32, val_fraction=0.5, num_workers=0)
    p["raw_empty_val"] = write_world_dataset(root / "raw_empty_val", 1, size=32, val_fraction=0.1, num_workers=0)
    p["tokens_like"] = shutil.copytree(p["raw"], root / "tokens_like")
    (p["tokens_like"] / "fourm_tokens.json").write_text("{}")
    p["raw_bad_info"] = shutil.copytree(p["raw"], root / "raw_bad_info")
    (p["raw_bad_info"] / "fourm_dataset.json").write_bytes(NON_UTF8)
    for name, data in {"binary.yaml": BINARY, "nonutf8.yaml": NON_UTF8, "binary.json": BINARY,
                       "nonutf8.json": b'{"size": "caf\xe9"}', "list.yaml": b"- 1\n- 2\n"}.items():  # fmt: skip
        (root / name).write_bytes(data)
        p[name] = root / name
    (root / "caption_embedding.yaml").write_bytes(NON_UTF8)  # a modality YAML with the expected name
    p["modality_nonutf8"] = root / "caption_embedding.yaml"
    p["bomb.png"] = bomb_png(root / "bomb.png")
    (root / "garbage.png").write_bytes(BINARY)
    p["garbage.png"] = root / "garbage.png"
    for how in ("garbage", "truncated", "huge_header", "dim65536"):
        p[f"model_{how}"] = corrupt_model_dir(p["model"], root / f"model_{how}", how)
    p["bundle_big"] = shutil.copytree(p["bundle"], root / "bundle_big")
    shutil.rmtree(p["bundle_big"] / "model")
    corrupt_model_dir(p["model"], p["bundle_big"] / "model", "dim65536")
    p["no_config"] = root / "no_config"
    p["no_config"].mkdir()
    (p["no_config"] / "model.safetensors").write_bytes(BINARY)
    p["tok_garbage"] = shutil.copytree(p["bundle"] / "tokenizers" / "rgb", root / "tok_garbage")
    (p["tok_garbage"] / "model.safetensors").write_bytes(BINARY)
    good_info = {"settings": {"method": "pooled", "align": False, "center": False}, "key": ["rgb"], "rows": [0],
                 "bundle": str(p["bundle"]), "model": None, "data": str(p["raw"]), "split": "train"}  # fmt: skip
    p["index_ok"] = write_index(root / "index_ok", good_info)
    p["index_no_settings"] = write_index(root / "index_no_settings", {k: v for k, v in good_info.items() if k != "settings"})
    p["index_settings_list"] = write_index(root / "index_settings_list", {**good_info, "settings": [1, 2]})
    p["index_settings_nan"] = write_index(
        root / "index_settings_nan", {**good_info, "settings": {**good_info["settings"], "align_ridge": float("nan")}}
    )
    p["index_rows_str"] = write_index(root / "index_rows_str", {**good_info, "rows": "0"})
    p["index_key_empty"] = write_index(root / "index_key_empty", {**good_info, "key": []})
    p["index_ids_int"] = write_index(root / "index_ids_int", good_info, {"ids": [7]})
    p["index_count_str"] = write_index(root / "index_count_str", good_info, {"count": "1"})
    p["index_nonutf8"] = write_index(root / "index_nonutf8", None, raw=b'{"format": "fourm-index", "x": "\xe9"}')
    p["index_binary"] = write_index(root / "index_binary", None, raw=BINARY)
    p["index_array"] = write_index(root / "index_array", None, raw=b"[1, 2]")
    folder = root / "imagefolder_bad_meta"
    folder.mkdir()
    (folder / "metadata.jsonl").write_bytes(b'{"file_name": "a.png", "text": "caf\xe9"}\n')
    p["imagefolder_bad_meta"] = folder
    folder = root / "imagefolder_bombs"
    folder.mkdir()
    bomb_png(folder / "a.png")
    bomb_png(folder / "b.png")
    p["imagefolder_bombs"] = folder
    return p


def _main(command: str):
    if command == "data":
        from fourm.cli.data import main
    elif command == "tokenizer":
        from fourm.cli.tokenizer import main
    elif command == "pack":
        from fourm.cli.pack import main
    elif command == "bundle":
        from fourm.cli.bundle import main
    elif command == "retrieve":
        from fourm.cli.retrieve import main
    elif command == "train":
        from fourm.cli.train import main
    elif command == "generate":
        from fourm.cli.generate import main
    elif command == "stem":
        from fourm.cli.stem import main
    else:
        raise ValueError(command)
    return main


GEN = ["--model", "{bundle}", "--no-progress", "--out", "{out}"]
CASES = [
    # fourm-data world
    ("world-size-huge", "data", ["world", "--out", "{out}", "--num", "2", "--size", "100000"], "'100000'"),
    ("world-size-zero", "data", ["world", "--out", "{out}", "--num", "2", "--size", "0"], "'0'"),
    ("world-val-nan", "data", ["world", "--out", "{out}", "--num", "2", "--val-fraction", "nan"], "'nan'"),
    ("world-val-inf", "data", ["world", "--out", "{out}", "--num", "2", "--val-fraction", "inf"], "'inf'"),
    ("world-val-1.5", "data", ["world", "--out", "{out}", "--num", "2", "--val-fraction", "1.5"], "'1.5'"),
    ("world-num-text", "data", ["world", "--out", "{out}", "--num", "many"], "'many'"),
    ("world-config-binary", "data", ["world", "--out", "{out}", "--num", "2", "--config", "{binary.yaml}"], "binary.yaml"),
    ("world-config-nonutf8", "data", ["world", "--out", "{out}", "--num", "2", "--config", "{nonutf8.yaml}"], "nonutf8.yaml"),
    ("world-config-list", "data", ["world", "--out", "{out}", "--num", "2", "--config", "{list.yaml}"], "list.yaml"),
    # fourm-data import
    ("import-size-huge", "data", ["import", "--source", "imagefolder", "--root", "{imagefolder_bombs}", "--out", "{out}",
                                  "--size", "100000"], "'100000'"),  # fmt: skip
    ("import-size-negative", "data", ["import", "--source", "imagefolder", "--root", "{imagefolder_bombs}", "--out",
                                      "{out}", "--size", "-3"], "'-3'"),  # fmt: skip
    ("import-val-nan", "data", ["import", "--source", "imagefolder", "--root", "{imagefolder_bombs}", "--out", "{out}",
                                "--val-fraction", "nan"], "'nan'"),  # fmt: skip
    ("import-source-bogus", "data", ["import", "--source", "bogus", "--root", "{raw}", "--out", "{out}"], "'bogus'"),
    ("import-root-missing", "data", ["import", "--source", "imagefolder", "--root", "{root}/nope", "--out", "{out}"], "nope"),
    ("import-meta-nonutf8", "data", ["import", "--source", "imagefolder", "--root", "{imagefolder_bad_meta}", "--out",
                                     "{out}"], "metadata.jsonl"),  # fmt: skip
    ("import-only-bombs", "data", ["import", "--source", "imagefolder", "--root", "{imagefolder_bombs}", "--out",
                                   "{out}"], "imagefolder_bombs"),  # fmt: skip
    # fourm-data show
    ("show-scale-huge", "data", ["show", "--data", "{raw}", "--out", "{out}.png", "--scale", "1000"], "'1000'"),
    ("show-num-zero", "data", ["show", "--data", "{raw}", "--out", "{out}.png", "--num", "0"], "--num"),
    ("show-split-missing", "data", ["show", "--data", "{raw}", "--out", "{out}.png", "--split", "nope"], "'nope'"),
    ("show-data-missing", "data", ["show", "--data", "{root}/nope", "--out", "{out}.png"], "nope"),
    # fourm-data tokenize
    ("tokenize-empty-split", "data", ["tokenize", "--data", "{raw_empty_val}", "--out", "{out}"], "'val'"),
    ("tokenize-token-dataset", "data", ["tokenize", "--data", "{tokens_like}", "--out", "{out}"], "token dataset"),
    ("tokenize-modality-binary", "data", ["tokenize", "--data", "{raw}", "--out", "{out}", "--add-modality",
                                          "{binary.yaml}"], "binary.yaml"),  # fmt: skip
    ("tokenize-modality-nonutf8", "data", ["tokenize", "--data", "{raw}", "--out", "{out}", "--add-modality",
                                           "{modality_nonutf8}"], "caption_embedding.yaml"),  # fmt: skip
    ("tokenize-batch-text", "data", ["tokenize", "--data", "{raw}", "--out", "{out}", "--batch-size", "lots"], "'lots'"),
    ("tokenize-data-missing", "data", ["tokenize", "--data", "{root}/nope", "--out", "{out}"], "nope"),
    # fourm-data embed
    ("embed-data-missing", "data", ["embed", "--data", "{root}/nope"], "nope"),
    ("embed-batch-zero", "data", ["embed", "--data", "{raw}", "--out", "{out}", "--batch-size", "0"], "--batch-size"),
    ("embed-info-nonutf8", "data", ["embed", "--data", "{raw_bad_info}", "--out", "{out}"], "fourm_dataset.json"),
    # fourm-tokenizer
    ("tok-train-config-binary", "tokenizer", ["train", "--config", "{binary.yaml}", "--data", "{raw}", "--out", "{out}"],
     "binary.yaml"),  # fmt: skip
    ("tok-train-lr-nan", "tokenizer", ["train", "--config", str(REPO / "configs/tokenizers/rgb.yaml"), "--data", "{raw}",
                                       "--out", "{out}", "train.lr=nan"], "train.lr"),  # fmt: skip
    ("tok-train-minutes-nan", "tokenizer", ["train", "--config", str(REPO / "configs/tokenizers/rgb.yaml"), "--data",
                                            "{raw}", "--out", "{out}", "--max-minutes", "nan"], "'nan'"),  # fmt: skip
    ("tok-eval-empty-split", "tokenizer", ["eval", "--tokenizer", "{bundle}/tokenizers/rgb", "--data",
                                           "{raw_empty_val}", "--split", "val"], "'val'"),  # fmt: skip
    ("tok-eval-num-zero", "tokenizer", ["eval", "--tokenizer", "{bundle}/tokenizers/rgb", "--data", "{raw}", "--num",
                                        "0"], "--num"),  # fmt: skip
    ("tok-eval-corrupt-weights", "tokenizer", ["eval", "--tokenizer", "{tok_garbage}", "--data", "{raw}"], "tok_garbage"),
    ("tok-finetune-decoder-garbage", "tokenizer", ["finetune-decoder", "--tokenizer", "{tok_garbage}", "--data", "{raw}",
                                                   "--out", "{out}"], "tok_garbage"),  # fmt: skip
    ("tok-finetune-decoder-encoder", "tokenizer", ["finetune-decoder", "--tokenizer", "{bundle}/tokenizers/rgb", "--data",
                                                   "{raw}", "--out", "{out}", "width=64"], "'width'"),  # fmt: skip
    ("tok-finetune-decoder-lr-nan", "tokenizer", ["finetune-decoder", "--tokenizer", "{bundle}/tokenizers/rgb", "--data",
                                                  "{raw}", "--out", "{out}", "train.lr=nan"], "train.lr"),  # fmt: skip
    ("tok-train-text-missing", "tokenizer", ["train-text", "--data", "{root}/nope", "--out", "{out}"], "nope"),
    ("tok-train-text-vocab-zero", "tokenizer", ["train-text", "--data", "{raw}", "--out", "{out}", "--vocab-size", "0"],
     "--vocab-size"),  # fmt: skip
    ("tok-train-vector-lr-nan", "tokenizer", ["train-vector", "--data", "{raw}", "--key", "x", "--out", "{out}", "--lr",
                                              "nan"], "'nan'"),  # fmt: skip
    ("tok-train-vector-key", "tokenizer", ["train-vector", "--data", "{raw}", "--key", "nope", "--out", "{out}"], "'nope'"),
    # fourm-pack
    ("stem-steps-zero", "stem", ["pretrain", "--model", "{model}", "--data", "{raw}", "--out", "{out}", "--steps", "0"],
     "--steps"),  # fmt: skip
    ("stem-lr-nan", "stem", ["pretrain", "--model", "{model}", "--data", "{raw}", "--out", "{out}", "--lr", "nan"],
     "'nan'"),  # fmt: skip
    ("stem-model-garbage", "stem", ["pretrain", "--model", "{model_garbage}", "--data", "{raw}", "--out", "{out}"],
     "model_garbage"),  # fmt: skip
    ("stem-no-patch-modality", "stem", ["pretrain", "--model", "{model}", "--data", "{raw}", "--out", "{out}"],
     "0 pixel-patch modalities"),  # fmt: skip
    ("pack-garbage", "pack", ["{model_garbage}", "{out}"], "model_garbage"),
    ("pack-truncated", "pack", ["{model_truncated}", "{out}"], "model_truncated"),
    ("pack-huge-header", "pack", ["{model_huge_header}", "{out}"], "model_huge_header"),
    ("pack-no-config", "pack", ["{no_config}", "{out}"], "config.json"),
    # fourm-bundle
    ("bundle-garbage", "bundle", ["{model_garbage}", "{out}", "--base", "{bundle}"], "model_garbage"),
    ("bundle-dim65536", "bundle", ["{model_dim65536}", "{out}", "--base", "{bundle}"], "does not match"),
    ("bundle-modality-binary", "bundle", ["{model}", "{out}", "--base", "{bundle}", "--add-modality", "{binary.yaml}"],
     "binary.yaml"),  # fmt: skip
    ("bundle-tokenizer-empty", "bundle", ["{model}", "{out}", "--base", "{bundle}", "--tokenizer", "caption="], "caption"),
    # fourm-retrieve
    ("retrieve-no-settings", "retrieve", ["query", "--index", "{index_no_settings}", "--cond", "caption=a"], "settings"),
    ("retrieve-settings-list", "retrieve", ["query", "--index", "{index_settings_list}", "--cond", "caption=a"],
     "settings"),  # fmt: skip
    ("retrieve-settings-nan", "retrieve", ["query", "--index", "{index_settings_nan}", "--cond", "caption=a"],
     "align_ridge"),  # fmt: skip
    ("retrieve-rows-str", "retrieve", ["query", "--index", "{index_rows_str}", "--cond", "caption=a"], "rows"),
    ("retrieve-key-empty", "retrieve", ["query", "--index", "{index_key_empty}", "--cond", "caption=a"], "key"),
    ("retrieve-ids-int", "retrieve", ["query", "--index", "{index_ids_int}", "--cond", "caption=a"], "ids"),
    ("retrieve-count-str", "retrieve", ["query", "--index", "{index_count_str}", "--cond", "caption=a"], "count"),
    ("retrieve-index-nonutf8", "retrieve", ["query", "--index", "{index_nonutf8}", "--cond", "caption=a"], "index.json"),
    ("retrieve-index-binary", "retrieve", ["query", "--index", "{index_binary}", "--cond", "caption=a"], "index.json"),
    ("retrieve-index-array", "retrieve", ["query", "--index", "{index_array}", "--cond", "caption=a"], "index.json"),
    ("retrieve-caption-nonutf8", "retrieve", ["query", "--index", "{index_ok}", "--cond", f"caption={SURROGATE}"],
     "UTF-8"),  # fmt: skip
    ("retrieve-top-k-zero", "retrieve", ["query", "--index", "{index_ok}", "--cond", "caption=a", "--top-k", "0"],
     "--top-k"),  # fmt: skip
    ("retrieve-eval-num-text", "retrieve", ["eval", "--data", "{raw}", "--query", "caption", "--key", "rgb", "--num",
                                            "x"], "'x'"),  # fmt: skip
    ("retrieve-index-key-empty", "retrieve", ["index", "--data", "{raw}", "--key-modality", ",", "--out", "{out}"],
     "--key-modality"),  # fmt: skip
    # train.py
    ("train-config-binary", "train", ["--config", "{binary.yaml}"], "binary.yaml"),
    ("train-config-nonutf8", "train", ["--config", "{nonutf8.yaml}"], "nonutf8.yaml"),
    ("train-config-json-nonutf8", "train", ["--config", "{nonutf8.json}"], "nonutf8.json"),
    ("train-lr-nan", "train", ["--config", str(REPO / "configs/train/debug.yaml"), "optim.lr=nan"], "optim.lr"),
    ("train-lr-inf", "train", ["--config", str(REPO / "configs/train/debug.yaml"), "optim.lr=.inf"], "optim.lr"),
    ("train-stop-at-text", "train", ["--config", str(REPO / "configs/train/debug.yaml"), "--stop-at", "soon"], "'soon'"),
    ("train-add-modality-binary", "train", ["--config", str(REPO / "configs/train/debug.yaml"), "--init-from", "{model}",
                                            "--add-modality", "{binary.yaml}", "--out", "{out}"], "binary.yaml"),  # fmt: skip
    # generate.py
    ("gen-temperature-nan", "generate", [*GEN, "--target", "rgb", "--temperature", "rgb=nan"], "rgb=nan"),
    ("gen-temperature-inf", "generate", [*GEN, "--target", "rgb", "--temperature", "rgb=inf"], "rgb=inf"),
    ("gen-guidance-nan", "generate", [*GEN, "--target", "rgb", "--guidance", "rgb=nan"], "rgb=nan"),
    ("gen-guidance-neg-inf", "generate", [*GEN, "--target", "rgb", "--guidance", "rgb=-inf"], "rgb=-inf"),
    ("gen-top-p-nan", "generate", [*GEN, "--target", "caption", "--top-p", "caption=nan"], "caption=nan"),
    ("gen-temperature-end-nan", "generate", [*GEN, "--target", "rgb", "--temperature-end", "rgb=NaN"], "rgb=NaN"),
    ("gen-num-samples-zero", "generate", [*GEN, "--target", "rgb", "--num-samples", "0"], "--num-samples"),
    ("gen-chunk-size-huge", "generate", [*GEN, "--target", "rgb", "--num-samples", "1000000000", "--chunk-size",
                                         "100000"], "'100000'"),  # fmt: skip
    ("gen-caption-nonutf8", "generate", [*GEN, "--target", "rgb", "--cond", f"caption={SURROGATE}"], "UTF-8"),
    ("gen-cond-bomb", "generate", [*GEN, "--target", "depth", "--cond", "rgb={bomb.png}"], "bomb.png"),
    ("gen-cond-garbage-image", "generate", [*GEN, "--target", "depth", "--cond", "rgb={garbage.png}"], "garbage.png"),
    ("gen-model-dim65536", "generate", ["--model", "{bundle_big}", "--no-progress", "--out", "{out}", "--target", "rgb"],
     "does not match"),  # fmt: skip
    ("gen-steps-text", "generate", [*GEN, "--target", "rgb", "--steps", "rgb=many"], "rgb=many"),
]


def _fill(arg: str, inputs: dict[str, Path], out: Path) -> str:
    arg = arg.replace("{out}", str(out))
    for name, path in inputs.items():
        arg = arg.replace("{" + name + "}", str(path))
    assert "{" not in arg or "{" in SURROGATE, arg
    return arg


@pytest.mark.parametrize(("command", "argv", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_error_line(command, argv, expected, inputs, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may land in the repository either
    out = tmp_path / "out"
    args = [_fill(a, inputs, out) for a in argv]
    before = tree_hash(inputs["root"])
    capsys.readouterr()
    rc = _main(command)(args)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and "%|" not in line]  # progress bars aside
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert expected in lines[0], lines[0]
    assert "Traceback" not in err
    assert tree_hash(inputs["root"]) == before, "an input file changed"


def test_enough_cases_for_every_cli():
    commands = {c[1] for c in CASES}
    assert len(CASES) >= 60 and commands == {
        "data", "tokenizer", "pack", "bundle", "retrieve", "train", "generate", "stem"
    }
    data_subcommands = {c[2][0] for c in CASES if c[1] == "data"}
    assert data_subcommands == {"world", "import", "tokenize", "embed", "show"}
    tok_subcommands = {c[2][0] for c in CASES if c[1] == "tokenizer"}
    assert tok_subcommands == {"train", "eval", "train-text", "train-vector", "finetune-decoder"}


CLI_MODULES = sorted(p.stem for p in (REPO / "fourm" / "cli").glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("module", CLI_MODULES)
def test_every_cli_module_runs_with_python_m(module):
    """Each ``fourm/cli/*.py`` ends in an ``if __name__ == "__main__":`` guard that calls a main."""
    tree = ast.parse((REPO / "fourm" / "cli" / f"{module}.py").read_text())
    guards = [
        node for node in tree.body
        if isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
        and getattr(node.test.left, "id", None) == "__name__"
    ]  # fmt: skip
    assert guards, f"fourm/cli/{module}.py has no __main__ guard"
    assert "main(" in ast.unparse(guards[-1])


def test_python_m_pack_reports_errors(tmp_path):
    """``python -m fourm.cli.pack`` used to do nothing at all (no guard); now it runs main."""
    proc = subprocess.run(
        [sys.executable, "-m", "fourm.cli.pack", str(tmp_path / "nope"), str(tmp_path / "out")],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: {tmp_path / 'nope'} is not a saved model or tokenizer (no config.json)"]


def test_json_index_file_written_by_save_still_loads(inputs):
    from fourm.retrieval.index import EmbeddingIndex

    index = EmbeddingIndex.load(inputs["index_ok"])
    assert len(index) == 1 and json.loads((inputs["index_ok"] / "index.json").read_text())["info"]["key"] == ["rgb"]
