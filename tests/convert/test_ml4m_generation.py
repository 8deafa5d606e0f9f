"""A converted ml-4m model through fourm's generation pipeline: ``fourm-convert ml4m`` writes a bundle,
``FourMPipeline.from_pretrained`` loads it with its converted tokenizers, chained generation runs
(and, greedily, picks the tokens ml-4m's own computation gives), ``generate.py`` runs on it."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from ml4m_bundle_fixtures import convert, write_sources
from ml4m_reference import reference_forward

from fourm.cli.generate import main as generate_main
from fourm.codecs import MissingTokenizerCodec, Ml4mImageCodec, Ml4mSequenceCodec, PatchCodec
from fourm.errors import FourmError
from fourm.generation.pipeline import FourMPipeline


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    return write_sources(tmp_path_factory.mktemp("ml4m_sources"))


@pytest.fixture(scope="module")
def bundle(sources, tmp_path_factory):
    return convert(sources, tmp_path_factory.mktemp("ml4m_bundle") / "out")


@pytest.fixture(scope="module")
def pipe(bundle):
    return FourMPipeline.from_pretrained(bundle, device="cpu")


def _image(seed: int = 0, size: int = 40) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size + 8, 3), dtype=np.uint8)


def test_converted_bundle_layout_and_codecs(bundle, pipe):
    assert {p.name for p in bundle.iterdir()} >= {"model", "tokenizers", "modalities.json", "generation.json",
                                                  "ml4m_modalities.json"}
    registry = json.loads((bundle / "modalities.json").read_text())
    assert registry["tok_rgb@32"]["tokenizer"] == "tokenizers/tok_rgb@32"
    assert registry["caption"]["tokenizer"] == registry["det"]["tokenizer"] == "tokenizers/text"
    assert registry["rgb@32"] == {**registry["rgb@32"], "patch_size": 8, "num_tokens": 16, "data_key": "rgb"}
    kinds = {name: type(codec) for name, codec in pipe.codecs.items()}
    assert kinds == {"caption": Ml4mSequenceCodec, "det": Ml4mSequenceCodec, "rgb@32": PatchCodec,
                     "tok_dinov2_global": Ml4mImageCodec, "tok_rgb@32": Ml4mImageCodec}
    assert pipe.codecs["caption"].tokenizer is pipe.codecs["det"].tokenizer  # one text tokenizer
    # ml-4m's generation settings as the bundle's defaults
    assert pipe.default_target("tok_rgb@32").scheme == "roar" and pipe.default_target("tok_rgb@32").guidance_scale == 2.0
    assert pipe.default_target("caption").temperature == 0.3
    # decoder sequences start with [S_1], stop at [EOS]; sentinels, [SOS] and [PAD] are never sampled
    plan = pipe.plan(["caption"])
    text = pipe.codecs["caption"].tokenizer
    assert (plan.sos, plan.eos, plan.pad) == (text.sentinel_id(1), text.eos_id, 0)
    assert set(plan.banned) == {*text.sentinel_ids, text.sos_id, text.pad_id}


def test_caption_from_image_tokens_and_image_tokens_from_caption(pipe):
    # an image given for tok_rgb@32 is read as rgb@32 pixel patches (same raw image), as 4M reads RGB
    result = pipe.generate({"tok_rgb@32": _image()}, ["caption", "det"], num_samples=2, seed=3, progress=False)
    assert result.conditions == ["rgb@32"]
    assert result.tokens["caption"].shape == (2, 12) and result.tokens["det"].shape == (2, 10)
    assert all(isinstance(v, str) for v in result.values["caption"])
    assert all(isinstance(v, list) for v in result.values["det"]) and len(result.parse_failures["det"]) == 2
    again = pipe.generate({"tok_rgb@32": _image()}, ["caption", "det"], num_samples=2, seed=3, progress=False)
    assert torch.equal(again.tokens["caption"], result.tokens["caption"])

    result = pipe.generate({"caption": "a dog"}, ["tok_rgb@32", "tok_dinov2_global"], num_samples=2, progress=False)
    assert result.tokens["tok_rgb@32"].shape == (2, 16) and result.tokens["tok_dinov2_global"].shape == (2, 4)
    image = result.values["tok_rgb@32"][0]
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    assert result.values["tok_dinov2_global"][0].shape == (12,)  # the decoded global feature vector


def _reference_next(sources, enc, prefix: list[int]) -> torch.Tensor:
    """ml-4m's logits for the caption token after ``prefix`` (its decoder sequence: [S_1], tokens)."""
    tensor = torch.tensor([prefix + [0]])  # the last entry is only the (unused) target of the last input
    dec = {"caption": {"tensor": tensor, "target_mask": torch.zeros_like(tensor, dtype=torch.bool)}}
    num_enc = sum(int((~d["input_mask"]).sum()) for d in enc.values())
    state = dict(sources["state"])  # one more (never read) position row for that last target
    table = state["decoder_embeddings.caption.pos_emb"]
    state["decoder_embeddings.caption.pos_emb"] = torch.cat([table, table[:, :1]], dim=1)
    return reference_forward(sources["cfg"], state, enc, dec, num_enc, len(prefix))[3]["caption"][-1]


