"""Writing clips as pictures: an animated GIF per clip and a frame-strip PNG (rows of clips), plain PIL.

    save_gif(clip, "out/clip.gif", fps=4)                       # clip: (T, H, W, 3) uint8
    save_frame_strip([clip, recon], "out/strip.png")            # one row per clip, one column per frame
    save_clip(clip, "out/sample_000", "video")                  # video.gif + video_strip.png (generate.py)

Both write atomically. PIL stores two identical consecutive frames as one frame shown for both
durations (a fully static clip becomes a one-frame GIF); playback is the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from fourm.errors import FourmError
from fourm.utils.atomic import atomic_path


def check_clip(clip: np.ndarray, where: str = "clip") -> np.ndarray:
    """``clip`` as a (T, H, W, 3) uint8 array; FourmError naming the expected layout otherwise."""
    a = np.asarray(clip)
    if a.ndim != 4 or a.shape[-1] != 3 or a.shape[0] < 1 or a.dtype != np.uint8:
        raise FourmError(f"{where} must be a (T, H, W, 3) uint8 array, got {a.dtype} {tuple(a.shape)}")
    return a


def _upscale(frame: np.ndarray, scale: int) -> np.ndarray:
    return frame.repeat(scale, axis=0).repeat(scale, axis=1) if scale > 1 else frame


def save_gif(clip: np.ndarray, path: str | Path, fps: float = 4.0, scale: int = 1, loop: int = 0) -> Path:
    """Write ``clip`` (T, H, W, 3) uint8 as an animated GIF at ``fps`` frames per second, each pixel
    drawn as ``scale`` x ``scale`` pixels; ``loop`` 0 repeats forever. Returns ``path``."""
    clip = check_clip(clip)
    if not fps > 0 or scale < 1:
        raise FourmError(f"save_gif needs fps > 0 and scale >= 1, got fps={fps}, scale={scale}")
    frames = [Image.fromarray(_upscale(f, scale)) for f in clip]
    path = Path(path)
    with atomic_path(path) as tmp:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:],
                       duration=int(round(1000 / fps)), loop=loop)  # fmt: skip
    return path


def frame_strip(clips: Sequence[np.ndarray], gap: int = 2, scale: int = 1) -> np.ndarray:
    """Clips of one shape (T, H, W, 3) -> one picture: a row per clip, a column per frame, ``gap``
    white pixels between tiles.  # (rows * (H*s + gap) - gap, T * (W*s + gap) - gap, 3)"""
    if not clips:
        raise FourmError("frame_strip needs at least one clip")
    clips = [check_clip(c, f"clip {i}") for i, c in enumerate(clips)]
    if any(c.shape != clips[0].shape for c in clips):
        raise FourmError(f"frame_strip clips must share one shape, got {[tuple(c.shape) for c in clips]}")
    t, h, w, _ = clips[0].shape
    hs, ws = h * scale, w * scale
    out = np.full((len(clips) * (hs + gap) - gap, t * (ws + gap) - gap, 3), 255, dtype=np.uint8)
    for r, clip in enumerate(clips):
        for k, frame in enumerate(clip):
            out[r * (hs + gap) : r * (hs + gap) + hs, k * (ws + gap) : k * (ws + gap) + ws] = _upscale(
                frame, scale
            )
    return out


def save_frame_strip(clips: Sequence[np.ndarray], path: str | Path, gap: int = 2, scale: int = 1) -> Path:
    """Write :func:`frame_strip` of ``clips`` as a PNG. Returns ``path``."""
    picture = frame_strip(clips, gap, scale)
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(picture).save(tmp, format="PNG")
    return path


def is_clip(value: object) -> bool:
    """True for a clip as codecs decode it: a (T, H, W, 3) uint8 array (:class:`fourm.codecs.VideoCodec`)."""
    return isinstance(value, np.ndarray) and value.ndim == 4 and value.shape[-1] == 3 and value.dtype == np.uint8


def save_clip(
    clip: np.ndarray, folder: str | Path, name: str, fps: float = 4.0, scale: int = 2
) -> list[Path]:
    """Write ``clip`` (T, H, W, 3) uint8 as ``folder/name.gif`` and the frame strip ``folder/name_strip.png``
    (each pixel ``scale`` x ``scale`` in the GIF) -> the two paths."""
    folder = Path(folder)
    return [
        save_gif(clip, folder / f"{name}.gif", fps=fps, scale=scale),
        save_frame_strip([clip], folder / f"{name}_strip.png"),
    ]
