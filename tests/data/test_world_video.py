"""World video clips: determinism, frame alignment, motion, captions, the dataset writer, GIF/strip saving."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from fourm.data.world import WorldConfig, render_sample
from fourm.data.world.captions import reference
from fourm.data.world.palette import SHAPE_CLASS
from fourm.data.world.render import rasterize
from fourm.data.world.video import SPEEDS, motion_phrase, render_clip, shifted
from fourm.errors import FourmError
from fourm.utils.video import frame_strip, save_frame_strip, save_gif

FRAMES = 8
CLIPS = [render_clip(i, seed=3, frames=FRAMES) for i in range(24)]


def _touched(clip: dict) -> np.ndarray:
    """(H, W) pixels any object's anti-aliased rim reaches in some frame (a star's thin tip can tint a
    pixel no footprint pixel touches)."""
    size = clip["video"].shape[1]
    touched = np.zeros((size, size), dtype=bool)
    for t in range(FRAMES):
        for layer in rasterize(shifted(clip["scene"], clip["velocities"], t, size), size):
            touched[layer.rows, layer.cols] |= 0.5 - layer.sdf * size > 0
    return touched


def _footprint_centre(clip: dict, k: int, t: int) -> tuple[float, float]:
    """(row, column) mean of object ``k``'s footprint pixels in frame ``t``, hidden ones included."""
    size = clip["video"].shape[1]
    layer = rasterize(shifted(clip["scene"], clip["velocities"], t, size), size)[k]
    ys, xs = np.nonzero(layer.inside)
    return layer.rows.start + ys.mean(), layer.cols.start + xs.mean()