def test_greedy_caption_is_ml4ms(sources, pipe):
    """Greedy decoding through the pipeline (KV cache) picks, step by step, the argmax of ml-4m's own
    logits for a decoder sequence that starts with [S_1] (fourm's constraints applied to both)."""
    text = pipe.codecs["caption"].tokenizer
    ids = torch.tensor([[3, 17, 25, 49, 0, 8, 11, 30, 42, 5, 5, 1, 19, 27, 33, 2]])
    target = pipe.default_target("caption", temperature=0.0)
    got = pipe.generate({"tok_rgb@32": ids}, [target], progress=False).tokens["caption"][0].tolist()
    enc = {"tok_rgb@32": {"tensor": ids, "input_mask": torch.zeros_like(ids, dtype=torch.bool)}}
    banned = [*text.sentinel_ids, text.sos_id, text.pad_id]
    prefix, want = [text.sentinel_id(1)], []
    for i in range(12):
        logits = _reference_next(sources, enc, prefix)
        logits[banned] = -torch.inf
        if i == 0:
            logits[text.eos_id] = -torch.inf  # min_length 1
        token = int(logits.argmax())
        want.append(token)
        if token == text.eos_id:
            break
        prefix.append(token)
    assert got[: len(want)] == want and all(t == 0 for t in got[len(want):])


def test_greedy_one_step_image_tokens_are_ml4ms(sources, pipe):
    caption = pipe.tokenize("caption", ["a cat on a mat"])
    n = int((caption != 0).sum())
    assert int(caption[0, n - 1]) == pipe.codecs["caption"].eos  # ids, then [EOS]
    target = pipe.default_target("tok_rgb@32", steps=1, temperature=0.0, guidance_scale=1.0)
    got = pipe.generate({"caption": "a cat on a mat"}, [target], progress=False).tokens["tok_rgb@32"][0]
    enc = {"caption": {"tensor": caption[:, :n], "input_mask": torch.zeros(1, n, dtype=torch.bool)}}
    dec = {"tok_rgb@32": {"tensor": torch.zeros(1, 16, dtype=torch.long), "target_mask": torch.zeros(1, 16, dtype=torch.bool)}}
    logits = reference_forward(sources["cfg"], sources["state"], enc, dec, n, 16)[3]["tok_rgb@32"]
    assert torch.equal(got, logits.argmax(-1))


def test_generate_cli_on_converted_bundle(bundle, tmp_path, capsys):
    out = tmp_path / "gen"
    args = ["--model", str(bundle), "--cond", "caption=a dog", "--target", "tok_rgb@32", "det",
            "--device", "cpu", "--out", str(out), "--no-progress", "--steps", "tok_rgb@32=4"]
    assert generate_main(args) == 0, capsys.readouterr().err
    assert (out / "sample_000" / "tok_rgb@32.png").is_file()
    info = json.loads((out / "sequences.json").read_text())
    assert info["targets"] == ["tok_rgb@32", "det"] and "det" in info["samples"][0]
    assert info["plan"]["targets"][0]["steps"] == 4 and info["plan"]["targets"][0]["guidance_scale"] == 2.0


