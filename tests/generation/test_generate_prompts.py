"""``generate.py --prompts FILE``: every prompt batched into one overview.png and one sequences.json;
bad files are one-line errors naming the line; batched rows match one-prompt generation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fourm.cli.generate import main, read_prompts
from fourm.data.visualize import HEADER_HEIGHT, PAD
from fourm.testing.bundles import build_toy_bundle, toy_pipeline

SIZE = 32
CAPTIONS = ["a red circle", "two blue squares in front of a green triangle", "a yellow star"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return build_toy_bundle(tmp_path_factory.mktemp("toy") / "bundle", image_size=SIZE)


def _run(bundle, out, *args) -> int:
    return main(["--model", str(bundle), "--out", str(out), "--no-progress", *args])


def test_text_prompts_one_overview_and_one_sequences_file(bundle, tmp_path, capsys):
    prompts = tmp_path / "captions.txt"
    prompts.write_text("\n".join([CAPTIONS[0], "", "# a comment", *CAPTIONS[1:]]) + "\n")
    out = tmp_path / "out"
    args = ["--prompts", str(prompts), "--target", "bboxes", "rgb", "--num-samples", "2", "--batch-size", "4"]
    assert _run(bundle, out, *args) == 0
    assert "wrote 6 sample(s) (3 prompt(s) x 2)" in capsys.readouterr().out
    info = json.loads((out / "sequences.json").read_text())
    assert info["num_prompts"] == 3 and info["num_samples"] == 2 and info["targets"] == ["bboxes", "rgb"]
    assert info["image_reading"] == {"image_inputs": "patches", "generated_image_inputs": "tokens"}
    assert [(e["prompt"], e["sample"]) for e in info["samples"]] == [(p, s) for p in range(3) for s in range(2)]
    assert [e["line"] for e in info["samples"]][::2] == [1, 4, 5]  # blank and comment lines skipped
    for e in info["samples"]:
        assert e["conditions"] == {"caption": CAPTIONS[e["prompt"]]}
        assert isinstance(e["outputs"]["bboxes"], list) and set(e["parse_failures"]) == {"bboxes"}
        assert (out / "samples" / f"p{e['prompt']:03d}_s{e['sample']:02d}" / "rgb.png").is_file()
    overview = np.asarray(Image.open(out / "overview.png"))
    cell = SIZE * 2
    assert overview.shape[0] == HEADER_HEIGHT + PAD + 6 * (cell + PAD)  # one row per prompt x sample
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["overview.png", "samples", "sequences.json"]


def test_jsonl_prompts_and_batches_match_single_prompts(bundle, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"caption": c}) + "\n" for c in CAPTIONS))
    greedy = ["--temperature", "bboxes=0", "--temperature", "rgb=0", "--temperature-end", "rgb=0"]
    outs = {}
    for batch in ("1", "8"):  # one row at a time vs all prompts in one padded batch
        out = tmp_path / f"out{batch}"
        assert _run(bundle, out, "--prompts", str(prompts), "--target", "bboxes", "rgb", "--batch-size", batch, *greedy) == 0
        outs[batch] = json.loads((out / "sequences.json").read_text())["samples"]
    # greedy: the padded rows of the big batch generate what each prompt alone does (the rgb PNGs may
    # differ: the image decoder's noise is seeded per batch)
    assert [e["outputs"] for e in outs["1"]] == [e["outputs"] for e in outs["8"]]
    assert len({json.dumps(e["outputs"]) for e in outs["8"]}) > 1  # the prompts do differ


def test_generate_batch_rows_equal_generate():
    pipe = toy_pipeline(image_size=SIZE)
    greedy = [pipe.default_target("bboxes", temperature=0.0), pipe.default_target("rgb", temperature=0.0)]
    batch = pipe.generate_batch([{"caption": c} for c in CAPTIONS], greedy, num_samples=2, progress=False)
    assert batch.num_samples == 6 and batch.values["caption"][2] == CAPTIONS[1]
    for p, caption in enumerate(CAPTIONS):
        alone = pipe.generate({"caption": caption}, greedy, num_samples=1, progress=False)
        # greedy AR decoding of the boxes does not depend on the random stream: padding the shorter
        # captions of the batch must not change them (MaskGIT's unmasking order is random)
        assert torch.equal(batch.tokens["bboxes"][2 * p], alone.tokens["bboxes"][0]), p
        assert torch.equal(batch.tokens["bboxes"][2 * p + 1], alone.tokens["bboxes"][0]), p
    assert len({tuple(t.tolist()) for t in batch.tokens["bboxes"]}) > 1


@pytest.mark.parametrize(
    "content, name, message",
    [
        ('{"caption": "ok"}\n{"caption": "a", \n', "p.jsonl", "p.jsonl:2: invalid JSON"),
        ('{"caption": "ok"}\n["a list"]\n', "p.jsonl", "p.jsonl:2: expected a non-empty JSON object"),
        ('{"caption": "ok"}\n\n{"sound": "loud"}\n', "p.jsonl", "p.jsonl:3: sound: "),
        ('{"caption": "ok"}\n{"rgb": "missing.png"}\n', "p.jsonl", "p.jsonl:2: rgb: "),
        ("\n\n", "p.txt", "holds no prompt"),
    ],
)
def test_bad_prompt_files_are_one_line_errors(bundle, tmp_path, capsys, content, name, message):
    path = tmp_path / name
    path.write_text(content)
    assert _run(bundle, tmp_path / "out", "--prompts", str(path), "--target", "rgb") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: --prompts") and message in err, err
    assert not (tmp_path / "out" / "sequences.json").exists()


def test_prompts_exclusive_with_cond(bundle, tmp_path, capsys):
    path = tmp_path / "p.txt"
    path.write_text("a red circle\n")
    assert _run(bundle, tmp_path / "out", "--prompts", str(path), "--cond", "caption=x", "--target", "rgb") == 2
    assert "--prompts FILE or --cond" in capsys.readouterr().err


def test_read_prompts_resolves_files_next_to_the_prompt_file(tmp_path):
    (tmp_path / "photo.png").write_bytes(b"")
    path = tmp_path / "p.jsonl"
    path.write_text('{"rgb": "photo.png", "caption": "x"}\n')
    (prompt,) = read_prompts(path)
    assert prompt.conditions == {"rgb": str(tmp_path / "photo.png"), "caption": "x"} and prompt.line == 1