def _interior(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` whose 8 neighbours are in ``mask`` too (away from any anti-aliased rim)."""
    m = np.pad(mask, 1)
    h, w = mask.shape
    return np.logical_and.reduce(
        [m[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    )


def _full_areas(clip: dict) -> list[list[int]]:
    """Footprint area of every object at every frame (what it would cover with nothing in front)."""
    size = clip["video"].shape[1]
    return [[layer.area for layer in rasterize(shifted(clip["scene"], clip["velocities"], t, size), size)]
            for t in range(clip["video"].shape[0])]  # fmt: skip


def test_clip_shapes_and_determinism():
    clip = render_clip(5, seed=3, frames=FRAMES)
    assert clip["video"].shape == (FRAMES, 64, 64, 3) and clip["video"].dtype == np.uint8
    assert clip["depth"].shape == (FRAMES, 64, 64) and clip["depth"].dtype == np.float32
    assert clip["semseg"].shape == (FRAMES, 64, 64) and clip["semseg"].dtype == np.uint8
    again = render_clip(5, seed=3, frames=FRAMES)
    for key in ("video", "depth", "semseg", "velocities"):
        assert np.array_equal(clip[key], again[key])
    assert clip["caption"] == again["caption"] and clip["id"] == "world-video-3-00000005"
    assert not np.array_equal(clip["video"], render_clip(6, seed=3, frames=FRAMES)["video"])
    assert not np.array_equal(clip["video"], render_clip(5, seed=4, frames=FRAMES)["video"])


def test_first_frame_is_the_image_sample():
    clip, image = CLIPS[2], render_sample(2, seed=3)
    assert np.array_equal(clip["video"][0], image["rgb"])
    assert np.array_equal(clip["depth"][0], image["depth"]) and np.array_equal(
        clip["semseg"][0], image["semseg"]
    )
    assert clip["caption"].startswith(image["caption"] + " ")


def test_clips_have_motion_and_static_objects():
    velocities = np.concatenate([c["velocities"] for c in CLIPS])
    moving = np.abs(velocities).sum(1) > 0
    assert moving.any() and (~moving).any()
    assert set(np.abs(velocities[moving]).max(1)) <= set(SPEEDS)


def test_every_object_stays_visible_in_every_frame():
    for clip in CLIPS:
        n = len(clip["scene"].objects)
        for t in range(FRAMES):
            assert set(np.unique(clip["object_ids"][t])) - {0} == set(range(1, n + 1))


def test_object_moves_by_its_velocity_with_aligned_depth_and_semseg():
    checked = 0
    for clip in CLIPS:
        ids, areas = clip["object_ids"], _full_areas(clip)
        for k, (obj, (vx, vy)) in enumerate(zip(clip["scene"].objects, clip["velocities"])):
            m0 = ids[0] == k + 1
            for t in range(1, FRAMES):
                mt = ids[t] == k + 1
                if m0.sum() != areas[0][k] or mt.sum() != areas[t][k]:
                    continue  # partly hidden in one of the frames
                shift = (t * int(vy), t * int(vx))
                assert np.array_equal(np.roll(m0, shift, axis=(0, 1)), mt)  # exactly t * velocity pixels
                assert (clip["semseg"][t][mt] == SHAPE_CLASS[obj.shape]).all()
                moved_depth = np.roll(clip["depth"][0], shift, axis=(0, 1))
                np.testing.assert_allclose(clip["depth"][t][mt], moved_depth[mt], atol=1e-6)
                inner = _interior(mt)
                moved_rgb = np.roll(clip["video"][0], shift, axis=(0, 1))
                assert np.abs(clip["video"][t][inner].astype(int) - moved_rgb[inner]).max() <= 1
                checked += 1
    assert checked > 50


def test_static_pixels_do_not_change():
    checked = 0
    for clip in CLIPS:
        ids, video = clip["object_ids"], clip["video"]
        for k, (vx, vy) in enumerate(clip["velocities"]):
            if vx or vy:
                continue
            for t in range(1, FRAMES):
                keep = _interior(
                    (ids[0] == k + 1) & (ids[t] == k + 1)
                )  # the static object, uncovered both times
                assert np.array_equal(video[t][keep], video[0][keep])
                assert np.array_equal(clip["depth"][t][keep], clip["depth"][0][keep])
                checked += int(keep.any())
        ground = (ids == 0).all(0) & ~_touched(clip)  # background in every frame, off every rim
        for t in range(1, FRAMES):
            assert np.array_equal(video[t][ground], video[0][ground])
    assert checked > 20


def test_caption_motion_words_are_true():
    pattern = re.compile(r"(moves (slowly|quickly) (up|down)?( and )?(to the (left|right))?|stays still)")
    for clip in CLIPS:
        motion = clip["caption"]
        for k, obj in enumerate(clip["scene"].objects):
            phrase = motion_phrase(tuple(clip["velocities"][k]))
            assert f"{reference(obj)} {phrase}".lower() in motion.lower()
            match = pattern.fullmatch(phrase)
            assert match is not None, phrase
            (y0, x0), (y1, x1) = (_footprint_centre(clip, k, t) for t in (0, FRAMES - 1))
            dx, dy = x1 - x0, y1 - y0  # measured on the pixels of the whole (unoccluded) footprint
            if phrase == "stays still":
                assert abs(dx) < 3 and abs(dy) < 3
                continue
            assert ("to the right" in phrase) == (dx > 3) and ("to the left" in phrase) == (dx < -3)
            assert ("down" in phrase) == (dy > 3) and ("up" in phrase) == (dy < -3)
            travel = max(abs(dx), abs(dy)) / (FRAMES - 1)  # pixels per frame
            assert (1.5 < travel) if "quickly" in phrase else (0.5 < travel < 1.5)


def test_one_frame_clip_and_other_sizes():
    one = render_clip(1, seed=0, frames=1)
    assert one["video"].shape == (1, 64, 64, 3) and "stays still" in one["caption"]
    small = render_clip(1, seed=0, frames=3, config=WorldConfig(size=32))
    assert small["video"].shape == (3, 32, 32, 3)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"index": -1}, "invalid clip index -1"),
        ({"index": 1.5}, "invalid clip index 1.5"),
        ({"index": 0, "seed": -2}, "seed -2"),
        ({"index": 0, "frames": 0}, "invalid number of frames 0"),
        ({"index": 0, "frames": 65}, "expected an integer in 1..64"),
        ({"index": 0, "frames": True}, "invalid number of frames True"),
    ],
)
def test_bad_clip_arguments(kwargs, match):
    with pytest.raises(FourmError, match=match) as info:
        render_clip(**kwargs)
    assert "\n" not in str(info.value)


def test_video_dataset_round_trip_and_cli(tmp_path, capsys):
    from fourm.cli.data import main
    from fourm.data.raw_dataset import VAL_INDEX_OFFSET, read_dataset_info
    from fourm.data.video_dataset import load_video_clips

    out = tmp_path / "clips"
    assert main(["world-video", "--out", str(out), "--num", "4", "--frames", "3", "--size", "32",
                 "--val-fraction", "0.25", "--workers", "0", "--seed", "2"]) == 0  # fmt: skip
    info = read_dataset_info(out)
    assert (
        info["counts"] == {"train": 3, "val": 1}
        and info["frames"] == 3
        and info["source"].startswith("world-video")
    )
    train = load_video_clips(out, "train")
    assert train.shape == (3, 3, 32, 32, 3) and train.dtype == np.uint8
    config = WorldConfig(size=32)
    assert np.array_equal(train[1], render_clip(1, seed=2, frames=3, config=config)["video"])
    val_semseg = load_video_clips(out, "val", key="video_semseg")
    assert np.array_equal(
        val_semseg[0], render_clip(VAL_INDEX_OFFSET, seed=2, frames=3, config=config)["semseg"]
    )
    assert load_video_clips(out, "val", key="video_depth").dtype == np.float32
    capsys.readouterr()
    assert main(["world-video", "--out", str(tmp_path / "bad"), "--num", "2", "--frames", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: argument --frames") and "\n" not in err
    with pytest.raises(FourmError, match="not a video dataset"):
        load_video_clips(out, "train", key="rgb")


def test_gif_and_frame_strip(tmp_path):
    clip = next(c for c in CLIPS if np.abs(c["velocities"]).sum() > 0)["video"]
    path = save_gif(clip, tmp_path / "clip.gif", fps=5, scale=2)
    with Image.open(path) as gif:
        assert gif.n_frames == FRAMES and gif.size == (128, 128)
        gif.seek(3)
        assert (
            np.abs(np.asarray(gif.convert("RGB")).astype(int)[::2, ::2] - clip[3]).mean() < 8
        )  # palette error
    strip = frame_strip([clip, clip[::-1]], gap=2)
    assert strip.shape == (2 * 64 + 2, FRAMES * 64 + 7 * 2, 3)
    assert np.array_equal(strip[:64, 66:130], clip[1]) and np.array_equal(strip[66:, :64], clip[-1])
    png = save_frame_strip([clip], tmp_path / "strip.png")
    assert np.array_equal(np.asarray(Image.open(png)), frame_strip([clip]))
    with pytest.raises(FourmError, match=r"\(T, H, W, 3\) uint8"):
        save_gif(clip.astype(np.float32), tmp_path / "x.gif")
    with pytest.raises(FourmError, match="share one shape"):
        frame_strip([clip, clip[:3]])
