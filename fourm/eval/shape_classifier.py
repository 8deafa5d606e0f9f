"""Which shape (and size) is a blob? Rotation- and scale-invariant mask features + a linear
discriminant (Gaussian classes with one shared covariance), calibrated on world renders.

Features of a blob mask: solidity (area / convex-hull area: stars are concave), the normalised
second moment (1 for a disc, larger for polygons), the angular harmonics 3..6 of the mass
distribution (triangle, square, star, hexagon symmetry), the outer/equivalent radius ratio, and two
log radii over the image side (for the size). Calibration renders world scenes, segments them with
``blobs.find_blobs`` (so it sees the checker's own segmentation, occlusions included) and labels
each blob with the (shape, size) of the object under it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from fourm.data.world.generate import _default_config, sample_valid_scene
from fourm.data.world.palette import SHAPES, SIZES
from fourm.data.world.render import render_scene
from fourm.eval.blobs import find_blobs

HARMONICS = (3, 4, 5, 6)
CLASSES: tuple[tuple[str, str], ...] = tuple((s, z) for s in SHAPES for z in SIZES)
CALIBRATION_SEED = 424242  # a world seed used for nothing else (val scenes use seed 1)


def convex_hull_area(points: np.ndarray) -> float:
    """Area of the convex hull of 2-D points (Andrew's monotone chain).  points: (N, 2)"""
    pts = np.unique(np.asarray(points, dtype=np.float64), axis=0)  # sorted by x, then y
    if len(pts) < 3:
        return 0.0

    def chain(seq: np.ndarray) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        for p in seq:
            while len(out) >= 2:
                (ax, ay), (bx, by) = out[-2], out[-1]
                if (bx - ax) * (p[1] - ay) - (by - ay) * (p[0] - ax) > 0:
                    break
                out.pop()
            out.append(p)
        return out

    hull = np.array(chain(pts)[:-1] + chain(pts[::-1])[:-1])
    x, y = hull[:, 0], hull[:, 1]
    return float(0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def blob_features(mask: np.ndarray) -> np.ndarray:
    """Feature vector of a non-empty bool mask (H, W).  # (10,)"""
    ys, xs = np.nonzero(mask)
    area, side = len(xs), max(mask.shape)
    dx, dy = xs - xs.mean(), ys - ys.mean()
    rho2 = dx * dx + dy * dy
    corners = np.concatenate([np.stack([xs + a, ys + b], 1) for a in (0, 1) for b in (0, 1)])
    solidity = area / max(convex_hull_area(corners), 1.0)
    moment = 2 * np.pi * (rho2.sum() + area / 6) / area**2  # + each pixel's own moment
    weights = rho2 / max(rho2.sum(), 1e-9)
    theta = np.arctan2(dy, dx)
    harmonics = [abs((weights * np.exp(1j * k * theta)).sum()) for k in HARMONICS]
    r_out = np.sqrt(rho2.max()) + 0.5
    r_eq = np.sqrt(area / np.pi)
    return np.array([solidity, moment, *harmonics, r_out / r_eq, np.log(r_eq / side), np.log(r_out / side)])


@dataclass
class ShapeClassifier:
    """Linear discriminant over ``CLASSES`` (shape, size): class means, shared inverse covariance."""

    means: np.ndarray  # (C, F)
    precision: np.ndarray  # (F, F) inverse pooled covariance
    log_prior: np.ndarray  # (C,)

    @classmethod
    def fit(cls, features: np.ndarray, labels: list[tuple[str, str]]) -> ShapeClassifier:
        """Fit on features (N, F) with (shape, size) labels; every class needs >= 2 examples."""
        y = np.array([CLASSES.index(tuple(lab)) for lab in labels])
        counts = np.bincount(y, minlength=len(CLASSES))
        if counts.min() < 2:
            raise ValueError(f"every (shape, size) class needs 2+ calibration blobs, got {counts.tolist()}")
        means = np.stack([features[y == c].mean(0) for c in range(len(CLASSES))])
        resid = features - means[y]
        cov = resid.T @ resid / (len(y) - len(CLASSES)) + 1e-6 * np.eye(features.shape[1])
        return cls(means, np.linalg.inv(cov), np.log(counts / counts.sum()))

    def log_proba(self, features: np.ndarray) -> np.ndarray:
        """Log posterior of each (shape, size) class.  features (N, F) -> (N, C)"""
        d = np.asarray(features)[:, None, :] - self.means[None]
        ll = -0.5 * np.einsum("ncf,fg,ncg->nc", d, self.precision, d) + self.log_prior
        return ll - np.logaddexp.reduce(ll, axis=1, keepdims=True)

    def predict(self, masks: list[np.ndarray]) -> tuple[list[str], list[str], np.ndarray]:
        """(shape, size) of each mask and the (N, C) class posteriors."""
        if not masks:
            return [], [], np.zeros((0, len(CLASSES)))
        proba = np.exp(self.log_proba(np.stack([blob_features(m) for m in masks])))
        shape_p = proba.reshape(len(masks), len(SHAPES), len(SIZES))
        shapes = [SHAPES[i] for i in shape_p.sum(2).argmax(1)]
        sizes = [list(SIZES)[i] for i in shape_p.sum(1).argmax(1)]
        return shapes, sizes, proba


def labelled_world_blobs(num_scenes: int, seed: int) -> tuple[list, list[tuple[str, str]]]:
    """Checker blobs of ``num_scenes`` rendered world scenes with the (shape, size) of the object
    under each (blobs not lying >= 80% on one object of their colour are dropped)."""
    config = _default_config()
    blobs, labels = [], []
    for i in range(num_scenes):
        scene, layers, _ = sample_valid_scene(np.random.default_rng([seed, i]), config)
        rendering = render_scene(scene, config.size, layers)
        for blob in find_blobs(rendering.rgb):
            under = np.bincount(rendering.object_ids[blob.mask], minlength=len(scene.objects) + 1)
            k = int(under.argmax())
            if k == 0 or under[k] < 0.8 * blob.area or scene.objects[k - 1].color != blob.color:
                continue
            blobs.append(blob)
            labels.append((scene.objects[k - 1].shape, scene.objects[k - 1].size))
    return blobs, labels


@functools.cache
def default_classifier(num_scenes: int = 400, seed: int = CALIBRATION_SEED) -> ShapeClassifier:
    """The classifier calibrated on ``num_scenes`` world renders (about 2 s; cached per process)."""
    blobs, labels = labelled_world_blobs(num_scenes, seed)
    return ShapeClassifier.fit(np.stack([blob_features(b.mask) for b in blobs]), labels)
