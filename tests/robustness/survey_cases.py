"""More bad inputs for ``bench/bad_inputs.py`` (the survey), beside :data:`test_bad_inputs_cli.CASES`.

Cases are ``(id, command, argv, expected text in the error or None)`` like those of
``test_bad_inputs_cli``; ``{name}`` is an input of :func:`build_inputs` / :func:`build_extra_inputs`,
``{out}`` a fresh output path, ``{repo}`` the repository. ``command`` is one of :data:`COMMANDS`.
Every case is a mistake a user could make; the right answer is exit code 2, one ``error: ...`` line
naming the bad value, and no existing file changed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from bad_inputs_support import BINARY, NON_UTF8
from PIL import Image

COMMANDS = ("data", "tokenizer", "pack", "bundle", "retrieve", "train", "generate", "convert", "recipe")


def build_extra_inputs(p: dict[str, Path]) -> dict[str, Path]:
    """Add the survey's own inputs to ``p`` (the result of ``build_inputs``), under ``p["root"]``."""
    root = p["root"]

    def write(name: str, data: bytes | str) -> Path:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        p[name] = path
        return path

    notes = root / "notes"
    (notes / "sub").mkdir(parents=True)
    (notes / "todo.txt").write_text("buy milk")
    (notes / "sub" / "photo.png").write_bytes(b"\x89PNG not really")
    p["notes"] = notes
    p["notes_file"] = write("notes_file.txt", "my notes")
    (root / "empty_dir").mkdir()
    p["empty_dir"] = root / "empty_dir"
    for name, text in {
        "empty.yaml": "",
        "unknown_key.yaml": "nope: 1\n",
        "world_size_neg.yaml": "size: -5\n",
        "world_size_str.yaml": "size: big\n",
        "world_nan.yaml": "size: .nan\n",
        "train_unknown.yaml": "nope: 1\n",
        "train_data_missing.yaml": "data: {datasets: [{path: /nonexistent/fourm_tokens}]}\n",
        "train_batch_zero.yaml": f"data: {{datasets: [{{path: {p['raw']}}}]}}\nbatch_size: 0\n",
        "modality_bad_kind.yaml": "name: caption_embedding\nkind: bogus\nvocab_size: 8\n",
        "modality_list.yaml": "- 1\n",
        "tok_config_unknown.yaml": "nope: {a: 1}\n",
        "prompts_empty.txt": "\n\n",
        "prompts_bad.jsonl": '{"caption": "a red circle"}\n{bad json\n',
        "prompts_array.jsonl": "[1, 2]\n",
        "prompts_unknown.jsonl": '{"nope": "x"}\n',
        "prompts_missing_image.jsonl": '{"rgb": "missing.png"}\n',
        "prompts_number.jsonl": '{"caption": 5}\n',
        "prompts_ok.txt": "a red circle\n",
        "text.txt": "hello\n",
    }.items():  # fmt: skip
        write(name, text)
    write("prompts_binary.txt", BINARY)
    write("prompts_nonutf8.txt", NON_UTF8)
    # a good small picture, an imagefolder and broken ones
    img = Image.fromarray((np.arange(48 * 48 * 3) % 251).astype(np.uint8).reshape(48, 48, 3))
    img.save(root / "photo.png")
    p["photo.png"] = root / "photo.png"
    folder = root / "imgs"
    folder.mkdir()
    for i in range(3):
        img.save(folder / f"{i}.png")
    (folder / "metadata.jsonl").write_text("".join(json.dumps({"file_name": f"{i}.png", "text": "a red circle"}) + "\n" for i in range(3)))
    p["imgs"] = folder
    for name, meta in {
        "imgs_bad_jsonl": "{not json\n",
        "imgs_missing_file": json.dumps({"file_name": "nope.png", "text": "x"}) + "\n",
        "imgs_no_file_name": json.dumps({"text": "x"}) + "\n",
        "imgs_text_number": json.dumps({"file_name": "0.png", "text": 5}) + "\n",
    }.items():  # fmt: skip
        folder = root / name
        folder.mkdir()
        img.save(folder / "0.png")
        (folder / "metadata.jsonl").write_text(meta)
        p[name] = folder
    folder = root / "imgs_garbage"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.png").write_bytes(BINARY)
    (folder / "metadata.jsonl").write_text("".join(json.dumps({"file_name": f"{i}.png", "text": "x"}) + "\n" for i in range(3)))
    p["imgs_garbage"] = folder
    folders = root / "folders_no_rgb"
    (folders / "depth").mkdir(parents=True)
    img.convert("L").save(folders / "depth" / "a.png")
    p["folders_no_rgb"] = folders
    # ml-4m sources
    for name, files in {
        "ml4m_garbage": {"config.json": BINARY, "model.safetensors": BINARY},
        "ml4m_config_list": {"config.json": b"[1, 2]", "model.safetensors": BINARY},
        "ml4m_config_empty": {"config.json": b"{}", "model.safetensors": BINARY},
        "ml4m_no_weights": {"config.json": b'{"dim": 8, "domains_in": "rgb", "domains_out": "rgb"}'},
    }.items():  # fmt: skip
        folder = root / name
        folder.mkdir()
        for fname, data in files.items():
            (folder / fname).write_bytes(data)
        p[name] = folder
    write("wordpiece_garbage.json", b'{"model": {"type": "WordPiece", "vocab": 7}}')
    # a text tokenizer with a broken tokenizer.json, a model with a non-UTF-8 config
    p["text_tok_garbage"] = shutil.copytree(p["bundle"] / "tokenizers" / "text", root / "text_tok_garbage")
    (p["text_tok_garbage"] / "tokenizer.json").write_bytes(BINARY)
    p["model_config_nonutf8"] = shutil.copytree(p["model"], root / "model_config_nonutf8")
    (p["model_config_nonutf8"] / "config.json").write_bytes(NON_UTF8)
    p["bundle_bad_registry"] = shutil.copytree(p["bundle"], root / "bundle_bad_registry")
    (p["bundle_bad_registry"] / "modalities.json").write_bytes(BINARY)
    p["bundle_bad_generation"] = shutil.copytree(p["bundle"], root / "bundle_bad_generation")
    (p["bundle_bad_generation"] / "generation.json").write_text('{"targets": {"rgb": {"temperature": "hot"}}}')
    return p


REPO_CFG = "{repo}/configs"
TRAIN_DEBUG = f"{REPO_CFG}/train/debug.yaml"
TOK_RGB = f"{REPO_CFG}/tokenizers/rgb.yaml"
GEN = ["--model", "{bundle}", "--no-progress", "--out", "{out}"]
WORLD = ["world", "--out", "{out}", "--num", "2", "--size", "32", "--workers", "0"]
IMPORT = ["import", "--source", "imagefolder", "--out", "{out}"]
TOKENIZE = ["tokenize", "--data", "{raw}", "--out", "{out}", "--tokenizer-root", "{bundle}", "--modalities", "rgb"]
RQ = ["query", "--index", "{index_ok}", "--bundle", "{bundle}"]
REVAL = ["eval", "--data", "{raw}", "--bundle", "{bundle}", "--query", "caption", "--key", "rgb"]
RINDEX = ["index", "--data", "{raw}", "--bundle", "{bundle}", "--key-modality", "rgb"]
RECIPE = ["folder", "--root", "{imgs}", "--out", "{out}", "--tiny"]

