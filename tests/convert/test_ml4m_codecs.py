"""The generation codecs of converted ml-4m tokenizers: ``Ml4mSequenceCodec`` (ml-4m's text ids,
serialisation and [EOS] handling, back to values) and ``Ml4mImageCodec`` (ml-4m's input conventions
per modality, decoded values), plus registry entries under ml-4m's names."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ml4m_bundle_fixtures import tiny_vit
from ml4m_text_reference import build_wordpiece
from ml4m_vqvae_reference import CASES, random_state, write_checkpoint
from PIL import Image

from fourm.codecs import Ml4mImageCodec, Ml4mSequenceCodec
from fourm.convert.ml4m_text import Ml4mTextTokenizer
from fourm.convert.ml4m_vqvae import load_ml4m_vqvae
from fourm.errors import FourmError
from fourm.generation.bundle import modality_spec, registry_from_dict

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


@pytest.fixture(scope="module")
def text(tmp_path_factory) -> Ml4mTextTokenizer:
    """The released layout at full size: 200 sentinels, 1000 value bins, class names."""
    return Ml4mTextTokenizer.load(build_wordpiece(tmp_path_factory.mktemp("text") / "tokenizer.json"))


def _codec(text, name, length=40):
    return Ml4mSequenceCodec(name, text, length)


# ------------------------------------------------------------------------------------ sequences
def test_caption_ids_are_ml4ms_and_round_trip(text):
    codec = _codec(text, "caption", 16)
    ids = codec.encode(["A photo of a dog on the sofa.", "two cats"])
    assert ids.shape == (2, 16)
    for row, value in zip(ids.tolist(), ["A photo of a dog on the sofa.", "two cats"]):
        want = text.sequence_ids("caption", value)
        assert row == want + [0] * (16 - len(want)) and want[-1] == text.eos_id
    assert codec.decode(ids) == ["a photo of a dog on the sofa.", "two cats"]
    assert (codec.sos, codec.eos, codec.pad) == (text.sentinel_id(1), text.eos_id, text.pad_id)
    prefix = codec.encode(["two cats"], prefix=True)  # no [EOS], only the used columns
    assert prefix.tolist() == [text.text_ids("two cats")]
    long = codec.encode(["a dog " * 20])  # cut to the model's length: [EOS] dropped, as in ml-4m
    assert long.shape == (1, 16) and text.eos_id not in long[0].tolist()


def test_boxes_round_trip_from_values_and_strings(text):
    codec = _codec(text, "det")
    boxes = [{"box": [0.5, 0.5, 0.9, 0.9], "label": "cat"}, {"box": [0.1, 0.2, 0.4, 0.8], "label": "dog"}]
    ids = codec.encode([boxes])
    assert ids[0].tolist()[: len(text.sequence_ids("det", boxes))] == text.sequence_ids("det", boxes)
    # fourm's box string and ml-4m's serialised text give the same ids
    assert torch.equal(codec.encode(["cat 0.5 0.5 0.9 0.9; dog 0.1 0.2 0.4 0.8"]), ids)
    serialised = text.to_text("det", boxes)
    assert serialised.startswith("v0=100 v1=200 v2=400 v3=799 dog")  # nearest the origin first
    assert torch.equal(codec.encode([serialised]), ids)
    (decoded,), (failed,) = codec.decode_with_failures(ids)
    assert [b["label"] for b in decoded] == ["dog", "cat"] and failed == []
    assert decoded[0]["box"] == pytest.approx([0.1, 0.2, 0.4, 0.8], abs=1 / 999)


def test_sentinels_and_malformed_groups_when_decoding(text):
    codec = _codec(text, "det")
    good = text.sequence_ids("det", [{"box": [0.1, 0.2, 0.4, 0.8], "label": "dog"}])
    bad = text.text_ids("v0=5 v1=7 dog")
    row = [text.sentinel_id(1)] + bad + good  # a sentinel (no content), a box lacking v2 / v3, a good box
    (values,), (failed,) = codec.decode_with_failures(torch.tensor([row]))
    assert [b["label"] for b in values] == ["dog"]
    assert failed and failed[0]["text"].startswith("v0=5 v1=7 dog") and "v2" in failed[0]["error"]
    assert codec.decode(torch.tensor([row])) == [values]


def test_palette_and_metadata_round_trip(text):
    palette = _codec(text, "color_palette", 23)
    ids = palette.encode(["255 0 0; 0 0 255"])
    assert ids[0, : ids[0].tolist().index(text.eos_id) + 1].tolist() == text.sequence_ids(
        "color_palette", [(255, 0, 0), (0, 0, 255)])
    assert palette.decode(ids) == [[(255, 0, 0), (0, 0, 255)]]
    meta = _codec(text, "metadata", 40)
    ids = meta.encode(["brightness=100.3, n_humans=2, original_width=640"])
    assert torch.equal(ids, meta.encode([{"brightness": 100.3, "n_humans": 2, "original_width": 640}]))
    (value,) = meta.decode(ids)
    assert value["n_humans"] == 2 and value["original_width"] == 640 and abs(value["brightness"] - 100.3) < 255 / 49
    assert torch.equal(meta.encode([value]), ids)  # decoded values re-serialise to the same ids


def test_sequence_value_errors_are_one_line(text):
    det, meta = _codec(text, "det"), _codec(text, "metadata")
    for codec, value, message in ((det, "dog 0.1 0.2", "malformed box"), (meta, {"colour": 3}, "unknown metadata key"),
                                  (det, [{"box": [0.1, 0.2, 1.5, 0.8], "label": "dog"}], "in \\[0, 1\\]")):
        with pytest.raises(FourmError, match=message) as e:
            codec.encode([value])
        assert "\n" not in str(e.value)
    with pytest.raises(FourmError, match="not an ml-4m sequence modality"):
        Ml4mSequenceCodec("bboxes", text, 10)


# ------------------------------------------------------------------------------------ images
def _tokenizer(tmp_path, name, **changes):
    cfg = {**CASES[name], **changes}
    src = write_checkpoint(tmp_path / name, cfg, random_state(cfg, seed=5))
    with tiny_vit():
        tok, _ = load_ml4m_vqvae(src, image_size=32 if name != "features" else 64)
    return tok


def test_rgb_pixels_follow_ml4ms_normalisation(tmp_path):
    """The pixel tokenizer with undo_std reads ImageNet-standardised pixels; decoded: uint8 images."""
    tok = _tokenizer(tmp_path, "pixels")
    codec = Ml4mImageCodec("tok_rgb@32", tok)
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    want = tok.encode(torch.from_numpy(((image / 255.0 - MEAN) / STD).astype(np.float32)).permute(2, 0, 1)[None])
    ids = codec.encode([image, Image.fromarray(image)])
    assert torch.equal(ids, want.expand(2, -1))
    (decoded, _) = codec.decode(ids)
    assert decoded.shape == (32, 32, 3) and decoded.dtype == np.uint8
    # without undo_std the tokenizer reads [-1, 1] pixels
    plain = _tokenizer(tmp_path, "pixels", undo_std=False)
    want = plain.encode(torch.from_numpy((image / 127.5 - 1.0).astype(np.float32)).permute(2, 0, 1)[None])
    assert torch.equal(Ml4mImageCodec("tok_rgb@32", plain).encode([image]), want)


def test_depth_is_standardised_over_its_middle_values(tmp_path):
    tok = _tokenizer(tmp_path, "pixels", n_channels=1, undo_std=False, out_conv=False)
    codec = Ml4mImageCodec("tok_depth@32", tok)
    depth = np.random.default_rng(1).random((32, 32)).astype(np.float32)
    middle = np.sort(depth.reshape(-1))[102:921]  # the 10th to 90th percentile of 1024 values
    x = (depth - middle.mean()) / np.sqrt(middle.var(ddof=1) + 1e-6)
    assert torch.equal(codec.encode([depth]), tok.encode(torch.from_numpy(x.astype(np.float32))[None, None]))
    (decoded,) = codec.decode(codec.encode([depth]))
    assert decoded.shape == (32, 32) and 0.0 <= decoded.min() and decoded.max() <= 1.0


def test_semseg_features_and_vectors(tmp_path):
    seg = Ml4mImageCodec("tok_semseg@32", _tokenizer(tmp_path, "semseg"))
    labels = np.random.default_rng(2).integers(0, 7, (32, 32))
    ids = seg.encode([labels])
    assert torch.equal(ids, seg.tokenizer.encode(torch.from_numpy(labels)[None]))
    (classes,) = seg.decode(ids)
    assert classes.shape == (32, 32) and classes.dtype == np.uint8
    assert torch.equal(torch.from_numpy(classes.astype(np.int64))[None], seg.tokenizer.decode(ids))

    clip = Ml4mImageCodec("tok_clip@64", _tokenizer(tmp_path, "features"))
    features = np.random.default_rng(3).standard_normal(clip.feature_shape).astype(np.float32)
    np.save(tmp_path / "f.npy", features)
    ids = clip.encode([features, str(tmp_path / "f.npy")])
    assert torch.equal(ids[0], clip.tokenizer.encode(torch.from_numpy(features)[None])[0]) and torch.equal(ids[0], ids[1])
    picture = clip.decode(ids)[0]
    assert picture.shape == (4, 4, 3) and picture.dtype == np.uint8  # principal components as colours
    assert clip.decode_raw(ids).shape == (2, 10, 4, 4)
    with pytest.raises(FourmError, match="does not compute from an image") as e:
        clip.encode([Image.fromarray(np.zeros((8, 8, 3), np.uint8))])
    assert "\n" not in str(e.value)
    with pytest.raises(FourmError, match=r"shape \(10, 4, 4\)"):
        clip.encode([features[:, :2]])

    glob = Ml4mImageCodec("tok_dinov2_global", _tokenizer(tmp_path, "global"))
    vector = np.random.default_rng(4).standard_normal(12).astype(np.float32)
    ids = glob.encode([vector])
    assert ids.shape == (1, 4) and torch.equal(ids, glob.tokenizer.encode(torch.from_numpy(vector)[None]))
    assert glob.decode(ids)[0].shape == (12,)


def test_registry_accepts_ml4m_names():
    spec = modality_spec("tok_semseg@224", {"kind": "image", "vocab_size": 4096, "num_tokens": 196, "tokenizer": None})
    assert spec.name == "tok_semseg@224" and spec.data_key == "tok_semseg@224"
    registry = registry_from_dict({"rgb@224": {"kind": "image", "vocab_size": 256, "num_tokens": 196, "patch_size": 16,
                                               "channels": 3, "image_size": 224, "input": True, "target": False,
                                               "data_key": "rgb"},
                                   "caption": {"kind": "sequence", "vocab_size": 30000, "max_length": 256}})
    assert registry.names == ["caption", "rgb@224"] and registry["rgb@224"].patch_dim == 768
    assert registry_from_dict(registry.to_dict()).to_dict() == registry.to_dict()
    with pytest.raises(FourmError, match="num_tokens"):  # still checked under the '@'-free spelling
        modality_spec("tok_rgb@224", {"kind": "image", "vocab_size": 10, "num_tokens": 7})
    with pytest.raises(FourmError, match="lower-case"):
        modality_spec("Tok@224", {"kind": "image", "vocab_size": 10, "num_tokens": 4})
