"""Pre-tokenization encodes with the codecs of :mod:`fourm.codecs` (issue 20): for every modality kind
(image tokenizers, sequences, vectors, patches, box maps) its training tokens are what the codec that
generation builds gives for the same raw values; and the two deliberate differences of the training
path (another image size refused, unknown metadata keys dropped)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fourm.codecs import BoxMapCodec, ImageCodec, PatchCodec, SequenceCodec, VectorCodec
from fourm.data.pretokenize import PretokenizeReport, build_encoders, encode_samples
from fourm.data.raw_dataset import RawSamples, load_raw_dataset, write_world_dataset
from fourm.data.world import WorldConfig
from fourm.errors import FourmError
from fourm.modalities import ModalityRegistry, default_registry
from fourm.resources import CONFIG_ROOT
from fourm.testing.tokenizers import toy_tokenizer
from tokenizers_zoo.text import TextTokenizer, corpus_from_samples
from tokenizers_zoo.vector import VectorTokenizer, VectorTokenizerConfig

IMAGES = ("rgb", "depth", "semseg", "edges")
SEQUENCES = ("caption", "bboxes", "metadata", "color_palette")
EXTRA = CONFIG_ROOT / "modalities" / "extra"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretok_codecs")
    raw = write_world_dataset(root / "raw", 8, size=32, seed=3, val_fraction=0.25, config=WorldConfig(size=32),
                              num_workers=0)  # fmt: skip
    samples = [dict(RawSamples(load_raw_dataset(raw)["train"])[i]) for i in range(6)]
    g = np.random.default_rng(0)
    for i, s in enumerate(samples):  # a vector column, one value missing
        s["caption_embedding"] = None if i == 2 else g.standard_normal(32).astype(np.float32).tolist()
    base = default_registry()
    entries, toks = {}, {}
    for name in IMAGES:
        tok = toy_tokenizer(name, image_size=32)
        tok.save_pretrained(root / f"tok_{name}")
        toks[name] = tok
        entries[name] = {**base[name].to_dict(), "tokenizer": f"tok_{name}", "num_tokens": tok.num_tokens,
                         "vocab_size": tok.vocab_size, "image_size": 32}  # fmt: skip
    text = TextTokenizer.train(corpus_from_samples(samples), vocab_size=600)
    text.save_pretrained(root / "tok_text")
    for name in SEQUENCES:
        entries[name] = {**base[name].to_dict(), "tokenizer": "tok_text"}
    torch.manual_seed(0)
    vec = VectorTokenizer(VectorTokenizerConfig(input_dim=32, hidden_dim=48, num_layers=1, num_tokens=4,
                                                codebook_size=16, code_dim=8))  # fmt: skip
    vec.save_pretrained(root / "tok_vec")
    entries["caption_embedding"] = {"kind": "vector", "tokenizer": "tok_vec", "vocab_size": vec.vocab_size,
                                    "num_tokens": vec.num_tokens}  # fmt: skip
    extra = ModalityRegistry.from_files([EXTRA / "rgb_pixels.yaml", EXTRA / "box_map.yaml"])
    entries["rgb_pixels"] = {**extra["rgb_pixels"].to_dict(), "image_size": 32, "num_tokens": 16}
    entries["box_map"] = extra["box_map"].to_dict()
    registry = ModalityRegistry.from_dict(entries)
    return root, registry, samples, toks, text


def _generation_codecs(root, registry, toks, text, precision):
    """The codecs as the bundle builds them (:func:`fourm.generation.bundle.load_codecs`)."""
    codecs = {name: ImageCodec(name, toks[name].eval(), autocast=precision != "fp32") for name in IMAGES}
    codecs.update({name: SequenceCodec(name, text, registry[name].length) for name in SEQUENCES})
    vec = VectorTokenizer.from_pretrained(root / "tok_vec")
    codecs["caption_embedding"] = VectorCodec("caption_embedding", vec)
    codecs["rgb_pixels"] = PatchCodec("rgb_pixels", registry["rgb_pixels"])
    codecs["box_map"] = BoxMapCodec("box_map", registry["box_map"])
    return codecs


@pytest.mark.parametrize("precision", ["fp32", "auto"])
def test_pretokenized_tokens_are_the_codecs_tokens(setup, precision):
    root, registry, samples, toks, text = setup
    names = [*IMAGES, *SEQUENCES, "caption_embedding", "rgb_pixels", "box_map"]
    report = PretokenizeReport()
    encoders, _ = build_encoders(registry, names, root, report=report, precision=precision)
    n = len(samples)
    _, columns = encode_samples(samples, 0, n, encoders, registry, batch_size=n, report=report)
    assert report.missing["caption_embedding"] == 1
    for name, codec in _generation_codecs(root, registry, toks, text, precision).items():
        key = registry[name].data_key or name
        present = [i for i, s in enumerate(samples) if s.get(key) is not None]
        want = codec.encode([samples[i][key] for i in present]).reshape(len(present), -1).tolist()
        got = columns[name]
        assert [i for i, row in enumerate(got) if row is not None] == present, name
        for row, i in zip(want, present):
            if codec.kind == "sequence":  # stored without the [PAD]s, ending in [EOS]
                assert got[i] == row[: len(got[i])] and got[i][-1] == text.eos_id, name
                assert set(row[len(got[i]) :]) <= {text.pad_id}, name
            else:
                assert got[i] == row, name
    assert report.truncated.get("caption", 0) == 0


def test_training_path_refuses_another_image_size_generation_resizes(setup):
    root, registry, samples, toks, _ = setup
    encoders, _ = build_encoders(registry, ["rgb", "rgb_pixels"], root, precision="fp32")
    big = np.zeros((48, 48, 3), dtype=np.uint8)
    for name in ("rgb", "rgb_pixels"):
        with pytest.raises(FourmError, match=rf"modality '{name}': expected an image of shape \(32, 32, 3\)"):
            encoders[name]([big])
    assert ImageCodec("rgb", toks["rgb"]).encode([big]).shape == (1, toks["rgb"].num_tokens)
    assert PatchCodec("rgb_pixels", registry["rgb_pixels"]).encode([big]).shape == (1, 16, 192)


def test_training_path_drops_unknown_metadata_keys_generation_refuses_them(setup):
    root, registry, samples, _, text = setup
    encoders, _ = build_encoders(registry, ["metadata"], root)
    meta = dict(samples[0]["metadata"])
    with_unknown = {**meta, "no_such_key": 1}
    assert encoders["metadata"]([with_unknown]) == encoders["metadata"]([meta])
    with pytest.raises(FourmError, match="unknown metadata key 'no_such_key'"):
        SequenceCodec("metadata", text, registry["metadata"].length).encode([with_unknown])
