"""fourm-retrieve index / query / eval on a toy bundle and a toy world dataset; one-line errors."""

import json

import numpy as np
import pytest
from PIL import Image

from fourm.cli.retrieve import main
from fourm.retrieval.index import EmbeddingIndex


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def pooled_index(bundle, world, tmp_path_factory):
    out = tmp_path_factory.mktemp("idx") / "rgb"
    assert main(["index", "--data", str(world), "--key-modality", "rgb", "--out", str(out), "--bundle", str(bundle)]) == 0
    return out


def test_index_and_query(capsys, pooled_index, tmp_path):
    index = EmbeddingIndex.load(pooled_index)
    assert len(index) == 8 and index.info["key"] == ["rgb"] and index.info["split"] == "val"
    assert {"center.rgb", "center.caption", "center.depth"} <= set(index.extra)  # query modalities calibrated
    code, out, _ = run(capsys, "query", "--index", pooled_index, "--cond", "caption=a red circle", "--top-k", 3,
                       "--out", tmp_path / "strip.png")
    assert code == 0
    lines = [line for line in out.splitlines() if line.strip().startswith("#")]
    assert len(lines) == 3
    scores = [float(line.split()[1]) for line in lines]
    assert scores == sorted(scores, reverse=True)
    assert lines[0].split()[2] in index.ids
    strip = np.asarray(Image.open(tmp_path / "strip.png"))
    assert strip.shape[1] == 4 + 4 * (128 + 4)  # query + 3 results


def test_predicted_index_and_eval(capsys, bundle, world, tmp_path):
    code, out, _ = run(capsys, "index", "--data", world, "--key-modality", "rgb,depth", "--method", "predicted",
                       "--out", tmp_path / "idx", "--bundle", bundle)
    assert code == 0 and "indexed 8 items (rgb+depth, predicted, dim 16)" in out
    emb = EmbeddingIndex.load(tmp_path / "idx").embeddings
    assert np.allclose(emb.norm(dim=1).numpy(), 1.0, atol=1e-5)
    code, out, _ = run(capsys, "eval", "--data", world, "--query", "caption", "--key", "rgb", "--method", "predicted",
                       "--bundle", bundle, "--json", tmp_path / "r.json")
    assert code == 0 and "caption -> rgb" in out and "R@1" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["num"] == 8 and set(report["recall"]) == {"@1", "@5", "@10"}
    assert report["chance"]["@1"] == pytest.approx(1 / 8)


def test_eval_pooled_plain(capsys, bundle, world):
    code, out, _ = run(capsys, "eval", "--data", world, "--query", "rgb", "--key", "caption", "--bundle", bundle,
                       "--no-center", "--no-normalize", "--num", 6)
    assert code == 0 and "rgb -> caption" in out and "(chance 0.167)" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["eval", "--query", "sound", "--key", "rgb"], "error: unknown modality 'sound'"),
        (["eval", "--query", "caption", "--key", "normals"], "error: unknown modality 'normals'"),
        (["eval", "--query", "caption", "--key", "rgb", "--method", "predicted", "--plain"],
         "error: model has no vector modality; fine-tune one, see README"),
        (["index", "--key-modality", "rgb", "--out", "{tmp}/i", "--method", "predicted", "--plain"],
         "error: model has no vector modality; fine-tune one, see README"),
        (["eval", "--query", "caption", "--key", "rgb", "--split", "test"], "error: "),
        (["eval", "--query", "caption", "--key", "rgb", "--batch-size", "0"], "error: --batch-size must be >= 1"),
    ],
)
def test_errors(capsys, bundle, plain_bundle, world, tmp_path, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    chosen = plain_bundle if "--plain" in argv else bundle
    argv = [a for a in argv if a != "--plain"] + ["--data", str(world), "--bundle", str(chosen)]
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert err.strip().splitlines()[-1].startswith(message)


def test_query_errors(capsys, pooled_index, tmp_path):
    code, _, err = run(capsys, "query", "--index", tmp_path, "--cond", "caption=x")
    assert code == 2 and "is not a retrieval index" in err
    code, _, err = run(capsys, "query", "--index", pooled_index, "--cond", "captionx")
    assert code == 2 and "malformed --cond 'captionx'" in err
    code, _, err = run(capsys, "query", "--index", pooled_index, "--cond", "sound=x")
    assert code == 2 and "unknown modality 'sound'" in err
    code, _, err = run(capsys, "query", "--index", pooled_index, "--cond", "caption=x", "--top-k", "0")
    assert code == 2 and "--top-k must be >= 1" in err
