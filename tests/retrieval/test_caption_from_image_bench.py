"""bench/caption_from_image.py on the toy bundle: the views the model reads, scores in range, errors."""

import json
import math

import pytest

from fourm.eval.captions import caption_accuracy
from fourm.retrieval.data import RetrievalData
from fourm.retrieval.settings import RetrievalSettings, load_pipeline, make_embedder


@pytest.fixture(scope="module")
def bench(load_bench):
    return load_bench("caption_from_image")


def test_scores_the_greedy_captions_of_each_view(bench, bundle, world, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert bench.main(["--bundle", str(bundle), "--data", str(world), "--num", "4", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["num"] == 4 and list(report["views"]) == ["rgb"]  # the toy model reads no rgb_pixels
    scores = report["views"]["rgb"]
    for key in bench.KEYS:
        assert math.isnan(scores[key]) or 0.0 <= scores[key] <= 1.0
    assert len(scores["examples"]) == 3 and all(isinstance(t, str) for t in scores["examples"])
    # the captions are the ones --via caption completes an rgb item with, and are scored per scene
    pipe = load_pipeline(bundle)
    data = RetrievalData(world, "val", 4)
    items, rows = data.items(["rgb"], pipe)
    completer = make_embedder(pipe, RetrievalSettings(method="predicted", via=["caption"]), *data.specials(pipe)).completer
    texts = [pipe.detokenize("caption", d["caption"][None])[0] for d in completer(items)]
    assert scores["examples"] == texts[:3]
    truth = data.values("caption", rows, pipe)
    recall = [caption_accuracy(t, g)["color_recall"] for t, g in zip(texts, truth)]
    recall = [r for r in recall if not math.isnan(r)]
    assert scores["color_recall"] == pytest.approx(sum(recall) / max(1, len(recall)))
    assert "rgb: color_recall" in capsys.readouterr().out


def test_errors_are_one_line(bench, bundle, world, tmp_path, capsys):
    code = bench.main(["--bundle", str(bundle), "--data", str(tmp_path), "--json", str(tmp_path / "r.json")])
    assert code == 2 and capsys.readouterr().err.startswith("error: ")
