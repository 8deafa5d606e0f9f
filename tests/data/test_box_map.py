"""Box maps: boxes drawn on the token grid (fourm.codecs.box_map), their registry rules, their
pre-tokenization and their role in the masker."""

from __future__ import annotations

import numpy as np
import pytest

from fourm.codecs.box_map import MIN_COVER, label_id, render_box_map
from fourm.data.masking import SequenceSpecialTokens
from fourm.errors import FourmError
from fourm.modalities import ModalityRegistry, ModalitySpec
from fourm.resources import CONFIG_ROOT

LABELS = ["red circle", "blue square", "circle"]


def reference_map(boxes, grid: int, labels, res: int = 64) -> np.ndarray:
    """Brute force: each cell sampled at res x res points; a box claims a cell it covers >= MIN_COVER,
    the most covering (later on ties) wins; boxes claiming nothing take their centre cell."""
    out = np.zeros((grid, grid), dtype=np.int64)
    best = np.zeros((grid, grid))
    late = []
    for b in boxes:
        x0, y0, x1, y1 = np.clip(b["box"], 0, 1)
        claimed = False
        for r in range(grid):
            for c in range(grid):
                ys = (r + (np.arange(res) + 0.5) / res) / grid
                xs = (c + (np.arange(res) + 0.5) / res) / grid
                inside = ((ys >= y0) & (ys < y1))[:, None] & ((xs >= x0) & (xs < x1))[None, :]
                cover = inside.mean()
                if cover >= MIN_COVER - 1e-9 and cover >= best[r, c] - 1e-9:
                    out[r, c], best[r, c], claimed = label_id(b["label"], labels), cover, True
        if not claimed:
            late.append((min(int((y0 + y1) / 2 * grid), grid - 1), min(int((x0 + x1) / 2 * grid), grid - 1), b["label"]))
    for r, c, label in late:
        out[r, c] = label_id(label, labels)
    return out


def test_label_id_matches_the_longest_suffix():
    assert label_id("small red circle", LABELS) == 1
    assert label_id("large blue square", LABELS) == 2
    assert label_id("small green circle", LABELS) == 3  # only "circle" ends it
    assert label_id("large green star", LABELS) == len(LABELS) + 1  # any other label
    assert label_id("RED Circle", LABELS) == 1


def test_render_matches_a_brute_force_reference():
    rng = np.random.default_rng(0)
    names = ["small red circle", "large blue square", "small green circle", "pink star"]
    for _ in range(40):
        boxes = []
        for _ in range(rng.integers(0, 5)):
            x0, y0 = rng.uniform(-0.1, 0.9, size=2)
            w, h = rng.uniform(0.02, 0.6, size=2)
            # coordinates on a 1/64 lattice: the sampled reference is exact there
            box = [round(v * 64) / 64 for v in (x0, y0, x0 + w, y0 + h)]
            boxes.append({"label": str(rng.choice(names)), "box": box})
        np.testing.assert_array_equal(render_box_map(boxes, 8, LABELS), reference_map(boxes, 8, LABELS))


def test_small_boxes_keep_their_centre_cell_and_empty_inputs_give_zeros():
    tiny = [{"label": "red circle", "box": [0.52, 0.27, 0.56, 0.31]}]  # 4% of a cell
    out = render_box_map(tiny, 8, LABELS)
    assert out[2, 4] == 1 and out.sum() == 1
    assert not render_box_map([], 8, LABELS).any() and not render_box_map(None, 4, LABELS).any()
    big = [{"label": "blue square", "box": [0.0, 0.0, 1.0, 1.0]}, *tiny]  # drawn over the big box
    out = render_box_map(big, 8, LABELS)
    assert out[2, 4] == 1 and (out == 2).sum() == 63


def spec(**kw) -> ModalitySpec:
    base = dict(name="box_map", kind="image", data_key="bboxes", vocab_size=len(LABELS) + 2, num_tokens=16,
                input=True, target=False, box_labels=list(LABELS))  # fmt: skip
    return ModalitySpec.from_dict({**base, **kw})


