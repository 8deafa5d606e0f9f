"""fourm-retrieve eval: the alignment's fitting data (split, pairs actually used) is reported, and an
alignment fitted on the evaluated rows is refused (or, with --allow-overlap, loudly reported)."""

import json

from fourm.cli.retrieve import main


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_eval_reports_the_pairs_actually_used(capsys, bundle, world, tmp_path):
    # the toy world has 8 train samples: far fewer than the 4000 align_samples requested by default
    code, out, err = run(capsys, "eval", "--data", world, "--query", "caption", "--key", "rgb", "--bundle", bundle,
                         "--align-dim", 3, "--json", tmp_path / "r.json")
    assert code == 0, err
    assert "alignment fitted on 8 pairs (of 4000 requested) of split 'train'; evaluated on 8 of split 'val'" in out
    assert "warning" not in err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["reference"] == {
        "fitted": "alignment", "data": str(world), "split": "train", "pairs": 8, "requested": 4000, "overlap": 0,
    }


def test_eval_refuses_an_alignment_fitted_on_the_evaluated_split(capsys, bundle, world):
    code, out, err = run(capsys, "eval", "--data", world, "--query", "caption", "--key", "rgb", "--bundle", bundle,
                         "--align-dim", 3, "--align-split", "val")
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: the alignment would be fitted on split 'val'") and "--align-split" in err
    assert "--allow-overlap" in err


def test_eval_allow_overlap_warns_with_the_overlap(capsys, bundle, world, tmp_path):
    code, out, err = run(capsys, "eval", "--data", world, "--query", "caption", "--key", "rgb", "--bundle", bundle,
                         "--align-dim", 3, "--align-samples", 6, "--align-split", "val", "--allow-overlap",
                         "--json", tmp_path / "r.json")  # fmt: skip
    assert code == 0, err
    assert "warning: the alignment was fitted on 6 of the 8 evaluated rows" in err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["reference"]["split"] == "val" and report["reference"]["pairs"] == 6
    assert report["reference"]["overlap"] == 6


def test_eval_centres_on_the_evaluated_split_are_warned_about(capsys, bundle, world, tmp_path):
    code, out, err = run(capsys, "eval", "--data", world, "--query", "caption", "--key", "rgb", "--bundle", bundle,
                         "--no-align", "--center-split", "val", "--json", tmp_path / "r.json")
    assert code == 0, err  # centres (no pairing) on the evaluated split: allowed, but warned about
    assert "warning: the centres were fitted on 8 of the 8 evaluated rows" in err
    assert json.loads((tmp_path / "r.json").read_text())["reference"]["fitted"] == "centres"
