"""Generation defaults (built in, a bundle's generation.json, set_defaults, CLI options), parse
failures (reported, and left out of the condition of later targets) and guidance on the first
target of a chain (an unconditional pass with no encoder token at all)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import fourm.generation.chain as chain
from fourm.cli.generate import main
from fourm.errors import FourmError
from fourm.generation import (
    EncoderInputs,
    GivenTokens,
    Guidance,
    ParallelDecoder,
    SequenceDecoder,
    encoder_inputs,
)
from fourm.generation.bundle import GENERATION_FILE
from fourm.generation.pipeline import FourMPipeline
from fourm.testing.bundles import build_toy_bundle, toy_pipeline

MODALITIES = ("rgb", "caption", "bboxes", "color_palette", "metadata")


@pytest.fixture(scope="module")
def pipe() -> FourMPipeline:
    p = toy_pipeline(modalities=MODALITIES)
    p.autocast = False
    return p


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return build_toy_bundle(tmp_path_factory.mktemp("toy") / "bundle", modalities=MODALITIES)


# ------------------------------------------------------------------------------ defaults


def test_builtin_defaults_set_defaults_and_overrides(pipe):
    assert pipe.default_target("rgb").guidance_scale == 1.0 and pipe.default_target("bboxes").grammar is True
    pipe.set_defaults("rgb", guidance_scale=3.0, steps=5)
    try:
        rgb = pipe.default_target("rgb")
        assert (rgb.guidance_scale, rgb.steps, rgb.scheme) == (3.0, 5, "maskgit")
        assert pipe.default_target("rgb", steps=2).guidance_scale == 3.0  # a call overrides one field
        # per-condition weights given per call replace the default scale (no "not both" clash)
        weighted = pipe.default_target("rgb", guidance_weights={"caption": 2.0})
        assert (weighted.guidance_scale, weighted.guidance_weights) == (1.0, {"caption": 2.0})
        result = pipe.generate({"caption": "a red circle"}, ["rgb"], progress=False)
        assert result.plan.targets[0].guidance_scale == 3.0
    finally:
        pipe.generation_defaults.clear()
    with pytest.raises(FourmError, match="generation defaults of 'rgb': invalid value for 'steps'"):
        pipe.set_defaults("rgb", steps="many")
    with pytest.raises(FourmError, match="unknown config field 'nope'"):
        pipe.set_defaults("rgb", nope=1)
    with pytest.raises(FourmError, match="unknown modality 'normals'"):
        pipe.set_defaults("normals", steps=2)
    assert pipe.generation_defaults == {}


def test_generation_json_is_read_saved_and_checked(bundle, tmp_path):
    import shutil

    copy = tmp_path / "b"
    shutil.copytree(bundle, copy)
    (copy / GENERATION_FILE).write_text(json.dumps({"targets": {"rgb": {"guidance_scale": 2.5}, "bboxes": {"grammar": False, "top_p": 0.5}}}))
    pipe = FourMPipeline.from_pretrained(copy, device="cpu")
    assert pipe.default_target("rgb").guidance_scale == 2.5
    boxes = pipe.default_target("bboxes")
    assert (boxes.grammar, boxes.top_p, boxes.temperature) == (False, 0.5, 1.0)
    saved = pipe.save_pretrained(tmp_path / "saved")
    assert json.loads((saved / GENERATION_FILE).read_text()) == {
        "targets": {"rgb": {"guidance_scale": 2.5}, "bboxes": {"grammar": False, "top_p": 0.5}}
    }
    assert not (bundle / GENERATION_FILE).exists()  # no defaults: no file
    for text, message in [
        ("{", "corrupt generation defaults"),
        ('{"rgb": {"steps": 3}}', "expected a JSON object"),
        ('{"targets": {"rgb": 3}}', "targets.rgb must be an object"),
        ('{"targets": {"rgb": {"steps": 0}}}', "generation.json: generation defaults of 'rgb': target 'rgb': steps must be >= 1"),
        ('{"targets": {"normals": {"steps": 2}}}', "unknown modality 'normals'"),
    ]:
        (copy / GENERATION_FILE).write_text(text)
        with pytest.raises(FourmError, match=message):
            FourMPipeline.from_pretrained(copy, device="cpu")


def test_cli_applies_generation_json_and_options_override_it(bundle, tmp_path):
    import shutil

    copy = tmp_path / "b"
    shutil.copytree(bundle, copy)
    (copy / GENERATION_FILE).write_text(json.dumps({"targets": {"rgb": {"guidance_scale": 2.5, "steps": 3}, "bboxes": {"grammar": False}}}))
    out = tmp_path / "out"
    args = ["--model", str(copy), "--out", str(out), "--no-progress", "--fp32", "--target", "bboxes", "rgb"]
    assert main([*args, "--cond", "caption=a red circle"]) == 0
    rgb, boxes = json.loads((out / "sequences.json").read_text())["plan"]["targets"][::-1]
    assert (rgb["guidance_scale"], rgb["steps"], boxes["grammar"]) == (2.5, 3, False)
    assert main([*args, "--cond", "caption=a red circle", "--overwrite", "--guidance", "rgb=1.5", "--grammar", "bboxes=on"]) == 0
    rgb, boxes = json.loads((out / "sequences.json").read_text())["plan"]["targets"][::-1]
    assert (rgb["guidance_scale"], rgb["steps"], boxes["grammar"]) == (1.5, 3, True)
    assert main([*args, "--overwrite", "--grammar", "bboxes=maybe"]) == 2


# ------------------------------------------------------------------------------ parse failures


def _malformed_run(pipe, targets, seed=0):
    """bboxes without the grammar at a high temperature: the random toy model writes broken boxes."""
    boxes = pipe.default_target("bboxes", grammar=False, temperature=2.0)
    return pipe.generate({"caption": "a small red circle"}, [boxes, *targets], num_samples=6, seed=seed, progress=False)


def test_malformed_groups_are_reported_and_not_used_as_condition(pipe, monkeypatch):
    seen: list[dict] = []
    real = chain.encoder_inputs

    def spy(config, given, *args, **kwargs):
        seen.append(dict(given))
        return real(config, given, *args, **kwargs)

    monkeypatch.setattr(chain, "encoder_inputs", spy)
    codec = pipe.codecs["bboxes"]
    # per-sample prefixes (grammar on): even rows a complete box, odd rows a broken one (the grammar
    # restarts a label after it and finishes the rest well-formed)
    tok = codec.tokenizer
    ok = [tok.token_id(t) for t in ("circle", "[x=1]", "[y=1]", "[x=9]", "[y=9]")]
    broken = [tok.token_id(t) for t in ("circle", "[x=1]", "[y=1]", "red", "red")]
    prefix = torch.tensor([ok, broken] * 3)
    result = pipe.generate({"caption": "a small red circle"}, ["bboxes", "rgb"], num_samples=6, seed=0, progress=False,
                           partial={"bboxes": prefix})  # fmt: skip
    failures = result.parse_failures["bboxes"]
    assert [bool(f) for f in failures] == [False, True] * 3
    assert all(f[0]["text"] == "circle [x=1] [y=1]" for f in failures[1::2])
    # without the grammar the random toy model breaks boxes by itself: reported too
    assert any(_malformed_run(pipe, []).parse_failures["bboxes"])
    for i, failed in enumerate(failures):
        assert result.values["bboxes"][i] == codec.decode(result.tokens["bboxes"][i : i + 1])[0]  # the groups that parsed
        for f in failed:
            assert set(f) == {"text", "error"} and f["text"] and f["error"]
    # the rgb target saw, per sample, the sampled boxes where they parsed and the re-encoded clean value elsewhere
    (cond,) = [s["bboxes"] for s in seen if "bboxes" in s]
    clean = codec.encode(result.values["bboxes"])
    for i, failed in enumerate(failures):
        got = cond.tokens[i][cond.valid[i]]
        if failed:
            expected = clean[i][: int((clean[i] != codec.pad).sum())]  # up to and including [EOS]
            assert torch.equal(got, expected)
            assert codec.decode_with_failures(got[None])[1] == [[]]
        else:
            sampled = result.tokens["bboxes"][i]
            assert torch.equal(got, sampled[: got.shape[0]]) and got.shape[0] == int((sampled != codec.pad).sum())


def test_with_the_grammar_nothing_fails_and_no_condition_is_rewritten(pipe):
    result = pipe.generate({"caption": "a small red circle"}, ["bboxes", "color_palette", "rgb"], num_samples=6, seed=0, progress=False)
    assert result.parse_failures["bboxes"] == [[]] * 6 and result.parse_failures["color_palette"] == [[]] * 6
    assert set(result.parse_failures) == {"bboxes", "color_palette"}  # structured sequence targets only


def test_parse_failures_in_sequences_json_and_console(bundle, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["--model", str(bundle), "--out", str(out), "--no-progress", "--fp32", "--cond", "caption=a small red circle",
            "--target", "bboxes", "--grammar", "bboxes=off", "--temperature", "bboxes=2", "--num-samples", "6"]  # fmt: skip
    assert main(args) == 0
    stdout = capsys.readouterr().out
    samples = json.loads((out / "sequences.json").read_text())["samples"]
    failed = [i for i, s in enumerate(samples) if s["parse_failures"]["bboxes"]]
    assert failed
    warnings = [line for line in stdout.splitlines() if line.startswith("warning: sample")]
    assert [int(line.split()[2].rstrip(":")) for line in warnings] == failed  # one line per failed sample
    for i in failed:
        first = samples[i]["parse_failures"]["bboxes"][0]
        assert set(first) == {"text", "error"} and repr(first["text"]) in warnings[failed.index(i)]
    pipe = FourMPipeline.from_pretrained(bundle, device="cpu")
    pipe.autocast = False
    result = pipe.generate({"caption": "a small red circle"}, [pipe.default_target("bboxes", grammar=False, temperature=2.0)],
                           num_samples=6, seed=0, progress=False)  # fmt: skip
    assert [s["parse_failures"]["bboxes"] for s in samples] == result.parse_failures["bboxes"]


def test_serializer_failures_list():
    from tokenizers_zoo.text import text_to_bboxes, text_to_metadata, text_to_palette
    from tokenizers_zoo.text.vocabulary import MetadataSpec

    failures: list = []
    boxes = text_to_bboxes("circle [x=1] [y=1] [x=2] [y=2] [x=3] red [x=5] [y=4] [x=1] [y=9]", 64, strict=False, failures=failures)
    assert boxes == [] and [f[0] for f in failures] == ["circle [x=1] [y=1] [x=2] [y=2] [x=3]", "red [x=5] [y=4] [x=1] [y=9]"]
    assert "expected 4" in failures[0][1] and "inverted" in failures[1][1]
    failures = []
    assert text_to_palette("[palette=2] [c=1] [c=2] [c=3]", 16, 8, strict=False, failures=failures) == [[17, 34, 51]]
    assert len(failures) == 1 and "truncated palette" in failures[0][1]
    failures = []
    meta = text_to_metadata("[meta:object_count] [m=3] [meta:object_count] [m=4] [meta:brightness]", MetadataSpec(), strict=False, failures=failures)
    assert meta == {"object_count": 3} and len(failures) == 2
    assert text_to_bboxes("circle [x=1] [y=1]", 64, strict=False) == []  # no list given: silent as before


# ------------------------------------------------------------------------------ guidance, first target


def test_guidance_on_the_first_target_has_an_empty_unconditional_pass(pipe):
    """The first target of a chain: the unconditional pass has no encoder token at all. The model's
    masks never leave an attention row empty, so it is finite: the decoder sees a zero context."""
    model = pipe.model
    caption = GivenTokens.sequence(pipe.tokenize("caption", ["a red circle"]), eos=2, pad=0).expand(2)
    sets, coefficients = Guidance(3.0).passes({"caption": caption}, {})
    passes = EncoderInputs.stack([encoder_inputs(model.config, s, 2) for s in sets])
    assert passes.valid.sum(dim=1).tolist()[2:] == [0, 0]  # unconditional rows: nothing valid
    inputs, positions = torch.tensor([[1, 7, 9]] * 2), torch.arange(3).expand(2, 3)
    with torch.no_grad():
        guided = [SequenceDecoder(model, "bboxes", passes, coefficients, use_cache=c)(inputs, positions) for c in (True, False)]
        cond = SequenceDecoder(model, "bboxes", EncoderInputs.stack([encoder_inputs(model.config, sets[0], 2)]), [1.0])(inputs, positions)
        empty = EncoderInputs.stack([encoder_inputs(model.config, {}, 2)])
        uncond = SequenceDecoder(model, "bboxes", empty, [1.0])(inputs, positions)
        tokens, known = torch.zeros(2, 16, dtype=torch.long), torch.zeros(2, 16, dtype=torch.bool)
        query = torch.arange(16).expand(2, 16)
        image = ParallelDecoder(model, "rgb", passes, coefficients)(tokens, known, query, torch.ones_like(known))
    assert all(torch.isfinite(g).all() for g in guided) and torch.isfinite(image).all()
    assert torch.allclose(guided[0], guided[1], atol=1e-4)
    assert torch.allclose(guided[0], uncond + 3.0 * (cond - uncond), atol=1e-3)
    assert not torch.allclose(cond, uncond, atol=1e-3)
    # through the pipeline, in bf16 autocast too
    for autocast in (False, True):
        pipe.autocast = autocast
        try:
            result = pipe.generate({"caption": "a red circle"}, [pipe.default_target("bboxes", guidance_scale=3.0),
                                   pipe.default_target("rgb", guidance_scale=3.0, steps=2)], num_samples=2, progress=False)  # fmt: skip
        finally:
            pipe.autocast = False
        assert result.parse_failures["bboxes"] == [[], []] and result.tokens["rgb"].shape == (2, 16)


# ------------------------------------------------------------------------------ default prefixes


def test_a_target_prefix_starts_the_sequence_unless_a_partial_is_given(pipe):
    prefix = pipe.tokenize("caption", ["there are"], prefix=True)  # (1, n), no [EOS]
    pipe.set_defaults("caption", prefix="there are", temperature=0.0)
    try:
        result = pipe.generate({}, ["caption"], num_samples=2, progress=False)
        assert torch.equal(result.tokens["caption"][:, : prefix.shape[1]], prefix.expand(2, -1))
        assert result.plan.targets[0].prefix == "there are"  # recorded as used
        given = pipe.generate({}, ["caption"], num_samples=2, caption_prefix="a red", progress=False)
        assert given.plan.targets[0].prefix == "a red" and all(c.startswith("a red") for c in given.values["caption"])
        off = pipe.generate({}, ["caption"], num_samples=2, caption_prefix="", progress=False)
        plain = pipe.generate({}, [pipe.default_target("caption", prefix=None)], num_samples=2, progress=False)
        assert off.plan.targets[0].prefix is None and torch.equal(off.tokens["caption"], plain.tokens["caption"])
        # batched prompts start from the target's prefix too, every row
        size = pipe.codec("rgb").image_size
        images = [{"rgb": np.full((size, size, 3), v, np.uint8)} for v in (0, 200)]
        batch = pipe.generate_batch(images, ["caption"], num_samples=2, progress=False)
        assert torch.equal(batch.tokens["caption"][:, : prefix.shape[1]], prefix.expand(4, -1))
        assert batch.plan.targets[0].prefix == "there are"
    finally:
        pipe.generation_defaults.clear()


def test_prefix_is_checked_and_needs_its_tokens_below_the_pipeline(pipe):
    with pytest.raises(FourmError, match="target 'rgb': prefix must be text and applies to scheme ar only"):
        pipe.default_target("rgb", prefix="a red")
    plan = pipe.plan([pipe.default_target("caption", prefix="a red")])
    with pytest.raises(FourmError, match="target 'caption': prefix 'a red' is raw text; give its tokens"):
        chain.generate_chained(pipe.model, {}, plan)


def test_cli_uses_the_bundles_prefix_and_caption_prefix_overrides_it(bundle, tmp_path):
    import shutil

    from PIL import Image

    copy = tmp_path / "b"
    shutil.copytree(bundle, copy)
    (copy / GENERATION_FILE).write_text(json.dumps({"targets": {"caption": {"prefix": "there are", "temperature": 0.0}}}))
    image = tmp_path / "photo.png"
    Image.fromarray(np.full((40, 30, 3), 90, np.uint8)).save(image)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"rgb": str(image)}) + "\n")
    runs = {  # name -> (extra args, prefix recorded in the plan)
        "default": (["--cond", f"rgb={image}"], "there are"),
        "given": (["--cond", f"rgb={image}", "--caption-prefix", "a red"], "a red"),
        "off": (["--cond", f"rgb={image}", "--caption-prefix", ""], None),
        "prompts": (["--prompts", str(prompts), "--prefix", "caption=a red"], "a red"),
    }
    for name, (extra, recorded) in runs.items():
        out = tmp_path / name
        assert main(["--model", str(copy), "--out", str(out), "--no-progress", "--fp32", "--target", "caption", *extra]) == 0
        info = json.loads((out / "sequences.json").read_text())
        assert info["plan"]["targets"][0]["prefix"] == recorded, name
        sample = info["samples"][0]
        caption = sample.get("outputs", sample)["caption"]  # a --prompts run nests its outputs
        assert caption.startswith(recorded) if recorded else not caption.startswith("there are"), (name, caption)


def test_a_later_targets_prefix_conditions_no_earlier_target(pipe):
    """A caption's prefix is continued by the caption alone: the boxes drawn before it are the same with or
    without it (they used to be conditioned on the unfinished caption)."""
    boxes = pipe.default_target("bboxes", temperature=0.0)
    runs = [
        pipe.generate({"rgb": np.zeros((8, 8, 3), np.uint8)}, [boxes, "caption"], num_samples=2, seed=5,
                      caption_prefix=prefix, progress=False)
        for prefix in ("", "a red")
    ]  # fmt: skip
    assert torch.equal(runs[0].tokens["bboxes"], runs[1].tokens["bboxes"])
    assert all(c.startswith("a red") for c in runs[1].values["caption"])


def test_a_too_long_condition_warns_and_a_too_long_prefix_is_refused(pipe):
    length = pipe.codec("caption").length
    long_caption = " ".join(["red"] * (length + 5))
    with pytest.warns(UserWarning, match=f"condition 'caption': .* tokens, more than the model's {length}: the rest is cut") as seen:
        pipe.generate({"caption": long_caption}, ["rgb"], progress=False)
    assert seen[0].filename == __file__  # it points at the caller
    with pytest.warns(UserWarning, match="the rest is cut") as seen:
        pipe.generate_batch([{"caption": long_caption}, {"caption": "a red circle"}], ["rgb"], progress=False)
    assert seen[0].filename == __file__
    with pytest.raises(FourmError, match=f"prefix of 'caption': .* tokens leave no room in its {length}"):
        pipe.generate({}, ["caption"], caption_prefix=long_caption, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a caption that fits: no warning
        pipe.generate({"caption": "a red circle"}, ["rgb"], progress=False)


def test_an_empty_caption_condition_is_refused_and_unknown_characters_warn(pipe):
    """A blank caption would give the model [EOS] alone (often a shell variable left unset); characters
    the vocabulary never saw become [UNK]: refused / named instead of silently conditioning on nothing."""
    for blank in ("", "   "):
        with pytest.raises(FourmError, match="condition 'caption' is empty: give it some text, or leave it out"):
            pipe.generate({"caption": blank}, ["rgb"], progress=False)
        with pytest.raises(FourmError, match="condition 'caption' is empty"):
            pipe.generate_batch([{"caption": "a red circle"}, {"caption": blank}], ["rgb"], progress=False)
    with pytest.warns(UserWarning, match=r"condition 'caption': '日本' not in the model's text vocabulary") as seen:
        pipe.generate({"caption": "a red 日本 circle"}, ["rgb"], progress=False)
    assert seen[0].filename == __file__  # it points at the caller
    with pytest.warns(UserWarning, match=r"prefix 'caption': '☃' not in the model's text vocabulary"):
        pipe.generate({}, ["caption"], caption_prefix="a ☃", progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # known words (even unseen ones spelled in pieces) and an empty prefix: silent
        pipe.generate({"caption": "a red zebra"}, ["rgb"], progress=False)
        pipe.generate({}, ["caption"], caption_prefix="", progress=False)


def test_generate_cli_refuses_an_empty_caption_in_one_line(bundle, tmp_path, capsys):
    out = tmp_path / "o"
    args = ["--model", str(bundle), "--out", str(out), "--no-progress", "--fp32", "--target", "rgb"]
    assert main([*args, "--cond", "caption="]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --cond caption=...: condition 'caption' is empty: give it some text, or leave it out"]
    assert not out.exists()
