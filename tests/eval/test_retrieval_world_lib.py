"""fourm.eval.retrieval_world as library code: the options mirror bench/retrieval_world.py's flags, and
the report keeps older methods' results for the same data (no model needed)."""

import json

from fourm.eval.retrieval_world import METHODS, RetrievalBenchOptions, write_report


def load_cli(load_bench):
    return load_bench("retrieval_world")


def test_options_mirror_the_flags(load_bench, monkeypatch):
    bench = load_cli(load_bench)
    seen = {}
    monkeypatch.setattr(bench, "run_retrieval_bench", lambda opts: seen.setdefault("opts", opts) and {"num": 1})
    monkeypatch.setattr(bench, "write_report", lambda report, opts: "x.json")
    assert bench.main(["--num", "7", "--methods", "pooled", "--via", ""]) == 0
    opts = seen["opts"]
    assert opts == RetrievalBenchOptions(num=7, methods="pooled", via="")


def test_write_report_keeps_older_methods(tmp_path):
    opts = RetrievalBenchOptions(data="d", split="val", out=str(tmp_path))
    first = {"data": "d", "split": "val", "num": 4, "pooled": {"x": 1}, "ceiling": {"y": 2}}
    path = write_report(first, opts)
    assert path == tmp_path / "retrieval_world.json" and json.loads(path.read_text()) == first
    second = {"data": "d", "split": "val", "num": 4, "pooled": {"x": 3}}
    merged = json.loads(write_report(second, opts).read_text())
    assert merged["pooled"] == {"x": 3} and merged["ceiling"] == {"y": 2}
    other = {"data": "d", "split": "val", "num": 5, "predicted": {}}  # another size: nothing kept
    assert set(json.loads(write_report(other, opts).read_text())) == {"data", "split", "num", "predicted"}
    assert set(METHODS) == {"pooled", "pooled_finetuned", "predicted", "ceiling"}
