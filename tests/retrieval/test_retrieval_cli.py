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
    """Aligned pooled index of the val rgb images (the toy world has 8 train samples: a 2-d alignment)."""
    out = tmp_path_factory.mktemp("idx") / "rgb"
    argv = ["index", "--data", world, "--key-modality", "rgb", "--out", out, "--bundle", bundle, "--align-dim", 2]
    assert main([str(a) for a in argv]) == 0
    return out


@pytest.fixture(scope="module")
def centred_index(bundle, world, tmp_path_factory):
    out = tmp_path_factory.mktemp("idx") / "rgb_centred"
    argv = ["index", "--data", world, "--key-modality", "rgb", "--out", out, "--bundle", bundle, "--no-align"]
    assert main([str(a) for a in argv]) == 0
    return out


def test_index_and_query(capsys, pooled_index, tmp_path):
    index = EmbeddingIndex.load(pooled_index)
    assert len(index) == 8 and index.info["key"] == ["rgb"] and index.info["split"] == "val"
    assert index.dim == 2 and index.info["embedder"]["alignment"]["modalities"] == ["rgb", "depth", "caption"]
    assert {"align.rgb.projection", "align.caption.projection", "align.depth.mean"} <= set(index.extra)
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


def test_centred_index_and_query(capsys, centred_index, bundle, world):
    index = EmbeddingIndex.load(centred_index)
    assert index.dim == 32 and not any(k.startswith("align.") for k in index.extra)
    assert {"center.rgb", "center.caption", "center.depth"} <= set(index.extra)  # query modalities calibrated
    code, out, _ = run(capsys, "query", "--index", centred_index, "--cond", "caption=a red circle", "--top-k", 2)
    assert code == 0 and len([line for line in out.splitlines() if line.strip().startswith("#")]) == 2


