"""rgb_dynamic (configs/modalities/extra/rgb_dynamic.yaml) as a FourM target: [pos][code] pairs
generated autoregressively under their grammar, decoded to images; as a condition; generate.py output."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from fourm.cli.generate import main as generate_main
from fourm.codecs import DynamicImageCodec, SequenceCodec
from fourm.errors import FourmError
from fourm.generation.pipeline import FourMPipeline
from fourm.modalities import ModalityRegistry, ModalitySpec, default_registry
from fourm.resources import CONFIG_ROOT
from fourm.testing.bundles import assert_decoded_and_seeded, toy_model, toy_text_tokenizer
from fourm.utils.config import read_mapping
from tests.codecs.test_codecs_dynamic import LENGTH, SIZE, VOCAB, images, toy_dynamic_tokenizer

RESERVED, POSITIONS = 37, (SIZE // 8) ** 2


def dynamic_spec() -> ModalitySpec:
    """The shipped rgb_dynamic.yaml at the toy tokenizer's sizes."""
    spec = read_mapping(CONFIG_ROOT / "modalities" / "extra" / "rgb_dynamic.yaml")
    return ModalitySpec.from_dict({**spec, "vocab_size": VOCAB, "max_length": LENGTH})


def make_pipe(with_caption: bool = True, seed: int = 0) -> FourMPipeline:
    tok = toy_dynamic_tokenizer()
    specs, codecs = [dynamic_spec()], {"rgb_dynamic": DynamicImageCodec("rgb_dynamic", tok, precision="fp32")}
    if with_caption:
        text = toy_text_tokenizer()
        caption = {**default_registry()["caption"].to_dict(), "max_length": 16, "vocab_size": text.vocab_size}
        specs.insert(0, ModalitySpec.from_dict(caption))
        codecs["caption"] = SequenceCodec("caption", text, 16)
    registry = ModalityRegistry(specs)
    model = toy_model(registry, seed=seed)
    with torch.no_grad():  # peaked, seed-sensitive token distributions
        model.output_weight.mul_(20.0)
    pipe = FourMPipeline(model, codecs, registry)
    pipe.precision = "fp32"
    return pipe


@pytest.fixture(scope="module")
def pipe() -> FourMPipeline:
    return make_pipe()


def well_formed(row: list[int]) -> bool:
    """[pos][code] pairs (at least one) with increasing positions, then [EOS], then [PAD]s."""
    if 2 not in row:
        return False
    n = row.index(2)
    body, rest = row[:n], row[n + 1 :]
    pos, codes = body[0::2], body[1::2]
    return (
        n >= 2 and n % 2 == 0 and set(rest) <= {0}
        and all(RESERVED <= p < RESERVED + POSITIONS for p in pos) and pos == sorted(set(pos))
        and all(RESERVED + POSITIONS <= c < VOCAB for c in codes)
    )  # fmt: skip


def test_caption_to_rgb_dynamic(pipe):
    result = pipe.generate({"caption": "a red circle"}, ["rgb_dynamic"], num_samples=3, progress=False)
    assert result.plan.targets[0].scheme == "ar"
    ids = result.tokens["rgb_dynamic"]
    assert ids.shape == (3, LENGTH) and all(well_formed(row) for row in ids.tolist())
    pictures = result.values["rgb_dynamic"]
    assert len(pictures) == 3 and pictures[0].shape == (SIZE, SIZE, 3) and pictures[0].dtype == np.uint8
    assert_decoded_and_seeded(pipe, {"caption": "a red circle"}, "rgb_dynamic", result, num_samples=3)


def test_without_grammar_rows_still_decode(pipe):
    target = pipe.default_target("rgb_dynamic", grammar=False)
    result = pipe.generate({"caption": "a red circle"}, [target], num_samples=2, progress=False)
    ids = result.tokens["rgb_dynamic"]
    assert int(ids.min()) >= 0 and int(ids.max()) < VOCAB
    assert all(v.shape == (SIZE, SIZE, 3) for v in result.values["rgb_dynamic"])


def test_a_model_without_text_takes_the_specials_from_the_codec():
    solo = make_pipe(with_caption=False)
    plan = solo.plan(["rgb_dynamic"])
    assert (
        (plan.sos, plan.eos, plan.pad) == (1, 2, 0)
        and 2 not in plan.banned
        and {0, 1, 4, 36} <= set(plan.banned)
    )
    result = solo.generate({}, ["rgb_dynamic"], num_samples=2, progress=False)
    assert all(well_formed(row) for row in result.tokens["rgb_dynamic"].tolist())
    assert result.values["rgb_dynamic"][1].shape == (SIZE, SIZE, 3)


