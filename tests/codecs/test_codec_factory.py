"""fourm.codecs.factory: one dispatch from a registry entry + tokenizer directory to its codec, with the
options of pre-tokenization and bundles, and tokenizers shared per directory."""

from __future__ import annotations

import numpy as np
import pytest

from fourm.codecs import BoxMapCodec, ImageCodec, ImageLevelCodec, PatchCodec, SequenceCodec, VectorCodec
from fourm.codecs.factory import CodecFactory, tokenizer_format
from fourm.errors import FourmError
from fourm.modalities import ModalitySpec
from fourm.testing.bundles import toy_text_tokenizer
from fourm.testing.retrieval import toy_vector_tokenizer
from fourm.testing.tokenizers import toy_tokenizer

SIZE = 32


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("toks")
    toy_tokenizer("rgb", image_size=SIZE).save_pretrained(root / "rgb")
    toy_tokenizer("rgb_vqvae2", image_size=SIZE).save_pretrained(root / "levels")
    toy_text_tokenizer(num_samples=8).save_pretrained(root / "text")
    toy_vector_tokenizer().save_pretrained(root / "vec")
    return root


def spec(name, kind, **fields) -> ModalitySpec:
    return ModalitySpec.from_dict({"name": name, "kind": kind, **fields})


def image_spec(name="rgb", **fields):
    return spec(name, "image", **{"vocab_size": 64, "num_tokens": 16, "image_size": SIZE, "channels": 3, **fields})


def test_each_directory_gets_its_codec(dirs):
    f = CodecFactory()
    assert type(f.codec(image_spec(), dirs / "rgb", 16)) is ImageCodec
    caption = f.codec(spec("caption", "sequence", vocab_size=1024, max_length=12), dirs / "text", 12)
    assert type(caption) is SequenceCodec and caption.length == 12
    assert type(f.codec(spec("vec", "vector", vocab_size=32, num_tokens=4), dirs / "vec", 4)) is VectorCodec
    level = f.codec(image_spec("rgb_top", token_level="top", num_tokens=4), dirs / "levels", 4)
    assert type(level) is ImageLevelCodec and level.length == 4


def test_tokenizer_free_modalities_need_no_directory():
    f = CodecFactory()
    pixels = spec("rgb_pixels", "image", vocab_size=256, num_tokens=16, patch_size=8, channels=3, image_size=SIZE,
                  data_key="rgb", input=True, target=False)  # fmt: skip
    assert not pixels.needs_tokenizer and type(f.codec(pixels, None, 16)) is PatchCodec
    with pytest.raises(FourmError, match="modality 'rgb' needs a tokenizer directory"):
        f.codec(image_spec(), None, 16)
    boxes = ModalitySpec.from_dict(
        {"name": "box_map", "kind": "image", "vocab_size": 4, "num_tokens": 64, "data_key": "bboxes",
         "box_labels": ["red circle", "blue square"], "input": True, "target": False}
    )  # fmt: skip
    assert type(f.codec(boxes, None, 64)) is BoxMapCodec


def test_one_tokenizer_per_directory(dirs):
    f = CodecFactory()
    caption = f.codec(spec("caption", "sequence", vocab_size=1024, max_length=12), dirs / "text", 12)
    bboxes = f.codec(spec("bboxes", "sequence", vocab_size=1024, max_length=20), dirs / "text", 20)
    assert caption.tokenizer is bboxes.tokenizer  # one shared vocabulary
    top = f.codec(image_spec("rgb_top", token_level="top", num_tokens=4), dirs / "levels", 4)
    bottom = f.codec(image_spec("rgb_bottom", token_level="bottom"), dirs / "levels", 16)
    assert top.tokenizer is bottom.tokenizer and top.cache is bottom.cache  # one encode per batch
    assert CodecFactory().codec(image_spec(), dirs / "rgb", 16).tokenizer is not f.codec(image_spec(), dirs / "rgb", 16).tokenizer


def test_options_reach_the_codecs(dirs):
    f = CodecFactory(precision="fp32", resize=False, strict_text=False)
    image = f.codec(image_spec(), dirs / "rgb", 16)
    assert (image.precision, image.resize) == ("fp32", False)
    assert f.codec(spec("metadata", "sequence", vocab_size=1024, max_length=12), dirs / "text", 12).strict is False
    with pytest.raises(FourmError):  # resize off: another size is refused
        image.encode([np.zeros((SIZE * 2, SIZE * 2, 3), dtype=np.uint8)])
    assert CodecFactory().codec(image_spec(), dirs / "rgb", 16).encode([np.zeros((SIZE * 2, SIZE * 2, 3), np.uint8)]).shape == (1, 16)


def test_tokenizer_format(tmp_path):
    assert tokenizer_format(tmp_path) is None  # no config.json
    (tmp_path / "config.json").write_text('{"format": "ml4m-vqvae"}')
    assert tokenizer_format(tmp_path) == "ml4m-vqvae"
    (tmp_path / "config.json").write_text("not json")
    assert tokenizer_format(tmp_path) is None