CASES: list[tuple[str, str, list[str], str | None]] = [
    # ---------------------------------------------------------------- fourm-data world
    ("s-world-num-zero", "data", ["world", "--out", "{out}", "--num", "0"], "'0'"),
    ("s-world-num-negative", "data", ["world", "--out", "{out}", "--num", "-4"], "'-4'"),
    ("s-world-num-huge", "data", ["world", "--out", "{out}", "--num", "10000000000000"], "--num"),
    ("s-world-seed-text", "data", [*WORLD, "--seed", "x"], "'x'"),
    ("s-world-workers-negative", "data", [*WORLD, "--workers", "-2"], "'-2'"),
    ("s-world-workers-huge", "data", [*WORLD, "--workers", "100000"], "--workers"),
    ("s-world-out-foreign", "data", [*WORLD[:1], "--out", "{notes}", *WORLD[3:]], "--overwrite"),
    ("s-world-out-foreign-file", "data", [*WORLD[:1], "--out", "{notes_file}", *WORLD[3:]], "--overwrite"),
    ("s-world-out-bundle", "data", [*WORLD[:1], "--out", "{bundle}", *WORLD[3:]], "--overwrite"),
    ("s-world-config-missing", "data", [*WORLD, "--config", "{root}/nope.yaml"], "nope.yaml"),
    ("s-world-config-empty", "data", [*WORLD, "--config", "{empty.yaml}"], "empty.yaml"),
    ("s-world-config-unknown", "data", [*WORLD, "--config", "{unknown_key.yaml}"], "nope"),
    ("s-world-config-size-neg", "data", [*WORLD, "--config", "{world_size_neg.yaml}"], "size"),
    ("s-world-config-size-str", "data", [*WORLD, "--config", "{world_size_str.yaml}"], "size"),
    ("s-world-config-nan", "data", [*WORLD, "--config", "{world_nan.yaml}"], "size"),
    ("s-world-config-dir", "data", [*WORLD, "--config", "{empty_dir}"], "empty_dir"),
    ("s-world-out-missing", "data", ["world", "--num", "2"], "--out"),
    ("s-world-unknown-flag", "data", [*WORLD, "--colour", "red"], "--colour"),
    ("s-data-no-command", "data", [], None),
    ("s-data-bogus-command", "data", ["wrold", "--out", "{out}"], "'wrold'"),
    # ---------------------------------------------------------------- fourm-data import
    ("s-import-out-is-root", "data", [*IMPORT[:3], "--root", "{imgs}", "--out", "{imgs}"], "is the input"),
    ("s-import-out-inside-root", "data", [*IMPORT[:3], "--root", "{imgs}", "--out", "{imgs}/ds"], "inside the input"),
    ("s-import-out-is-root-overwrite", "data", [*IMPORT[:3], "--root", "{imgs}", "--out", "{imgs}", "--overwrite"],
     "is the input"),  # fmt: skip
    ("s-import-out-foreign", "data", [*IMPORT[:3], "--root", "{imgs}", "--out", "{notes}"], "--overwrite"),
    ("s-import-out-dataset", "data", [*IMPORT[:3], "--root", "{imgs}", "--out", "{raw}"], "--overwrite"),
    ("s-import-root-file", "data", [*IMPORT, "--root", "{text.txt}"], "text.txt"),
    ("s-import-root-empty", "data", [*IMPORT, "--root", "{empty_dir}"], "empty_dir"),
    ("s-import-all-garbage", "data", [*IMPORT, "--root", "{imgs_garbage}"], "imgs_garbage"),
    ("s-import-bad-jsonl", "data", [*IMPORT, "--root", "{imgs_bad_jsonl}"], "metadata.jsonl"),
    ("s-import-missing-file", "data", [*IMPORT, "--root", "{imgs_missing_file}"], None),
    ("s-import-no-file-name", "data", [*IMPORT, "--root", "{imgs_no_file_name}"], "file_name"),
    ("s-import-text-number", "data", [*IMPORT, "--root", "{imgs_text_number}"], "text"),
    ("s-import-size-zero", "data", [*IMPORT, "--root", "{imgs}", "--size", "0"], "'0'"),
    ("s-import-size-text", "data", [*IMPORT, "--root", "{imgs}", "--size", "big"], "'big'"),
    ("s-import-val-negative", "data", [*IMPORT, "--root", "{imgs}", "--val-fraction", "-0.1"], "'-0.1'"),
    ("s-import-derive-bogus", "data", [*IMPORT, "--root", "{imgs}", "--derive", "wings"], "wings"),
    ("s-import-modalities-bogus", "data", [*IMPORT, "--root", "{imgs}", "--modalities", "wings"], "--modalities"),
    ("s-import-split-column-missing", "data", [*IMPORT, "--root", "{imgs}", "--split-column", "nope"], "nope"),
    ("s-import-folders-on-imagefolder", "data", ["import", "--source", "folders", "--root", "{imgs}", "--out", "{out}"],
     None),  # fmt: skip
    ("s-import-seed-float", "data", [*IMPORT, "--root", "{imgs}", "--seed", "1.5"], "'1.5'"),
    # ---------------------------------------------------------------- fourm-data show
    ("s-show-out-foreign-file", "data", ["show", "--data", "{raw}", "--out", "{notes_file}"], "--overwrite"),
    ("s-show-out-input-png", "data", ["show", "--data", "{raw}", "--out", "{photo.png}"], "--overwrite"),
    ("s-show-out-dir", "data", ["show", "--data", "{raw}", "--out", "{notes}"], None),
    ("s-show-out-inside-data", "data", ["show", "--data", "{raw}", "--out", "{raw}/grid.png"], "inside the input"),
    ("s-show-num-negative", "data", ["show", "--data", "{raw}", "--out", "{out}.png", "--num", "-1"], "--num"),
    ("s-show-scale-zero", "data", ["show", "--data", "{raw}", "--out", "{out}.png", "--scale", "0"], "'0'"),
    ("s-show-modalities-bogus", "data", ["show", "--data", "{raw}", "--out", "{out}.png", "--modalities", "wings"],
     "wings"),  # fmt: skip
    ("s-show-data-file", "data", ["show", "--data", "{text.txt}", "--out", "{out}.png"], "text.txt"),
    ("s-show-data-imagefolder", "data", ["show", "--data", "{imgs}", "--out", "{out}.png"], "imgs"),
    ("s-show-data-tokens", "data", ["show", "--data", "{tokens_like}", "--out", "{out}.png", "--split", "nope"], "nope"),
    # ---------------------------------------------------------------- fourm-data tokenize
    ("s-tokenize-out-is-data", "data", [*TOKENIZE[:3], "--out", "{raw}", *TOKENIZE[5:]], "is the input"),
    ("s-tokenize-out-inside-data", "data", [*TOKENIZE[:3], "--out", "{raw}/tok", *TOKENIZE[5:]], "inside the input"),
    ("s-tokenize-out-foreign", "data", [*TOKENIZE[:3], "--out", "{notes}", *TOKENIZE[5:]], "--overwrite"),
    ("s-tokenize-out-bundle", "data", [*TOKENIZE[:3], "--out", "{bundle}", *TOKENIZE[5:]], None),
    ("s-tokenize-modality-bogus", "data", [*TOKENIZE[:-1], "wings"], "wings"),
    ("s-tokenize-modality-empty", "data", [*TOKENIZE[:-1], ","], "modalities"),
    ("s-tokenize-root-missing", "data", [*TOKENIZE[:5], "--tokenizer-root", "{root}/nope", "--modalities", "rgb"], "nope"),
    ("s-tokenize-tokenizer-missing", "data", [*TOKENIZE, "--tokenizer", "rgb={root}/nope"], "nope"),
    ("s-tokenize-tokenizer-garbage", "data", [*TOKENIZE, "--tokenizer", "rgb={tok_garbage}"], "tok_garbage"),
    ("s-tokenize-text-tokenizer-garbage", "data", [*TOKENIZE[:-1], "caption", "--tokenizer", "caption={text_tok_garbage}"],
     "text_tok_garbage"),  # fmt: skip
    ("s-tokenize-tokenizer-malformed", "data", [*TOKENIZE, "--tokenizer", "rgb"], "rgb"),
    ("s-tokenize-batch-zero", "data", [*TOKENIZE, "--batch-size", "0"], "--batch-size"),
    ("s-tokenize-batch-negative", "data", [*TOKENIZE, "--batch-size", "-8"], "--batch-size"),
    ("s-tokenize-shard-zero", "data", [*TOKENIZE, "--shard-size", "0"], "--shard-size"),
    ("s-tokenize-device-bogus", "data", [*TOKENIZE, "--device", "gpu9"], "gpu9"),
    ("s-tokenize-precision-bogus", "data", [*TOKENIZE, "--precision", "fp8"], "'fp8'"),
    ("s-tokenize-registry-missing", "data", [*TOKENIZE, "--registry", "{root}/nope"], "nope"),
    ("s-tokenize-registry-file", "data", [*TOKENIZE, "--registry", "{text.txt}"], "text.txt"),
    ("s-tokenize-add-modality-bad-kind", "data", [*TOKENIZE, "--add-modality", "{modality_bad_kind.yaml}"], "modality_bad_kind.yaml"),
    ("s-tokenize-add-modality-list", "data", [*TOKENIZE, "--add-modality", "{modality_list.yaml}"], "modality_list.yaml"),
    ("s-tokenize-data-imagefolder", "data", [*TOKENIZE[:1], "--data", "{imgs}", *TOKENIZE[3:]], "imgs"),
    # ---------------------------------------------------------------- fourm-data embed
    ("s-embed-source-missing", "data", ["embed", "--data", "{raw}", "--out", "{out}", "--source", "nope"], "nope"),
    ("s-embed-source-image", "data", ["embed", "--data", "{raw}", "--out", "{out}", "--source", "rgb"], "rgb"),
    ("s-embed-out-is-data", "data", ["embed", "--data", "{raw}", "--out", "{raw}"], None),
    ("s-embed-out-inside-data", "data", ["embed", "--data", "{raw}", "--out", "{raw}/e"], "inside the input"),
    ("s-embed-out-foreign", "data", ["embed", "--data", "{raw}", "--out", "{notes}"], "--overwrite"),
    ("s-embed-batch-negative", "data", ["embed", "--data", "{raw}", "--out", "{out}", "--batch-size", "-1"],
     "--batch-size"),  # fmt: skip
    ("s-embed-device-bogus", "data", ["embed", "--data", "{raw}", "--out", "{out}", "--device", "gpu9"], "gpu9"),
    ("s-embed-name-existing", "data", ["embed", "--data", "{raw}", "--out", "{out}", "--name", "rgb"], "rgb"),
    ("s-embed-name-empty", "data", ["embed", "--data", "{raw}", "--out", "{out}", "--name", ""], "--name"),
    ("s-embed-data-file", "data", ["embed", "--data", "{text.txt}", "--out", "{out}"], "text.txt"),
    # ---------------------------------------------------------------- fourm-tokenizer
    ("s-tok-train-config-missing", "tokenizer", ["train", "--config", "{root}/nope.yaml", "--data", "{raw}", "--out",
                                                 "{out}"], "nope.yaml"),  # fmt: skip
    ("s-tok-train-config-empty", "tokenizer", ["train", "--config", "{empty.yaml}", "--data", "{raw}", "--out", "{out}"],
     "empty.yaml"),  # fmt: skip
    ("s-tok-train-config-unknown", "tokenizer", ["train", "--config", "{tok_config_unknown.yaml}", "--data", "{raw}",
                                                 "--out", "{out}"], "nope"),  # fmt: skip
    ("s-tok-train-override-unknown", "tokenizer", ["train", "--config", TOK_RGB, "--data", "{raw}", "--out", "{out}",
                                                   "train.nope=1"], "nope"),  # fmt: skip
    ("s-tok-train-override-malformed", "tokenizer", ["train", "--config", TOK_RGB, "--data", "{raw}", "--out", "{out}",
                                                     "train.lr"], "train.lr"),  # fmt: skip
    ("s-tok-train-lr-text", "tokenizer", ["train", "--config", TOK_RGB, "--data", "{raw}", "--out", "{out}",
                                          "train.lr=fast"], "train.lr"),  # fmt: skip
    ("s-tok-train-steps-zero", "tokenizer", ["train", "--config", TOK_RGB, "--data", "{raw}", "--out", "{out}", "--steps",
                                             "0"], "got 0"),  # fmt: skip
    ("s-tok-train-steps-negative", "tokenizer", ["train", "--config", TOK_RGB, "--data", "{raw}", "--out", "{out}",
                                                 "--steps", "-5"], "got -5"),  # fmt: skip
    ("s-tok-train-minutes-negative", "tokenizer", ["train", "--config", TOK_RGB, "--data", "{raw}", "--out", "{out}",
                                                   "--max-minutes", "-1"], "--max-minutes"),  # fmt: skip
    ("s-tok-train-out-is-data", "tokenizer", ["train", "--config", TOK_RGB, "--data", "{raw}", "--out", "{raw}"],
     "is the input"),  # fmt: skip
    ("s-tok-train-out-foreign", "tokenizer", ["train", "--config", TOK_RGB, "--data", "{raw}", "--out", "{notes}"],
     "--overwrite"),  # fmt: skip
    ("s-tok-train-data-missing", "tokenizer", ["train", "--config", TOK_RGB, "--data", "{root}/nope", "--out", "{out}"],
     "nope"),  # fmt: skip
    ("s-tok-eval-tokenizer-missing", "tokenizer", ["eval", "--tokenizer", "{root}/nope", "--data", "{raw}"], "nope"),
    ("s-tok-eval-tokenizer-text", "tokenizer", ["eval", "--tokenizer", "{bundle}/tokenizers/text", "--data", "{raw}"],
     None),  # fmt: skip
    ("s-tok-eval-split-bogus", "tokenizer", ["eval", "--tokenizer", "{bundle}/tokenizers/rgb", "--data", "{raw}",
                                             "--split", "nope"], "nope"),  # fmt: skip
    ("s-tok-eval-num-negative", "tokenizer", ["eval", "--tokenizer", "{bundle}/tokenizers/rgb", "--data", "{raw}",
                                              "--num", "-3"], "--num"),  # fmt: skip
    ("s-tok-eval-batch-zero", "tokenizer", ["eval", "--tokenizer", "{bundle}/tokenizers/rgb", "--data", "{raw}",
                                            "--batch-size", "0"], "--batch-size"),  # fmt: skip
    ("s-tok-eval-png-foreign", "tokenizer", ["eval", "--tokenizer", "{bundle}/tokenizers/rgb", "--data", "{raw}",
                                             "--png", "{photo.png}"], "photo.png"),  # fmt: skip
    ("s-tok-eval-png-dir", "tokenizer", ["eval", "--tokenizer", "{bundle}/tokenizers/rgb", "--data", "{raw}",
                                         "--png", "{notes}"], "notes"),  # fmt: skip
    ("s-tok-eval-config-nonutf8", "tokenizer", ["eval", "--tokenizer", "{model_config_nonutf8}", "--data", "{raw}"],
     "config.json"),  # fmt: skip
    ("s-tok-prune-out-is-tokenizer", "tokenizer", ["prune", "--tokenizer", "{bundle}/tokenizers/rgb", "--data", "{raw}",
                                                   "--out", "{bundle}/tokenizers/rgb"], "is the input"),  # fmt: skip
    ("s-tok-prune-distance-negative", "tokenizer", ["prune", "--tokenizer", "{bundle}/tokenizers/rgb", "--data", "{raw}",
                                                    "--out", "{out}", "--distance", "-1"], "--distance"),  # fmt: skip
    ("s-tok-prune-num-zero", "tokenizer", ["prune", "--tokenizer", "{bundle}/tokenizers/rgb", "--data", "{raw}",
                                           "--out", "{out}", "--num", "0"], "--num"),  # fmt: skip
    ("s-tok-prune-text", "tokenizer", ["prune", "--tokenizer", "{bundle}/tokenizers/text", "--data", "{raw}", "--out",
                                       "{out}"], None),  # fmt: skip
    ("s-tok-prune-garbage", "tokenizer", ["prune", "--tokenizer", "{tok_garbage}", "--data", "{raw}", "--out", "{out}"],
     "tok_garbage"),  # fmt: skip
    ("s-tok-text-vocab-negative", "tokenizer", ["train-text", "--data", "{raw}", "--out", "{out}", "--vocab-size", "-5"],
     "--vocab-size"),  # fmt: skip
    ("s-tok-text-vocab-huge", "tokenizer", ["train-text", "--data", "{raw}", "--out", "{out}", "--vocab-size",
                                            "100000000000"], "--vocab-size"),  # fmt: skip
    ("s-tok-text-out-is-data", "tokenizer", ["train-text", "--data", "{raw}", "--out", "{raw}"], "is the input"),
    ("s-tok-text-data-imagefolder", "tokenizer", ["train-text", "--data", "{imgs}", "--out", "{out}"], "imgs"),
    ("s-tok-vector-key-text", "tokenizer", ["train-vector", "--data", "{raw}", "--key", "caption", "--out", "{out}"],
     "caption"),  # fmt: skip
    ("s-tok-vector-tokens-zero", "tokenizer", ["train-vector", "--data", "{raw}", "--key", "caption", "--out", "{out}",
                                               "--tokens", "0"], "caption"),  # fmt: skip
    ("s-tok-vector-codebook-zero", "tokenizer", ["train-vector", "--data", "{raw}", "--key", "caption", "--out", "{out}",
                                                 "--codebook-size", "0"], "caption"),  # fmt: skip
    ("s-tok-vector-steps-negative", "tokenizer", ["train-vector", "--data", "{raw}", "--key", "caption", "--out", "{out}",
                                                  "--steps", "-1"], "caption"),  # fmt: skip
    ("s-tok-vector-batch-zero", "tokenizer", ["train-vector", "--data", "{raw}", "--key", "caption", "--out", "{out}",
                                              "--batch-size", "0"], "caption"),  # fmt: skip
    ("s-tok-vector-out-is-data", "tokenizer", ["train-vector", "--data", "{raw}", "--key", "caption", "--out", "{raw}"],
     "is the input"),  # fmt: skip
    ("s-tok-no-command", "tokenizer", [], None),
    # ---------------------------------------------------------------- train.py
    ("s-train-config-missing", "train", ["--config", "{root}/nope.yaml"], "nope.yaml"),
    ("s-train-config-empty", "train", ["--config", "{empty.yaml}", "--out", "{out}"], "empty.yaml"),
    ("s-train-config-list", "train", ["--config", "{list.yaml}", "--out", "{out}"], "list.yaml"),
    ("s-train-config-dir", "train", ["--config", "{empty_dir}", "--out", "{out}"], "empty_dir"),
    ("s-train-config-unknown", "train", ["--config", "{train_unknown.yaml}", "--out", "{out}"], "nope"),
    ("s-train-data-missing", "train", ["--config", "{train_data_missing.yaml}", "--out", "{out}"], "nonexistent"),
    ("s-train-batch-zero-config", "train", ["--config", "{train_batch_zero.yaml}", "--out", "{out}"], "batch_size"),
    ("s-train-override-unknown", "train", ["--config", TRAIN_DEBUG, "--out", "{out}", "nope=1"], "nope"),
    ("s-train-override-malformed", "train", ["--config", TRAIN_DEBUG, "--out", "{out}", "optim.lr"], "optim.lr"),
    ("s-train-lr-text", "train", ["--config", TRAIN_DEBUG, "--out", "{out}", "optim.lr=fast"], "optim.lr"),
    ("s-train-lr-negative", "train", ["--config", TRAIN_DEBUG, "--out", "{out}", "optim.lr=-1"], "optim.lr"),
    ("s-train-batch-zero", "train", ["--config", TRAIN_DEBUG, "--out", "{out}", "batch_size=0"], "batch_size"),
    ("s-train-batch-negative", "train", ["--config", TRAIN_DEBUG, "--out", "{out}", "batch_size=-4"], "batch_size"),
    ("s-train-steps-zero", "train", ["--config", TRAIN_DEBUG, "--out", "{out}", "steps=0"], "steps"),
    ("s-train-steps-float", "train", ["--config", TRAIN_DEBUG, "--out", "{out}", "steps=1.5"], "steps"),
    ("s-train-grad-accum-zero", "train", ["--config", TRAIN_DEBUG, "--out", "{out}", "grad_accum=0"], "grad_accum"),
    ("s-train-precision-bogus", "train", ["--config", TRAIN_DEBUG, "--out", "{out}", "precision=fp8"], "precision"),
    ("s-train-preset-bogus", "train", ["--config", TRAIN_DEBUG, "--out", "{out}", "model.preset=huge"], "huge"),
    ("s-train-masking-missing", "train", ["--config", TRAIN_DEBUG, "--out", "{out}", "masking.train={root}/nope.yaml"],
     "nope.yaml"),  # fmt: skip
    ("s-train-warmup-negative", "train", ["--config", TRAIN_DEBUG, "--out", "{out}", "optim.warmup_steps=-5"],
     "warmup_steps"),  # fmt: skip
    ("s-train-stop-at-negative", "train", ["--config", TRAIN_DEBUG, "--out", "{out}", "--stop-at", "-3"], "-3"),
    ("s-train-minutes-nan", "train", ["--config", TRAIN_DEBUG, "--out", "{out}", "--max-minutes", "nan"], "'nan'"),
    ("s-train-minutes-negative", "train", ["--config", TRAIN_DEBUG, "--out", "{out}", "--max-minutes", "-2"],
     "--max-minutes"),  # fmt: skip
    ("s-train-data-raw", "train", ["--config", TRAIN_DEBUG, "--out", "{out}", "--data", "{raw}"], "raw"),
    ("s-train-data-missing-path", "train", ["--config", TRAIN_DEBUG, "--out", "{out}", "--data", "{root}/nope"], "nope"),
    ("s-train-data-empty", "train", ["--config", TRAIN_DEBUG, "--out", "{out}", "--data", ","], "--data"),
    ("s-train-resume-missing", "train", ["--config", TRAIN_DEBUG, "--out", "{out}", "--resume", "{root}/nope"], "nope"),
    ("s-train-resume-file", "train", ["--config", TRAIN_DEBUG, "--out", "{out}", "--resume", "{text.txt}"], "text.txt"),
    ("s-train-out-foreign", "train", ["--config", TRAIN_DEBUG, "--out", "{notes}"], "--overwrite"),
    ("s-train-out-foreign-file", "train", ["--config", TRAIN_DEBUG, "--out", "{notes_file}"], None),
    ("s-train-out-is-data", "train", ["--config", TRAIN_DEBUG, "--out", "{raw}", "--data", "{tokens_like}"], None),
    ("s-train-init-from-missing", "train", ["--config", TRAIN_DEBUG, "--out", "{out}", "--init-from", "{root}/nope"],
     "nope"),  # fmt: skip
    # without model.overrides={}, debug.yaml's model overrides are refused first (an --init-from model is not changed)
    ("s-train-init-from-garbage", "train", ["--config", TRAIN_DEBUG, "--out", "{out}", "--init-from", "{model_garbage}",
                                            "model.overrides={}"], "model_garbage"),  # fmt: skip
    ("s-train-init-from-nonutf8", "train", ["--config", TRAIN_DEBUG, "--out", "{out}", "--init-from",
                                            "{model_config_nonutf8}"], "config.json"),  # fmt: skip
    ("s-train-out-is-init-from", "train", ["--config", TRAIN_DEBUG, "--out", "{model}", "--init-from", "{model}"],
     "is the input"),  # fmt: skip
    ("s-train-add-modality-without-init", "train", ["--config", TRAIN_DEBUG, "--out", "{out}", "--add-modality",
                                                    "{repo}/configs/modalities/extra/caption_embedding.yaml"], None),  # fmt: skip
    ("s-train-add-modality-missing", "train", ["--config", TRAIN_DEBUG, "--out", "{out}", "--init-from", "{model}",
                                               "--add-modality", "{root}/nope.yaml"], "nope.yaml"),  # fmt: skip
    ("s-train-seed-text", "train", ["--config", TRAIN_DEBUG, "--out", "{out}", "seed=abc"], "seed"),
    # ---------------------------------------------------------------- generate.py
    ("s-gen-model-missing", "generate", ["--model", "{root}/nope", "--no-progress", "--out", "{out}", "--target", "rgb"],
     "nope"),  # fmt: skip
    ("s-gen-model-raw", "generate", ["--model", "{raw}", "--no-progress", "--out", "{out}", "--target", "rgb"], "raw"),
    ("s-gen-model-file", "generate", ["--model", "{text.txt}", "--no-progress", "--out", "{out}", "--target", "rgb"],
     "text.txt"),  # fmt: skip
    ("s-gen-model-bad-registry", "generate", ["--model", "{bundle_bad_registry}", "--no-progress", "--out", "{out}",
                                              "--target", "rgb"], "modalities.json"),  # fmt: skip
    ("s-gen-model-bad-generation", "generate", ["--model", "{bundle_bad_generation}", "--no-progress", "--out", "{out}",
                                                "--target", "rgb"], "temperature"),  # fmt: skip
    ("s-gen-model-garbage-weights", "generate", ["--model", "{model_garbage}", "--no-progress", "--out", "{out}",
                                                 "--target", "rgb"], None),  # fmt: skip
    ("s-gen-no-target", "generate", GEN, "--target"),
    ("s-gen-target-unknown", "generate", [*GEN, "--target", "wings"], "wings"),
    ("s-gen-target-twice", "generate", [*GEN, "--target", "rgb", "rgb"], "rgb"),
    ("s-gen-cond-and-target", "generate", [*GEN, "--target", "caption", "--cond", "caption=a red circle"], "caption"),
    ("s-gen-cond-no-equals", "generate", [*GEN, "--target", "rgb", "--cond", "caption"], "caption"),
    ("s-gen-cond-twice", "generate", [*GEN, "--target", "rgb", "--cond", "caption=a", "--cond", "caption=b"], "twice"),
    ("s-gen-cond-image-missing", "generate", [*GEN, "--target", "depth", "--cond", "rgb={root}/nope.png"], "nope.png"),
    ("s-gen-cond-image-dir", "generate", [*GEN, "--target", "depth", "--cond", "rgb={notes}"], "notes"),
    ("s-gen-cond-image-text", "generate", [*GEN, "--target", "depth", "--cond", "rgb={text.txt}"], "text.txt"),
    ("s-gen-cond-bboxes-garbage", "generate", [*GEN, "--target", "rgb", "--cond", "bboxes=circle 0.5 nope"], "bboxes"),
    ("s-gen-cond-bboxes-range", "generate", [*GEN, "--target", "rgb", "--cond", "bboxes=circle 0.5 0.5 2 2"], "bboxes"),
    ("s-gen-cond-bboxes-nan", "generate", [*GEN, "--target", "rgb", "--cond", "bboxes=circle nan 0 1 1"], "bboxes"),
    ("s-gen-cond-palette-range", "generate", [*GEN, "--target", "rgb", "--cond", "color_palette=300 0 0"], "300"),
    ("s-gen-cond-palette-text", "generate", [*GEN, "--target", "rgb", "--cond", "color_palette=red"], "color_palette"),
    ("s-gen-cond-metadata-json", "generate", [*GEN, "--target", "rgb", "--cond", "metadata={bad"], "metadata"),
    ("s-gen-cond-metadata-key", "generate", [*GEN, "--target", "rgb", "--cond", "metadata=wings=3"], "wings"),
    ("s-gen-steps-zero", "generate", [*GEN, "--target", "rgb", "--steps", "rgb=0"], "steps"),
    ("s-gen-steps-negative", "generate", [*GEN, "--target", "rgb", "--steps", "rgb=-2"], "steps"),
    ("s-gen-steps-huge", "generate", [*GEN, "--target", "rgb", "--steps", "rgb=100000000"], "steps"),
    ("s-gen-steps-not-target", "generate", [*GEN, "--target", "rgb", "--steps", "depth=4"], "depth"),
    ("s-gen-temperature-negative", "generate", [*GEN, "--target", "rgb", "--temperature", "rgb=-1"], "temperature"),
    ("s-gen-top-p-zero", "generate", [*GEN, "--target", "caption", "--top-p", "caption=0"], "top_p"),
    ("s-gen-top-p-two", "generate", [*GEN, "--target", "caption", "--top-p", "caption=2"], "top_p"),
    ("s-gen-top-k-negative", "generate", [*GEN, "--target", "caption", "--top-k", "caption=-1"], "top_k"),
    ("s-gen-scheme-bogus", "generate", [*GEN, "--target", "rgb", "--scheme", "rgb=diffusion"], "diffusion"),
    ("s-gen-scheme-ar-image", "generate", [*GEN, "--target", "rgb", "--scheme", "rgb=ar"], "ar"),
    ("s-gen-schedule-bogus", "generate", [*GEN, "--target", "rgb", "--schedule", "rgb=zigzag"], "zigzag"),
    ("s-gen-grammar-maybe", "generate", [*GEN, "--target", "bboxes", "--grammar", "bboxes=maybe"], "maybe"),
    ("s-gen-max-length-zero", "generate", [*GEN, "--target", "caption", "--max-length", "caption=0"], "max_length"),
    ("s-gen-max-length-huge", "generate", [*GEN, "--target", "caption", "--max-length", "caption=100000000"],
     "max_length"),  # fmt: skip
    ("s-gen-prefix-image", "generate", [*GEN, "--target", "rgb", "--prefix", "rgb=x"], "rgb"),
    ("s-gen-prefix-not-target", "generate", [*GEN, "--target", "rgb", "--prefix", "caption=a red"], "caption"),
    ("s-gen-caption-prefix-twice", "generate", [*GEN, "--target", "caption", "--prefix", "caption=a", "--caption-prefix",
                                                "b"], "caption prefix"),  # fmt: skip
    ("s-gen-prompts-missing", "generate", [*GEN, "--target", "rgb", "--prompts", "{root}/nope.txt"], "nope.txt"),
    ("s-gen-prompts-empty", "generate", [*GEN, "--target", "rgb", "--prompts", "{prompts_empty.txt}"], "no prompt"),
    ("s-gen-prompts-binary", "generate", [*GEN, "--target", "rgb", "--prompts", "{prompts_binary.txt}"], "UTF-8"),
    ("s-gen-prompts-nonutf8", "generate", [*GEN, "--target", "rgb", "--prompts", "{prompts_nonutf8.txt}"], "UTF-8"),
    ("s-gen-prompts-bad-json", "generate", [*GEN, "--target", "rgb", "--prompts", "{prompts_bad.jsonl}"], ":2"),
    ("s-gen-prompts-array", "generate", [*GEN, "--target", "rgb", "--prompts", "{prompts_array.jsonl}"], ":1"),
    ("s-gen-prompts-unknown", "generate", [*GEN, "--target", "rgb", "--prompts", "{prompts_unknown.jsonl}"], "nope"),
    ("s-gen-prompts-missing-image", "generate", [*GEN, "--target", "depth", "--prompts", "{prompts_missing_image.jsonl}"],
     "missing.png"),  # fmt: skip
    ("s-gen-prompts-number", "generate", [*GEN, "--target", "rgb", "--prompts", "{prompts_number.jsonl}"], "caption"),
    ("s-gen-prompts-dir", "generate", [*GEN, "--target", "rgb", "--prompts", "{notes}"], "notes"),
    ("s-gen-prompts-and-cond", "generate", [*GEN, "--target", "rgb", "--prompts", "{prompts_ok.txt}", "--cond",
                                            "caption=a"], "--prompts"),  # fmt: skip
    ("s-gen-batch-zero", "generate", [*GEN, "--target", "rgb", "--prompts", "{prompts_ok.txt}", "--batch-size", "0"],
     "--batch-size"),  # fmt: skip
    ("s-gen-threads-zero", "generate", [*GEN, "--target", "rgb", "--threads", "0"], "--threads"),
    ("s-gen-threads-huge", "generate", [*GEN, "--target", "rgb", "--threads", "100000"], "--threads"),
    ("s-gen-device-bogus", "generate", [*GEN, "--target", "rgb", "--device", "gpu9"], "gpu9"),
    ("s-gen-device-cuda-99", "generate", [*GEN, "--target", "rgb", "--device", "cuda:99"], "cuda"),
    ("s-gen-precision-bogus", "generate", [*GEN, "--target", "rgb", "--precision", "fp8"], "'fp8'"),
    ("s-gen-seed-text", "generate", [*GEN, "--target", "rgb", "--seed", "lucky"], "'lucky'"),
    ("s-gen-seed-huge", "generate", [*GEN, "--target", "rgb", "--seed", "100000000000000000000000"], "--seed"),
    ("s-gen-out-model", "generate", ["--model", "{bundle}", "--no-progress", "--out", "{bundle}", "--target", "rgb",
                                     "--overwrite"], "is the input"),  # fmt: skip
    ("s-gen-out-inside-model", "generate", ["--model", "{bundle}", "--no-progress", "--out", "{bundle}/out", "--target",
                                            "rgb", "--overwrite"], "inside the input"),  # fmt: skip
    ("s-gen-out-cond-image", "generate", ["--model", "{bundle}", "--no-progress", "--out", "{photo.png}", "--target",
                                          "depth", "--cond", "rgb={photo.png}", "--overwrite"], "is the input"),  # fmt: skip
    ("s-gen-out-foreign", "generate", ["--model", "{bundle}", "--no-progress", "--out", "{notes}", "--target", "rgb"],
     "--overwrite"),  # fmt: skip
    ("s-gen-out-foreign-file", "generate", ["--model", "{bundle}", "--no-progress", "--out", "{notes_file}", "--target",
                                            "rgb"], "--overwrite"),  # fmt: skip
    ("s-gen-out-prompts", "generate", ["--model", "{bundle}", "--no-progress", "--out", "{prompts_ok.txt}", "--target",
                                       "rgb", "--prompts", "{prompts_ok.txt}", "--overwrite"], "is the input"),  # fmt: skip
    # ---------------------------------------------------------------- fourm-bundle
    ("s-bundle-model-missing", "bundle", ["{root}/nope", "{out}", "--base", "{bundle}"], "nope"),
    ("s-bundle-model-file", "bundle", ["{text.txt}", "{out}", "--base", "{bundle}"], "text.txt"),
    ("s-bundle-model-truncated", "bundle", ["{model_truncated}", "{out}", "--base", "{bundle}"], "model_truncated"),
    ("s-bundle-model-huge-header", "bundle", ["{model_huge_header}", "{out}", "--base", "{bundle}"], "model_huge_header"),
    ("s-bundle-model-nonutf8", "bundle", ["{model_config_nonutf8}", "{out}", "--base", "{bundle}"], "config.json"),
    ("s-bundle-model-no-config", "bundle", ["{no_config}", "{out}", "--base", "{bundle}"], "config.json"),
    ("s-bundle-out-is-model", "bundle", ["{model}", "{model}", "--base", "{bundle}", "--overwrite"], "is the input"),
    ("s-bundle-out-inside-model", "bundle", ["{model}", "{model}/b", "--base", "{bundle}"], "inside the input"),
    ("s-bundle-out-is-base", "bundle", ["{model}", "{bundle}", "--base", "{bundle}", "--overwrite"], "input"),
    ("s-bundle-out-foreign", "bundle", ["{model}", "{notes}", "--base", "{bundle}"], "--overwrite"),
    ("s-bundle-base-missing", "bundle", ["{model}", "{out}", "--base", "{root}/nope"], "nope"),
    ("s-bundle-base-raw", "bundle", ["{model}", "{out}", "--base", "{raw}"], "raw"),
    ("s-bundle-base-bad-registry", "bundle", ["{model}", "{out}", "--base", "{bundle_bad_registry}"], "modalities.json"),
    ("s-bundle-tokenizer-unknown", "bundle", ["{model}", "{out}", "--base", "{bundle}", "--tokenizer",
                                              "wings={bundle}/tokenizers/rgb"], "wings"),  # fmt: skip
    ("s-bundle-tokenizer-missing", "bundle", ["{model}", "{out}", "--base", "{bundle}", "--tokenizer",
                                              "rgb={root}/nope"], "nope"),  # fmt: skip
    ("s-bundle-tokenizer-malformed", "bundle", ["{model}", "{out}", "--base", "{bundle}", "--tokenizer", "rgb"], "rgb"),
    ("s-bundle-add-modality-missing", "bundle", ["{model}", "{out}", "--base", "{bundle}", "--add-modality",
                                                 "{root}/nope.yaml"], "nope.yaml"),  # fmt: skip
    ("s-bundle-add-modality-list", "bundle", ["{model}", "{out}", "--base", "{bundle}", "--add-modality",
                                              "{modality_list.yaml}"], "modality_list.yaml"),  # fmt: skip
    ("s-bundle-no-args", "bundle", [], None),
    # ---------------------------------------------------------------- fourm-retrieve
    ("s-retrieve-index-missing", "retrieve", ["query", "--index", "{root}/nope", "--cond", "caption=a"], "nope"),
    ("s-retrieve-index-raw", "retrieve", ["query", "--index", "{raw}", "--cond", "caption=a"], "raw"),
    ("s-retrieve-cond-no-equals", "retrieve", [*RQ, "--cond", "caption"], "caption"),
    ("s-retrieve-cond-unknown", "retrieve", [*RQ, "--cond", "wings=a"], "wings"),
    ("s-retrieve-cond-none", "retrieve", RQ, "--cond"),
    ("s-retrieve-cond-image-missing", "retrieve", [*RQ, "--cond", "rgb={root}/nope.png"], "nope.png"),
    ("s-retrieve-cond-bomb", "retrieve", [*RQ, "--cond", "rgb={bomb.png}"], "bomb.png"),
    ("s-retrieve-top-k-negative", "retrieve", [*RQ, "--cond", "caption=a", "--top-k", "-1"], "--top-k"),
    ("s-retrieve-top-k-text", "retrieve", [*RQ, "--cond", "caption=a", "--top-k", "all"], "'all'"),
    ("s-retrieve-out-foreign-file", "retrieve", [*RQ, "--cond", "caption=a", "--out", "{notes_file}"], "--overwrite"),
    ("s-retrieve-out-input-image", "retrieve", [*RQ, "--cond", "rgb={photo.png}", "--out", "{photo.png}", "--overwrite"],
     "is the input"),  # fmt: skip
    ("s-retrieve-out-inside-index", "retrieve", [*RQ, "--cond", "caption=a", "--out", "{index_ok}/q.png"], "inside"),
    ("s-retrieve-bundle-missing", "retrieve", ["query", "--index", "{index_ok}", "--bundle", "{root}/nope", "--cond",
                                               "caption=a"], "nope"),  # fmt: skip
    ("s-retrieve-device-bogus", "retrieve", [*RQ, "--cond", "caption=a", "--device", "gpu9"], "gpu9"),
    ("s-retrieve-batch-zero", "retrieve", [*RQ, "--cond", "caption=a", "--batch-size", "0"], "--batch-size"),
    ("s-retrieve-index-out-is-data", "retrieve", [*RINDEX, "--out", "{raw}"], "is the input"),
    ("s-retrieve-index-out-inside-data", "retrieve", [*RINDEX, "--out", "{raw}/idx"], "inside the input"),
    ("s-retrieve-index-out-foreign", "retrieve", [*RINDEX, "--out", "{notes}"], "--overwrite"),
    ("s-retrieve-index-key-bogus", "retrieve", [*RINDEX[:-1], "wings", "--out", "{out}"], "wings"),
    ("s-retrieve-index-num-zero", "retrieve", [*RINDEX, "--out", "{out}", "--num", "0"], "--num"),
    ("s-retrieve-index-split-bogus", "retrieve", [*RINDEX, "--out", "{out}", "--split", "nope"], "nope"),
    ("s-retrieve-index-method-bogus", "retrieve", [*RINDEX, "--out", "{out}", "--method", "magic"], "'magic'"),
    ("s-retrieve-index-align-dim-zero", "retrieve", [*RINDEX, "--out", "{out}", "--align-dim", "0"], "--align-dim"),
    ("s-retrieve-index-data-missing", "retrieve", ["index", "--data", "{root}/nope", "--bundle", "{bundle}",
                                                   "--key-modality", "rgb", "--out", "{out}"], "nope"),  # fmt: skip
    ("s-retrieve-index-via-bogus", "retrieve", [*RINDEX, "--out", "{out}", "--method", "predicted", "--via", "wings"],
     "wings"),  # fmt: skip
    ("s-retrieve-eval-query-bogus", "retrieve", [*REVAL[:6], "wings", "--key", "rgb"], "wings"),
    ("s-retrieve-eval-same", "retrieve", [*REVAL[:6], "rgb", "--key", "rgb"], "rgb"),
    ("s-retrieve-eval-num-negative", "retrieve", [*REVAL, "--num", "-5"], "--num"),
    ("s-retrieve-eval-json-foreign", "retrieve", [*REVAL, "--json", "{notes_file}"], "--overwrite"),
    ("s-retrieve-eval-json-dir", "retrieve", [*REVAL, "--json", "{notes}"], "notes"),
    ("s-retrieve-eval-align-samples-zero", "retrieve", [*REVAL, "--align-samples", "0"], "--align-samples"),
    ("s-retrieve-eval-steps-zero", "retrieve", [*REVAL, "--method", "predicted", "--decoding", "maskgit", "--steps", "0"],
     "--steps"),  # fmt: skip
    ("s-retrieve-no-command", "retrieve", [], None),
    # ---------------------------------------------------------------- fourm-pack
    ("s-pack-src-missing", "pack", ["{root}/nope", "{out}"], "nope"),
    ("s-pack-src-file", "pack", ["{text.txt}", "{out}"], "text.txt"),
    ("s-pack-dst-is-src", "pack", ["{model}", "{model}", "--overwrite"], "is the input"),
    ("s-pack-dst-inside-src", "pack", ["{model}", "{model}/packed"], "inside the input"),
    ("s-pack-dst-foreign", "pack", ["{model}", "{notes}"], "--overwrite"),
    ("s-pack-dst-foreign-file", "pack", ["{model}", "{notes_file}"], "--overwrite"),
    ("s-pack-dst-contains-src", "pack", ["{model}", "{bundle}", "--overwrite"], "contains the input"),
    ("s-pack-config-nonutf8", "pack", ["{model_config_nonutf8}", "{out}"], "config.json"),
    ("s-pack-tok-garbage", "pack", ["{tok_garbage}", "{out}"], "tok_garbage"),
    ("s-pack-no-args", "pack", [], None),
    # ---------------------------------------------------------------- fourm-convert
    ("s-convert-src-missing", "convert", ["ml4m", "{root}/nope", "{out}"], "nope"),
    ("s-convert-src-empty", "convert", ["ml4m", "{empty_dir}", "{out}"], "empty_dir"),
    ("s-convert-src-garbage", "convert", ["ml4m", "{ml4m_garbage}", "{out}"], "ml4m_garbage"),
    ("s-convert-config-list", "convert", ["ml4m", "{ml4m_config_list}", "{out}"], "ml4m_config_list"),
    ("s-convert-config-empty", "convert", ["ml4m", "{ml4m_config_empty}", "{out}"], "ml4m_config_empty"),
    ("s-convert-no-weights", "convert", ["ml4m", "{ml4m_no_weights}", "{out}"], "ml4m_no_weights"),
    ("s-convert-fourm-model", "convert", ["ml4m", "{model}", "{out}"], "model"),
    ("s-convert-out-is-src", "convert", ["ml4m", "{ml4m_garbage}", "{ml4m_garbage}", "--overwrite"], "is the input"),
    ("s-convert-out-foreign", "convert", ["ml4m", "{ml4m_garbage}", "{notes}"], "--overwrite"),
    ("s-convert-tokenizer-malformed", "convert", ["ml4m", "{ml4m_garbage}", "{out}", "--tokenizer", "text"], "text"),
    ("s-convert-tok-src-missing", "convert", ["ml4m-tokenizer", "{root}/nope", "{out}"], "nope"),
    ("s-convert-tok-garbage-json", "convert", ["ml4m-tokenizer", "{wordpiece_garbage.json}", "{out}"],
     "wordpiece_garbage.json"),  # fmt: skip
    ("s-convert-tok-binary", "convert", ["ml4m-tokenizer", "{binary.json}", "{out}"], "binary.json"),
    ("s-convert-tok-empty-dir", "convert", ["ml4m-tokenizer", "{empty_dir}", "{out}"], "empty_dir"),
    ("s-convert-tok-image-size-zero", "convert", ["ml4m-tokenizer", "{empty_dir}", "{out}", "--image-size", "0"], "'0'"),
    ("s-convert-tok-out-is-src", "convert", ["ml4m-tokenizer", "{binary.json}", "{binary.json}", "--overwrite"],
     "is the input"),  # fmt: skip
    ("s-convert-bogus-format", "convert", ["ml5m", "{empty_dir}", "{out}"], "'ml5m'"),
    ("s-convert-no-args", "convert", [], None),
    # ---------------------------------------------------------------- fourm-recipe
    ("s-recipe-root-missing", "recipe", ["folder", "--root", "{root}/nope", "--out", "{out}"], "nope"),
    ("s-recipe-root-file", "recipe", ["folder", "--root", "{text.txt}", "--out", "{out}"], "text.txt"),
    ("s-recipe-root-empty", "recipe", ["folder", "--root", "{empty_dir}", "--out", "{out}"], "empty_dir"),
    ("s-recipe-root-garbage", "recipe", ["folder", "--root", "{imgs_garbage}", "--out", "{out}", "--tiny"],
     "imgs_garbage"),  # fmt: skip
    ("s-recipe-root-bad-jsonl", "recipe", ["folder", "--root", "{imgs_bad_jsonl}", "--out", "{out}", "--tiny"],
     "metadata.jsonl"),  # fmt: skip
    ("s-recipe-minutes-nan", "recipe", [*RECIPE, "--minutes", "nan"], "'nan'"),
    ("s-recipe-minutes-zero", "recipe", [*RECIPE, "--minutes", "0"], "--minutes"),
    ("s-recipe-minutes-negative", "recipe", [*RECIPE, "--minutes", "-5"], "--minutes"),
    ("s-recipe-modalities-bogus", "recipe", [*RECIPE, "--modalities", "rgb,caption,wings"], "wings"),
    ("s-recipe-modalities-no-rgb", "recipe", [*RECIPE, "--modalities", "caption"], "rgb"),
    ("s-recipe-val-fraction-two", "recipe", [*RECIPE, "--val-fraction", "2"], "val"),
    ("s-recipe-val-fraction-negative", "recipe", [*RECIPE, "--val-fraction", "-0.5"], "val"),
    ("s-recipe-text-threshold-negative", "recipe", [*RECIPE, "--text-threshold", "-1"], "text"),
    ("s-recipe-epochs-zero", "recipe", [*RECIPE, "--epochs", "0"], "epochs"),
    ("s-recipe-tokenizer-epochs-negative", "recipe", [*RECIPE, "--tokenizer-epochs", "-3"], "epochs"),
    ("s-recipe-train-steps-zero", "recipe", [*RECIPE, "--train-steps", "0"], "'0'"),
    ("s-recipe-device-bogus", "recipe", [*RECIPE, "--device", "gpu9"], "gpu9"),
    ("s-recipe-split-column-missing", "recipe", [*RECIPE, "--split-column", "nope"], "nope"),
    ("s-recipe-out-is-root", "recipe", ["folder", "--root", "{imgs}", "--out", "{imgs}"], "input"),
    ("s-recipe-out-inside-root", "recipe", ["folder", "--root", "{imgs}", "--out", "{imgs}/run"], "input"),
    ("s-recipe-out-foreign", "recipe", ["folder", "--root", "{imgs}", "--out", "{notes}"], "--overwrite"),
    ("s-recipe-out-bundle", "recipe", ["folder", "--root", "{imgs}", "--out", "{bundle}"], None),
    ("s-recipe-no-command", "recipe", [], None),
]