def test_given_token_prefix_is_continued(pipe):
    codec = pipe.codecs["rgb_dynamic"]
    first_pair = codec.encode([images(1)[0]])[:, :2]  # one [pos][code] pair, no [EOS]
    result = pipe.generate({"caption": "a red circle"}, ["rgb_dynamic"], num_samples=2,
                           partial={"rgb_dynamic": first_pair}, progress=False)  # fmt: skip
    ids = result.tokens["rgb_dynamic"]
    assert torch.equal(ids[:, :2], first_pair.expand(2, 2)) and all(well_formed(r) for r in ids.tolist())
    with pytest.raises(FourmError) as err:
        pipe.generate(
            {"caption": "a"}, ["rgb_dynamic"], partial={"rgb_dynamic": images(1)[0]}, progress=False
        )
    assert "given as token ids" in str(err.value) and "\n" not in str(err.value)


def test_rgb_dynamic_as_a_condition(pipe):
    image = images(1)[0]
    result = pipe.generate({"rgb_dynamic": image}, ["caption"], num_samples=2, progress=False)
    codec = pipe.codecs["rgb_dynamic"]
    want = codec.encode([image])[0]
    n = int((want == codec.eos).nonzero()[0]) + 1
    cond = result.tokens["rgb_dynamic"]
    assert cond.shape == (2, n) and torch.equal(cond[0], want[:n])  # the condition's ids up to [EOS]
    assert isinstance(result.values["caption"][0], str)
    with pytest.raises(FourmError) as err:
        pipe.generate({"rgb_dynamic": np.zeros((SIZE, SIZE), np.float32) + 2.0}, ["caption"], progress=False)
    assert "\n" not in str(err.value)


def test_bundle_round_trip_and_generate_cli_writes_pictures(pipe, tmp_path):
    bundle = pipe.save_pretrained(tmp_path / "bundle")
    loaded = FourMPipeline.from_pretrained(bundle, device="cpu")
    assert isinstance(loaded.codecs["rgb_dynamic"], DynamicImageCodec)
    loaded.precision = "fp32"
    a = loaded.generate({"caption": "a red circle"}, ["rgb_dynamic"], num_samples=2, progress=False)
    b = pipe.generate({"caption": "a red circle"}, ["rgb_dynamic"], num_samples=2, progress=False)
    assert torch.equal(a.tokens["rgb_dynamic"], b.tokens["rgb_dynamic"])
    out = tmp_path / "out"
    rc = generate_main(["--model", str(bundle), "--cond", "caption=a red circle", "--target", "rgb_dynamic",
                        "--num-samples", "2", "--out", str(out), "--no-progress", "--precision", "fp32"])  # fmt: skip
    assert rc == 0
    for i in range(2):
        picture = np.asarray(Image.open(out / f"sample_{i:03d}" / "rgb_dynamic.png"))
        assert picture.shape == (SIZE, SIZE, 3) and picture.dtype == np.uint8
    info = json.loads((out / "sequences.json").read_text())
    assert all("rgb_dynamic" not in s for s in info["samples"])  # a picture, not JSON numbers
    assert (out / "overview.png").is_file()


def test_bundle_with_a_grid_tokenizer_fails_in_one_line(pipe, tmp_path):
    from fourm.testing.tokenizers import toy_tokenizer

    bundle = pipe.save_pretrained(tmp_path / "bundle")
    registry = json.loads((bundle / "modalities.json").read_text())
    path = bundle / next(m["tokenizer"] for m in _entries(registry) if m["name"] == "rgb_dynamic")
    toy_tokenizer("rgb", image_size=SIZE).save_pretrained(path)  # a grid tokenizer in its place
    with pytest.raises(FourmError) as err:
        FourMPipeline.from_pretrained(bundle, device="cpu")
    assert "expected a dynamic image tokenizer (architecture 'dynamic'), got 'conv'" in str(err.value)
    assert "\n" not in str(err.value)


def _entries(registry) -> list[dict]:
    """The modality entries of a modalities.json (a list, or a mapping name -> entry)."""
    items = registry.get("modalities", registry) if isinstance(registry, dict) else registry
    if isinstance(items, dict):
        return [{"name": k, **v} for k, v in items.items()]
    return list(items)


def test_grammar_states(pipe):
    grammar = pipe.grammar("rgb_dynamic")
    vocab = pipe.model.config.modalities["rgb_dynamic"].vocab_size
    pos, code, eos = RESERVED, RESERVED + POSITIONS, 2
    grammar.start(torch.tensor([[pos + 3, code + 5]]), LENGTH)  # a given pair at position 3
    allowed = grammar.allowed(2)[0]
    assert allowed.shape == (vocab,) and bool(allowed[eos]) and not bool(allowed[pos + 3])
    assert bool(allowed[pos + 4]) and not bool(allowed[code])
    assert allowed[:RESERVED].nonzero().flatten().tolist() == [eos]
    grammar.advance(torch.tensor([pos + 4]))
    assert grammar.allowed(3)[0].nonzero().flatten().tolist() == list(range(code, VOCAB))  # its [code] only
    grammar.start(torch.zeros(1, 0, dtype=torch.long), LENGTH)
    assert not bool(grammar.allowed(0)[0, eos])  # at least one pair
    assert grammar.allowed(LENGTH - 2)[0].nonzero().flatten().tolist() == [eos]  # no room for another pair