def test_index_from_before_alignment_still_queries(capsys, centred_index, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(centred_index, old)
    meta = json.loads((old / "index.json").read_text())
    meta["info"]["settings"] = {k: v for k, v in meta["info"]["settings"].items() if not k.startswith("align")}
    (old / "index.json").write_text(json.dumps(meta))
    code, out, err = run(capsys, "query", "--index", old, "--cond", "caption=a red circle", "--top-k", 2)
    assert code == 0, err
    assert out == run(capsys, "query", "--index", centred_index, "--cond", "caption=a red circle", "--top-k", 2)[1]


def test_query_modalities_limit_the_alignment(capsys, bundle, world, tmp_path):
    code, _, _ = run(capsys, "index", "--data", world, "--key-modality", "rgb", "--query-modalities", "caption",
                     "--out", tmp_path / "i", "--bundle", bundle, "--align-dim", 2)
    assert code == 0
    assert EmbeddingIndex.load(tmp_path / "i").info["embedder"]["alignment"]["modalities"] == ["rgb", "caption"]
    code, _, err = run(capsys, "query", "--index", tmp_path / "i", "--cond", "depth=x.png")
    assert code == 2 and "the index's alignment does not cover 'depth'" in err and "--query-modalities depth" in err


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


def test_predicted_index_stores_centres_and_queries(capsys, bundle, world, tmp_path):
    code, out, _ = run(capsys, "index", "--data", world, "--key-modality", "rgb", "--method", "predicted",
                       "--center-predictions", "--query-modalities", "caption,caption+depth", "--out", tmp_path / "idx",
                       "--bundle", bundle)
    assert code == 0
    index = EmbeddingIndex.load(tmp_path / "idx")
    assert set(index.extra) == {"center.rgb", "center.caption", "center.depth+caption"}
    assert index.info["embedder"]["center"] is True
    code, out, _ = run(capsys, "query", "--index", tmp_path / "idx", "--cond", "caption=a red circle", "--top-k", 3)
    assert code == 0 and out.count("  #") == 3
    code, _, err = run(capsys, "query", "--index", tmp_path / "idx", "--cond", "depth=0", "--top-k", 3)
    assert code == 2 and "the index has no centre for queries of 'depth'" in err
    code, _, err = run(capsys, "index", "--data", world, "--key-modality", "rgb", "--method", "predicted",
                       "--query-modalities", "caption", "--out", tmp_path / "plain", "--bundle", bundle)
    assert code == 0 and EmbeddingIndex.load(tmp_path / "plain").extra == {}


def test_predicted_via_caption_index_query_and_eval(capsys, bundle, world, tmp_path):
    code, out, _ = run(capsys, "index", "--data", world, "--key-modality", "rgb", "--method", "predicted",
                       "--via", "caption", "--out", tmp_path / "idx", "--bundle", bundle)
    assert code == 0
    index = EmbeddingIndex.load(tmp_path / "idx")
    assert index.info["settings"]["via"] == ["caption"] and index.info["embedder"]["via"] == ["caption"]
    code, _, _ = run(capsys, "index", "--data", world, "--key-modality", "rgb", "--method", "predicted",
                     "--out", tmp_path / "direct", "--bundle", bundle)
    assert not np.allclose(index.embeddings.numpy(), EmbeddingIndex.load(tmp_path / "direct").embeddings.numpy(), atol=1e-4)
    code, out, _ = run(capsys, "query", "--index", tmp_path / "idx", "--cond", "caption=a red circle", "--top-k", 3)
    assert code == 0 and out.count("  #") == 3
    code, out, _ = run(capsys, "eval", "--data", world, "--query", "caption", "--key", "rgb", "--method", "predicted",
                       "--via", "caption", "--bundle", bundle, "--json", tmp_path / "r.json")
    assert code == 0 and json.loads((tmp_path / "r.json").read_text())["settings"]["via"] == ["caption"]
    code, _, err = run(capsys, "eval", "--data", world, "--query", "caption", "--key", "rgb", "--via", "caption",
                       "--bundle", bundle)
    assert code == 2 and "via (generate modalities first) is for the predicted method" in err


def test_centring_changes_predicted_eval(capsys, bundle, world, tmp_path):
    reports = {}
    for flag in (["--center-predictions"], []):
        code, _, _ = run(capsys, "eval", "--data", world, "--query", "caption", "--key", "rgb", "--method", "predicted",
                         "--bundle", bundle, "--json", tmp_path / "r.json", *flag)
        assert code == 0
        reports[bool(flag)] = json.loads((tmp_path / "r.json").read_text())
    assert reports[True]["settings"]["center_predictions"] is True
    assert reports[False]["settings"]["center_predictions"] is False
    assert reports[True]["mrr"] != reports[False]["mrr"]


def test_eval_pooled_plain(capsys, bundle, world):
    code, out, _ = run(capsys, "eval", "--data", world, "--query", "rgb", "--key", "caption", "--bundle", bundle,
                       "--no-align", "--no-center", "--no-normalize", "--num", 6)
    assert code == 0 and "rgb -> caption" in out and "(chance 0.167)" in out


def test_eval_pooled_aligned(capsys, bundle, world, tmp_path):
    code, out, _ = run(capsys, "eval", "--data", world, "--query", "caption", "--key", "rgb", "--bundle", bundle,
                       "--align-dim", 3, "--json", tmp_path / "r.json")
    assert code == 0 and "caption -> rgb" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["settings"]["align"] is True and report["settings"]["align_dim"] == 3


@pytest.mark.parametrize(
    "argv, message",
    [
        (["eval", "--query", "sound", "--key", "rgb"], "error: unknown modality 'sound'"),
        (["eval", "--query", "caption", "--key", "normals"], "error: unknown modality 'normals'"),
        (["eval", "--query", "caption", "--key", "rgb", "--method", "predicted", "--plain"],
         "error: model has no vector modality; fine-tune one, see docs/finetuning.md"),
        (["index", "--key-modality", "rgb", "--out", "{tmp}/i", "--method", "predicted", "--plain"],
         "error: model has no vector modality; fine-tune one, see docs/finetuning.md"),
        (["eval", "--query", "caption", "--key", "rgb", "--split", "test"], "error: "),
        (["eval", "--query", "caption", "--key", "rgb", "--batch-size", "0"], "error: --batch-size must be >= 1"),
        (["eval", "--query", "caption", "--key", "rgb", "--align-dim", "0"], "error: align_dim must be >= 1"),
        (["eval", "--query", "caption", "--key", "rgb"],  # 8 train samples: too few for 32 dimensions
         "error: {world} (split 'train') has 8 samples holding caption, rgb: an alignment of dim 32 needs at least 64"),
        (["eval", "--query", "rgb", "--key", "rgb", "--align-dim", "2"],
         "error: an aligned pooled embedding needs at least two modalities to align, got rgb"),
    ],
)
def test_errors(capsys, bundle, plain_bundle, world, tmp_path, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    message = message.replace("{world}", str(world))
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


def test_an_empty_caption_query_is_refused_and_unknown_words_named(capsys, centred_index):
    code, out, err = run(capsys, "query", "--index", centred_index, "--cond", "caption= ", "--top-k", 2)
    assert code == 2 and out == ""
    assert err.strip() == "error: condition 'caption' is empty: give it some text, or leave it out"
    code, out, err = run(capsys, "query", "--index", centred_index, "--cond", "caption=a red ☃ circle", "--top-k", 2)
    assert code == 0 and len([line for line in out.splitlines() if line.strip().startswith("#")]) == 2
    assert err.strip().splitlines() == [
        "warning: condition 'caption': '☃' not in the model's text vocabulary (read as [UNK]: the model never saw "
        "these characters)"
    ]
