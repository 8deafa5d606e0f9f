"""``--model`` is a model bundle in fourm-retrieve and bench/caption_from_image.py, as in every command;
``--bundle`` is its older spelling, ``--weights`` another FourM with the bundle's tokenizers, and a FourM
directory given as ``--model`` keeps its old meaning with a one-line deprecation warning."""

import re

import pytest

from fourm.cli.retrieve import main
from fourm.errors import FourmError
from fourm.retrieval.index import EmbeddingIndex
from fourm.retrieval.settings import choose_model, is_model_dir


def warnings_in(err: str) -> list[str]:
    """The warning lines of stderr (progress bars aside)."""
    return re.findall(r"warning:[^\r\n]*", err)


def index(capsys, world, out, *model_args):
    argv = ["index", "--data", world, "--key-modality", "rgb", "--out", out, "--no-align", *model_args]
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return EmbeddingIndex.load(out).info, captured.err


def test_choose_model(bundle, tmp_path):
    weights = bundle / "model"
    assert is_model_dir(weights) and not is_model_dir(bundle) and not is_model_dir(tmp_path)
    assert choose_model(str(bundle)) == choose_model(None, str(bundle)).__class__(str(bundle), None)
    old = choose_model(str(weights), str(bundle))  # the old meaning: a FourM directory with --bundle's tokenizers
    assert (old.bundle, old.weights, old.bundle_flag, old.weights_flag) == (str(bundle), str(weights), "--bundle", "--model")
    assert old.warning.startswith("warning: ") and "\n" not in old.warning and "--weights" in old.warning
    new = choose_model(str(bundle), None, str(weights))
    assert (new.bundle, new.weights, new.warning) == (str(bundle), str(weights), None)
    assert choose_model(None, str(bundle)).bundle_flag == "--bundle"
    assert choose_model().bundle is None  # the shipped default
    with pytest.raises(FourmError, match="two bundles"):
        choose_model(str(bundle), str(tmp_path))
    with pytest.raises(FourmError, match="give one"):
        choose_model(str(weights), None, str(weights))


def test_retrieve_model_is_a_bundle(capsys, bundle, world, tmp_path):
    by_model, err = index(capsys, world, tmp_path / "a", "--model", bundle)
    assert warnings_in(err) == []
    by_bundle, _ = index(capsys, world, tmp_path / "b", "--bundle", bundle)
    assert by_model["bundle"] == by_bundle["bundle"] == str(bundle.resolve()) and by_model["model"] is None


def test_retrieve_weights_and_the_old_model_meaning(capsys, bundle, world, tmp_path):
    weights = bundle / "model"
    new, err = index(capsys, world, tmp_path / "a", "--model", bundle, "--weights", weights)
    assert warnings_in(err) == [] and new["model"] == str(weights.resolve())
    old, err = index(capsys, world, tmp_path / "b", "--bundle", bundle, "--model", weights)
    assert old["model"] == new["model"] and old["bundle"] == new["bundle"]
    lines = warnings_in(err)
    assert len(lines) == 1 and "deprecated" in lines[0] and err.startswith("warning:")


def test_retrieve_two_bundles_is_an_error(capsys, bundle, world, tmp_path):
    argv = ["index", "--data", world, "--key-modality", "rgb", "--out", tmp_path / "x", "--model", bundle,
            "--bundle", tmp_path]  # fmt: skip
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert "two bundles" in err and len(err.strip().splitlines()) == 1


def test_caption_from_image_model_is_a_bundle(load_bench, bundle, world, tmp_path, capsys):
    import json

    bench = load_bench("caption_from_image")
    argv = ["--data", str(world), "--num", "2"]
    assert bench.main(["--model", str(bundle), *argv, "--json", str(tmp_path / "a.json")]) == 0
    assert warnings_in(capsys.readouterr().err) == []
    weights = bundle / "model"
    assert bench.main(["--bundle", str(bundle), "--model", str(weights), *argv, "--json", str(tmp_path / "b.json")]) == 0
    err = capsys.readouterr().err
    assert len(warnings_in(err)) == 1 and err.startswith("warning:")
    a, b = (json.loads((tmp_path / f"{n}.json").read_text()) for n in "ab")
    assert a["bundle"] == b["bundle"] == str(bundle) and a["model"] is None and b["model"] == str(weights)
    assert a["views"]["rgb"]["examples"] == b["views"]["rgb"]["examples"]  # the same weights either way
