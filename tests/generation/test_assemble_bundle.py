"""fourm-bundle: a fine-tuned model with an added modality + a base bundle -> a self-contained bundle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fourm.cli.bundle import main as bundle_main
from fourm.errors import FourmError
from fourm.generation.assemble import assemble_bundle
from fourm.generation.bundle_layout import load_registry
from fourm.generation.pipeline import FourMPipeline
from fourm.modalities import ModalityRegistry
from fourm.testing.bundles import toy_model, toy_pipeline
from fourm.testing.retrieval import toy_retrieval_pipeline, toy_vector_tokenizer
from fourm.testing.tokenizers import toy_tokenizer

MODS = ("rgb", "caption")
NEW = "caption_embedding"


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """(base bundle without the vector modality, 'fine-tuned' model dir, vector tokenizer dir, YAML)."""
    root = tmp_path_factory.mktemp("assemble")
    base = toy_pipeline(modalities=MODS).save_pretrained(root / "base")
    tuned = toy_retrieval_pipeline(modalities=MODS, vector=NEW)
    model_dir = root / "tuned_model"
    tuned.model.save_pretrained(model_dir)
    tok_dir = root / "tok_ce"
    tuned.codecs[NEW].tokenizer.save_pretrained(tok_dir)
    yaml = root / f"{NEW}.yaml"
    tok = tuned.codecs[NEW].tokenizer
    yaml.write_text(f"name: {NEW}\nkind: vector\ntokenizer: tokenizers/{NEW}\nvocab_size: {tok.vocab_size}\nnum_tokens: {tok.num_tokens}\n")
    return base, model_dir, tok_dir, yaml, tuned


def test_bundle_loads_alone_and_matches_its_parts(parts, tmp_path):
    base, model_dir, tok_dir, yaml, tuned = parts
    out = assemble_bundle(model_dir, tmp_path / "bundle", base=base, added=[yaml], tokenizers={NEW: tok_dir})
    pipe = FourMPipeline.from_pretrained(out)
    assert list(pipe.model.config.modalities) == list(tuned.model.config.modalities)
    for key, value in tuned.model.state_dict().items():  # fp16 shipping copy of every weight
        torch.testing.assert_close(pipe.model.state_dict()[key], value.half().float(), rtol=0, atol=0)
    vec = torch.randn(3, tuned.codecs[NEW].dim)
    assert torch.equal(pipe.codecs[NEW].tokenizer.encode(vec), tuned.codecs[NEW].tokenizer.encode(vec))
    caption = ["a small red circle"]
    assert torch.equal(pipe.tokenize("caption", caption), tuned.tokenize("caption", caption))
    assert (out / "tokenizers" / NEW / "config.json").is_file()
    full = assemble_bundle(model_dir, tmp_path / "fp32", base=base, added=[yaml], tokenizers={NEW: tok_dir}, half=False)
    for key, value in FourMPipeline.from_pretrained(full).model.state_dict().items():
        assert torch.equal(value, tuned.model.state_dict()[key])


def test_generates_and_predicts_the_added_modality(parts, tmp_path):
    base, model_dir, tok_dir, yaml, _ = parts
    pipe = FourMPipeline.from_pretrained(
        assemble_bundle(model_dir, tmp_path / "bundle", base=base, added=[yaml], tokenizers={NEW: tok_dir})
    )
    out = pipe.generate({"caption": "a small red circle"}, [NEW], num_samples=2, seed=0)
    tokens, codebook = out.tokens[NEW], pipe.codecs[NEW].tokenizer.cfg.codebook_size
    assert tokens.shape == (2, 4)
    assert torch.equal(tokens // codebook, torch.arange(4).expand(2, 4))  # position j: codebook j's ids
    assert len(out.values[NEW]) == 2 and out.values[NEW][0].shape == (pipe.codecs[NEW].dim,)


def test_errors_name_the_problem_and_write_nothing(parts, tmp_path, capsys):
    base, model_dir, tok_dir, yaml, _ = parts
    out = tmp_path / "bundle"
    with pytest.raises(FourmError, match=f"'{NEW}' is not in the base registry"):
        assemble_bundle(model_dir, out, base=base)
    with pytest.raises(FourmError, match="already in the base bundle"):
        assemble_bundle(model_dir, out, base=base, added=[_caption_yaml(tmp_path)])
    with pytest.raises(FourmError, match="not a saved FourM"):
        assemble_bundle(tmp_path, out, base=base)
    with pytest.raises(FourmError, match="would replace its base"):
        assemble_bundle(model_dir, base, base=base, added=[yaml], tokenizers={NEW: tok_dir})
    wrong = toy_vector_tokenizer(num_tokens=2)
    wrong.save_pretrained(tmp_path / "wrong_tok")
    with pytest.raises(FourmError, match="gives 2 tokens"):
        assemble_bundle(model_dir, out, base=base, added=[yaml], tokenizers={NEW: tmp_path / "wrong_tok"})
    assert not out.exists()
    code = bundle_main([str(model_dir), str(out), "--base", str(base), "--add-modality", str(yaml), "--tokenizer", "bad"])
    assert code == 2 and "malformed --tokenizer 'bad'" in capsys.readouterr().err
    code = bundle_main([str(model_dir), str(out), "--base", str(base), "--tokenizer", f"{NEW}="])
    assert code == 2 and "names no directory" in capsys.readouterr().err
    code = bundle_main([str(model_dir), str(out), "--base", str(base), "--add-modality", str(yaml),
                        "--tokenizer", f"{NEW}={tok_dir}"])  # fmt: skip
    assert code == 0 and (out / "modalities.json").is_file()


def _caption_yaml(folder: Path) -> Path:
    path = folder / "caption.yaml"
    path.write_text("name: caption\nkind: sequence\ntokenizer: tokenizers/text\nvocab_size: 512\nmax_length: 16\n")
    return path


def test_bundle_with_an_added_patch_modality(tmp_path):
    """A model fine-tuned with rgb_pixels: the bundle takes its YAML, copies no tokenizer for it."""
    base = toy_pipeline(modalities=MODS).save_pretrained(tmp_path / "base")
    tuned = toy_pipeline(modalities=MODS, rgb_pixels=True)
    tuned.model.save_pretrained(tmp_path / "model")
    yaml = tmp_path / "rgb_pixels.yaml"
    yaml.write_text(
        "name: rgb_pixels\nkind: image\ndata_key: rgb\nvocab_size: 256\nnum_tokens: 16\npatch_size: 8\n"
        "channels: 3\nimage_size: 32\nvalue_range: [0, 255]\ninput: true\ntarget: false\n"
    )
    out = assemble_bundle(tmp_path / "model", tmp_path / "bundle", base=base, added=[yaml], half=False)
    assert not (out / "tokenizers" / "rgb_pixels").exists()
    pipe = FourMPipeline.from_pretrained(out)
    image = (torch.arange(32 * 32 * 3) % 251).reshape(32, 32, 3).to(torch.uint8).numpy()
    a = pipe.generate({"rgb": image}, ["caption"], seed=0, progress=False, decode=False)
    b = tuned.generate({"rgb": image}, ["caption"], seed=0, progress=False, decode=False)
    assert a.conditions == ["rgb_pixels"]  # the image read as patches (image_inputs "patches")
    assert torch.equal(a.tokens["caption"], b.tokens["caption"])


def test_adding_a_modality_the_base_already_has_unchanged_is_a_no_op(parts, tmp_path):
    """A rebuild on its own bundle (scripts/build_default_model.sh) names the extra modalities again."""
    base, model_dir, tok_dir, yaml, _ = parts
    first = assemble_bundle(model_dir, tmp_path / "first", base=base, added=[yaml], tokenizers={NEW: tok_dir})
    again = assemble_bundle(model_dir, tmp_path / "again", base=first, added=[yaml], tokenizers={NEW: tok_dir})
    assert (Path(again) / "modalities.json").read_text() == (Path(first) / "modalities.json").read_text()


def _model_on_a_retrained_rgb_tokenizer(tmp_path: Path, *overrides: str):
    """A toy base bundle (tmp_path/base), an rgb tokenizer of the toy config with ``overrides``
    (tmp_path/tok_rgb) and a toy model trained on its tokens, its vocabulary and tokens per sample
    (tmp_path/model) -> (base pipeline, base bundle directory, tokenizer)."""
    base_pipe = toy_pipeline(modalities=MODS)
    base = base_pipe.save_pretrained(tmp_path / "base")
    tok = toy_tokenizer("rgb", *overrides, image_size=32)
    tok.save_pretrained(tmp_path / "tok_rgb")
    specs = [
        s if s.name != "rgb" else s.replace(vocab_size=tok.vocab_size, num_tokens=tok.num_tokens)
        for s in base_pipe.registry.values()
    ]
    toy_model(ModalityRegistry(specs)).save_pretrained(tmp_path / "model")
    return base_pipe, base, tok


def test_a_retrained_tokenizer_with_more_codes_updates_the_bundle_registry(tmp_path):
    """A model trained on a 128-code rgb tokenizer over a base bundle with 64 codes: the bundle's
    registry takes the model's vocabulary; without the new tokenizer the bundle is refused."""
    base_pipe, base, tok = _model_on_a_retrained_rgb_tokenizer(tmp_path, "quantizer.codebook_size=128")
    assert base_pipe.registry["rgb"].vocab_size == 64 and tok.vocab_size == 128
    with pytest.raises(FourmError, match="'rgb': the base registry gives a vocabulary of 64, the model 128"):
        assemble_bundle(tmp_path / "model", tmp_path / "refused", base=base)
    assert not (tmp_path / "refused").exists()
    out = assemble_bundle(tmp_path / "model", tmp_path / "bundle", base=base, tokenizers={"rgb": tmp_path / "tok_rgb"})
    assert load_registry(out)["rgb"].vocab_size == 128
    assert load_registry(out)["caption"] == load_registry(base)["caption"]
    pipe = FourMPipeline.from_pretrained(out)
    tokens = pipe.generate({"caption": "a small red circle"}, ["rgb"], seed=0, progress=False, decode=False).tokens["rgb"]
    assert tokens.shape == (1, 16) and int(tokens.max()) < 128