def test_missing_tokenizer_fails_in_one_line(sources, tmp_path, capsys):
    """Converted without the tok_rgb@32 tokenizer: the bundle loads, token ids still work, raw
    values and decoding of tok_rgb@32 fail with one line naming the fix (a raw image is read as rgb@32
    patches, which need no tokenizer)."""
    out = convert(sources, tmp_path / "partial", names=("text",))
    assert json.loads((out / "modalities.json").read_text())["tok_rgb@32"]["tokenizer"] is None
    pipe = FourMPipeline.from_pretrained(out, device="cpu")
    assert isinstance(pipe.codecs["tok_rgb@32"], MissingTokenizerCodec)
    with pytest.raises(FourmError, match=r"modality 'tok_rgb@32' has no tokenizer in the bundle") as e:
        pipe.generate({"caption": "a dog"}, ["tok_rgb@32"], progress=False)
    assert "\n" not in str(e.value) and "--tokenizer tok_rgb@32=" in str(e.value)
    read = pipe.generate({"tok_rgb@32": _image()}, ["caption"], progress=False, decode=False)  # as rgb@32 patches
    assert read.conditions == ["rgb@32"]
    pipe.image_inputs = "both"  # its tokens too: they need the missing tokenizer
    with pytest.raises(FourmError, match="has no tokenizer"):
        pipe.generate({"tok_rgb@32": _image()}, ["caption"], progress=False)  # before generating
    pipe.image_inputs = "patches"
    tokens = pipe.generate({"caption": "a dog"}, ["tok_rgb@32"], progress=False, decode=False).tokens
    assert tokens["tok_rgb@32"].shape == (1, 16)
    caption = pipe.generate({"tok_rgb@32": tokens["tok_rgb@32"]}, ["caption"], progress=False, decode=False)
    assert caption.tokens["caption"].shape == (1, 12)
    code = generate_main(["--model", str(out), "--cond", "caption=a dog", "--target", "tok_rgb@32", "--device", "cpu",
                          "--out", str(tmp_path / "gen"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "has no tokenizer" in err


def test_encoder_only_tokenizer_encodes_but_gives_no_image(sources, tmp_path):
    out = convert(sources, tmp_path / "divae", names=("text",), **{"tok_rgb@32": sources["divae"]})
    pipe = FourMPipeline.from_pretrained(out, device="cpu")
    codec = pipe.codecs["tok_rgb@32"]
    assert isinstance(codec, Ml4mImageCodec) and not codec.can_decode
    assert pipe.tokenize("tok_rgb@32", [_image()]).shape == (1, 16)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = pipe.generate({"caption": "a dog"}, ["tok_rgb@32"], num_samples=2, progress=False)
    assert result.values["tok_rgb@32"] == [None, None] and result.tokens["tok_rgb@32"].shape == (2, 16)
    assert any("without a decoder" in str(w.message) for w in caught)


def test_pipeline_save_pretrained_round_trip(pipe, tmp_path):
    pipe.set_defaults("det", temperature=0.5)
    try:
        saved = pipe.save_pretrained(tmp_path / "saved")
    finally:
        pipe.generation_defaults["det"].pop("temperature")
        pipe.set_defaults("det", temperature=0.3)
    again = FourMPipeline.from_pretrained(saved, device="cpu")
    assert {n: type(c) for n, c in again.codecs.items()} == {n: type(c) for n, c in pipe.codecs.items()}
    assert again.default_target("det").temperature == 0.5 and again.default_target("tok_rgb@32").steps == 25
    ids = pipe.tokenize("det", [[{"box": [0.0, 0.0, 1.0, 1.0], "label": "dog"}]])
    assert torch.equal(again.tokenize("det", [[{"box": [0.0, 0.0, 1.0, 1.0], "label": "dog"}]]), ids)


def test_directory_of_the_earlier_layout_is_named(tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    (old / "config.json").write_text("{}")
    (old / "ml4m_modalities.json").write_text("{}")
    with pytest.raises(FourmError, match="earlier fourm-convert ml4m .* convert it again"):
        FourMPipeline.from_pretrained(old, device="cpu")


def test_fourm_bundle_on_a_converted_base(sources, tmp_path):
    """``fourm-bundle MODEL OUT --base <converted bundle>`` (e.g. after fine-tuning a converted model):
    ml-4m's names and tokenizers carry over, a modality the base has no tokenizer for stays ids-only."""
    from fourm.generation.assemble import assemble_bundle

    base = convert(sources, tmp_path / "base", names=("text", "tok_dinov2_global"))
    out = assemble_bundle(base / "model", tmp_path / "again", base=base, half=False)
    pipe = FourMPipeline.from_pretrained(out, device="cpu")
    assert isinstance(pipe.codecs["tok_dinov2_global"], Ml4mImageCodec)
    assert isinstance(pipe.codecs["tok_rgb@32"], MissingTokenizerCodec)
    assert isinstance(pipe.codecs["rgb@32"], PatchCodec) and isinstance(pipe.codecs["det"], Ml4mSequenceCodec)
    assert pipe.generate({"caption": "a dog"}, ["tok_dinov2_global"], progress=False).values["tok_dinov2_global"][0].shape == (12,)


def test_caption_prefix_is_continued(pipe):
    prefix = pipe.tokenize("caption", ["a dog"], prefix=True)[0].tolist()
    assert pipe.codecs["caption"].eos not in prefix and len(prefix) >= 2
    result = pipe.generate({"tok_rgb@32": _image()}, ["caption"], caption_prefix="a dog", progress=False)
    assert result.tokens["caption"][0, : len(prefix)].tolist() == prefix
    assert result.values["caption"][0].startswith("a dog")
