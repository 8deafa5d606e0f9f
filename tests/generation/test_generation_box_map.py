"""Box maps in generation: drawn from given boxes, drawn from generated boxes before the later
targets of a chain, saved and reloaded with a bundle."""

from __future__ import annotations

import pytest
import torch

from fourm.codecs import BoxMapCodec
from fourm.codecs.box_map import render_box_map
from fourm.errors import FourmError
from fourm.generation.pipeline import FourMPipeline
from fourm.modalities import ModalityRegistry, ModalitySpec
from fourm.testing.bundles import toy_model, toy_pipeline

LABELS = ["red circle", "blue square", "green triangle"]
BOXES = [{"label": "small red circle", "box": [0.1, 0.1, 0.3, 0.3]}, {"label": "large blue square", "box": [0.5, 0.4, 1.0, 0.9]}]


@pytest.fixture(scope="module")
def pipe() -> FourMPipeline:
    base = toy_pipeline(modalities=("rgb", "caption", "bboxes"))
    spec = ModalitySpec(
        name="box_map", kind="image", vocab_size=len(LABELS) + 2, num_tokens=16, input=True, target=False,
        data_key="bboxes", box_labels=list(LABELS),
    )  # fmt: skip
    spec.validate()
    registry = ModalityRegistry([*base.registry.values(), spec])
    model = toy_model(registry, seed=0)
    with torch.no_grad():
        model.output_weight.mul_(20.0)
    pipe = FourMPipeline(model, {**base.codecs, "box_map": BoxMapCodec("box_map", spec)}, registry)
    pipe.precision = "fp32"
    return pipe


def encoder_modalities(pipe, monkeypatch) -> list[set[int]]:
    """Record, per model.encode call, the modality indices of the valid encoder tokens."""
    calls: list[set[int]] = []
    original = pipe.model.encode

    def spy(tokens, modality, position, valid, *args, **kwargs):
        calls.append(set(modality[valid].tolist()))
        return original(tokens, modality, position, valid, *args, **kwargs)

    monkeypatch.setattr(pipe.model, "encode", spy)
    return calls


def test_given_boxes_are_also_read_as_their_map(pipe):
    out = pipe.generate({"caption": "a red circle", "bboxes": BOXES}, ["rgb"], num_samples=2, progress=False)
    expected = torch.as_tensor(render_box_map(BOXES, 4, LABELS).reshape(-1))
    assert "box_map" in out.tokens and torch.equal(out.tokens["box_map"][1], expected)


def test_generated_boxes_are_drawn_before_the_next_target(pipe, monkeypatch):
    index = list(pipe.model.config.modalities).index("box_map")
    calls = encoder_modalities(pipe, monkeypatch)
    out = pipe.generate({"caption": "a red circle"}, ["bboxes", "rgb"], num_samples=3, seed=1, progress=False)
    first_rgb = next(i for i, c in enumerate(calls) if index in c)
    assert all(index not in c for c in calls[:first_rgb]) and first_rgb > 0  # not while the boxes are sampled
    derive = pipe.derived_inputs(["bboxes", "rgb"], {})
    maps = derive["bboxes"](out.tokens["bboxes"])["box_map"]
    for row, boxes in zip(maps, out.values["bboxes"]):
        assert row.tolist() == render_box_map(boxes, 4, LABELS).reshape(-1).tolist()


def test_no_derivation_when_the_map_is_given_or_not_downstream(pipe):
    assert pipe.derived_inputs(["bboxes", "rgb"], {"box_map": object()}) == {}
    assert pipe.derived_inputs(["rgb"], {}) == {}


def test_box_map_cannot_be_a_target_and_bad_boxes_fail_in_one_line(pipe):
    with pytest.raises(FourmError, match="box_map"):
        pipe.generate({"caption": "x"}, ["box_map"], progress=False)
    with pytest.raises(FourmError, match="'box_map': box 0 has non-numeric"):  # import's check and words
        pipe.codecs["box_map"].encode([[{"label": "a", "box": [0, 0, "x", 1]}]])
    with pytest.raises(FourmError, match="'box_map': box 0 must be"):
        pipe.codecs["box_map"].encode([[{"box": [0, 0, 1, 1]}]])


def test_bundle_round_trip_keeps_the_box_map(pipe, tmp_path):
    path = pipe.save_pretrained(tmp_path / "bundle")
    again = FourMPipeline.from_pretrained(path)
    assert isinstance(again.codecs["box_map"], BoxMapCodec) and again.codecs["box_map"].labels == LABELS
    a = pipe.tokenize("box_map", [BOXES])
    assert torch.equal(a, again.tokenize("box_map", [BOXES]))