def test_a_retrained_tokenizer_on_a_finer_grid_updates_the_bundle_registry(tmp_path):
    """A model trained on an rgb tokenizer with 4 x 4-pixel patches (8 x 8 = 64 tokens of a 32 x 32 image)
    over a base bundle of 4 x 4 = 16 tokens: the bundle's registry takes the model's tokens per sample;
    without the new tokenizer the bundle is refused, naming the difference."""
    base_pipe, base, tok = _model_on_a_retrained_rgb_tokenizer(tmp_path, "downsample=4", "channel_mult=[1,1,2]")
    assert base_pipe.registry["rgb"].num_tokens == 16
    assert tok.num_tokens == 64
    with pytest.raises(FourmError, match="'rgb': the base registry gives 16 tokens per sample, the model 64"):
        assemble_bundle(tmp_path / "model", tmp_path / "refused", base=base)
    assert not (tmp_path / "refused").exists()
    out = assemble_bundle(tmp_path / "model", tmp_path / "bundle", base=base, tokenizers={"rgb": tmp_path / "tok_rgb"})
    assert load_registry(out)["rgb"].num_tokens == 64
    assert load_registry(out)["rgb"].vocab_size == 64
    pipe = FourMPipeline.from_pretrained(out)
    result = pipe.generate({"caption": "a small red circle"}, ["rgb"], seed=0, progress=False)
    assert result.tokens["rgb"].shape == (1, 64)
    assert np.asarray(result.values["rgb"][0]).shape == (32, 32, 3)  # decoded by the new tokenizer