def test_spec_rules():
    s = spec()
    s.validate()
    assert not s.needs_tokenizer and s.grid_size == 4
    for kw, words in [
        ({"target": True}, "target"),
        ({"vocab_size": 9}, "len(box_labels) + 2"),
        ({"tokenizer": "tokenizers/x"}, "tokenizer"),
        ({"kind": "sequence", "num_tokens": None, "max_length": 8}, "kind 'image'"),
        ({"box_labels": ["ok", "  "], "vocab_size": 4}, "non-empty"),
    ]:
        with pytest.raises(FourmError, match=words.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
            spec(**kw).validate()


def test_shipped_world_box_map_covers_every_world_label():
    from fourm.data.world import render_sample

    s = ModalityRegistry.from_files([CONFIG_ROOT / "modalities" / "extra" / "box_map.yaml"])["box_map"]
    other = len(s.box_labels) + 1
    for i in range(20):
        boxes = render_sample(index=i, seed=3)["bboxes"]
        ids = [label_id(b["label"], s.box_labels) for b in boxes]
        assert other not in ids and all(s.box_labels[k - 1] in b["label"] for k, b in zip(ids, boxes))


def test_pretokenize_encodes_box_maps_without_a_tokenizer():
    from fourm.data.pretokenize import build_encoders, tokenizer_paths

    registry = ModalityRegistry([spec()])
    assert tokenizer_paths(registry, ["box_map"]) == {}
    encoders, info = build_encoders(registry, ["box_map"])
    boxes = [{"label": "large blue square", "box": [0.5, 0.5, 1.0, 1.0]}]
    rows = encoders["box_map"]([boxes, None])
    assert rows[1] is None and rows[0] == render_box_map(boxes, 4, LABELS).reshape(-1).tolist()
    assert info.modalities["box_map"].input_only and info.modalities["box_map"].vocab_size == len(LABELS) + 2


def test_masker_never_makes_an_input_only_modality_a_target():
    import torch

    from fourm.data.masking import Masker, MaskingConfig

    cfg = MaskingConfig.from_dict({"input_budget": 8, "target_budget": 8, "mixture": [{"input_alpha": 1.0, "target_alpha": 1.0}]})
    masker = Masker(cfg, ["rgb", "box_map"], {"rgb": "image", "box_map": "image"}, input_only=["box_map"])
    rng = np.random.default_rng(0)
    seen_input = False
    for _ in range(50):
        batch = masker({"rgb": torch.arange(16), "box_map": torch.arange(16) % 5}, rng)
        dec = batch.dec_modality[batch.dec_valid]
        assert not (dec == 1).any()
        seen_input |= bool((batch.enc_modality[batch.enc_valid] == 1).any())
    assert seen_input
    with pytest.raises(FourmError, match="input_only: unknown modality 'nope'"):
        Masker(cfg, ["rgb"], {"rgb": "image"}, input_only=["nope"])


def test_reveal_objects_gives_whole_objects_as_inputs():
    """mixture entry reveal_objects {rgb: box_map}: rgb inputs are exactly the cells of some (never all,
    never none) of the box map's objects, its targets other cells; one object: random cells as usual."""
    import torch

    from fourm.data.masking import Masker, MaskingConfig

    entry = {"input_alphas": {"rgb": 1.0, "caption": 1.0}, "input_alpha": 0.0, "target_alphas": {"rgb": 1.0},
             "target_alpha": 0.0, "reveal_objects": {"rgb": "box_map"}}  # fmt: skip
    cfg = MaskingConfig.from_dict({"input_budget": 24, "target_budget": 16, "mixture": [entry]})
    kinds = {"rgb": "image", "box_map": "image", "caption": "sequence"}
    sp = SequenceSpecialTokens(pad=0, sos=1, eos=2, sentinels=list(range(3, 10)))
    masker = Masker(cfg, ["rgb", "box_map", "caption"], kinds, sp, input_only=["box_map"], warn_after=None)
    box_map = np.zeros(16, dtype=np.int64)
    box_map[[0, 1, 4, 5]], box_map[[10, 11]], box_map[[15]] = 3, 7, 9  # three objects on a 4 x 4 grid
    objects = {3: {0, 1, 4, 5}, 7: {10, 11}, 9: {15}}
    rng = np.random.default_rng(0)
    revealed = []
    for _ in range(200):
        sample = {"rgb": torch.arange(100, 116), "box_map": torch.as_tensor(box_map), "caption": torch.tensor([20, 21, 2])}
        batch = masker(sample, rng)
        enc = batch.enc_position[batch.enc_valid & (batch.enc_modality == 0)].tolist()
        dec = batch.dec_position[batch.dec_valid & (batch.dec_modality == 0)].tolist()
        assert not (batch.enc_modality[batch.enc_valid] == 1).any()  # the box map itself is not given
        if enc:
            shown = {label for label, cells in objects.items() if set(enc) & cells}
            assert set(enc) == set().union(*(objects[k] for k in shown)), enc  # whole objects only
            assert 1 <= len(shown) <= 2 and not set(enc) & set(dec)
            revealed.append(frozenset(shown))
    assert len(set(revealed)) == 6  # every non-empty proper subset of the three objects occurs
    one = box_map.copy()
    one[one != 3] = 0
    cells = set()
    for _ in range(50):  # one object: random cells, so ground cells are shown too
        batch = masker({"rgb": torch.arange(100, 116), "box_map": torch.as_tensor(one), "caption": torch.tensor([20, 2])}, rng)
        cells |= set(batch.enc_position[batch.enc_valid & (batch.enc_modality == 0)].tolist())
    assert cells - objects[3]
    bad = MaskingConfig.from_dict({"mixture": [{**entry, "reveal_objects": {"caption": "box_map"}}]})
    with pytest.raises(FourmError, match="must name two image modalities"):
        Masker(bad, ["rgb", "box_map", "caption"], kinds, sp)


def test_small_samples_keep_their_targets():
    """A sample smaller than the budgets (the relation toy's: a 4-token caption, a 64-cell image, an
    input-only box map): inputs must not take the cells the targets need. Before the fix, the box map
    (alpha 0) counted towards the sample's size, the inputs took all 64 cells and no entry but
    caption -> rgb had a single target."""
    import torch

    from fourm.data.masking import Masker, MaskingConfig

    reveal = {"input_alphas": {"caption": 1.0, "rgb": 1.0}, "input_alpha": 0.0, "target_alphas": {"rgb": 1.0},
              "target_alpha": 0.0, "reveal_objects": {"rgb": "box_map"}}  # fmt: skip
    all_to_all = {"input_alpha": 1.0, "target_alpha": 1.0, "input_alphas": {"box_map": 0.0}}
    kinds = {"rgb": "image", "caption": "sequence", "box_map": "image"}
    sp = SequenceSpecialTokens(pad=0, sos=1, eos=2, sentinels=list(range(3, 10)))
    box_map = np.zeros(64, dtype=np.int64)
    box_map[[0, 1, 8, 9]], box_map[[36, 37, 44, 45]] = 1, 2
    sample = {"rgb": torch.arange(100, 164), "caption": torch.tensor([20, 21, 22, 2]), "box_map": torch.as_tensor(box_map)}
    rng = np.random.default_rng(0)
    for entry, check in ((reveal, "rest"), (all_to_all, "some")):
        cfg = MaskingConfig.from_dict({"input_budget": 72, "target_budget": 64, "span_probability": 0.0, "mixture": [entry]})
        masker = Masker(cfg, ["rgb", "caption", "box_map"], kinds, sp, input_only=["box_map"], warn_after=None)
        for _ in range(100):
            batch = masker(sample, rng)
            enc = batch.enc_position[batch.enc_valid & (batch.enc_modality == 0)].tolist()
            dec = batch.dec_position[batch.dec_valid & (batch.dec_modality == 0)].tolist()
            if check == "rest":  # one object given, every other cell a target
                assert len(enc) == 4 and sorted(enc + dec) == list(range(64)), (enc, dec)
            else:
                assert dec and not set(enc) & set(dec)
