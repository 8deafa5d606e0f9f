"""Vectorised numpy rendering of a scene into every image modality, perfectly aligned.

Each object is a signed distance field (SDF, negative inside) evaluated only on a small window
around it. From the SDF follow:

- the hard footprint ``sdf < 0`` (semseg, object ids, depth, normals: no blending, painter's order),
- analytic anti-aliasing for rgb (pixel coverage ``clip(0.5 - sdf * size, 0, 1)``),
- a bevelled relief ``height(-sdf)`` (flat top, rounded rim): depth = base depth - height,
- surface normals from the SDF gradient and the relief slope, and Lambertian shading of rgb from
  a fixed light (a flat-facing surface is shaded by exactly 1, i.e. shows its albedo).

Normals are in camera space: x right, y down (image rows), z towards the camera.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fourm.data.world.palette import SHAPE_CLASS, SHAPE_GEOMETRY
from fourm.data.world.scene import GROUND_DEPTH_RANGE, Scene, SceneObject

LIGHT = np.array([-0.45, -0.55, 1.0]) / math.sqrt(0.45**2 + 0.55**2 + 1.0)  # from the top left, in front
AMBIENT = 0.35
EDGE_DEPTH_JUMP = 0.1  # a depth step larger than this between neighbouring pixels is an edge
WINDOW_MARGIN = 2  # pixels around an object's circumscribed square (covers the anti-aliased rim)


@dataclass
class ObjectLayer:
    """An object's SDF on its window ``image[rows, cols]`` (everything outside is empty)."""

    rows: slice
    cols: slice
    sdf: np.ndarray  # (h, w) signed distance in image-side units, negative inside
    inside: np.ndarray  # (h, w) bool, the hard footprint

    @property
    def area(self) -> int:
        return int(self.inside.sum())


def pixel_centers(size: int) -> np.ndarray:
    """Centres of the pixels along one axis, as fractions of the image side.  # (size,)"""
    return (np.arange(size, dtype=np.float64) + 0.5) / size


def shape_sdf(obj: SceneObject, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Signed distance from pixel centres ``xs`` (w,) x ``ys`` (h,) to ``obj``'s outline.  # (h, w)"""
    dx = xs[None, :] - obj.center[0]
    dy = ys[:, None] - obj.center[1]
    if obj.shape == "circle":
        return np.hypot(dx, dy) - obj.radius
    # Star polygon (regular n-gons are stars whose inner radius is the apothem): fold the plane into
    # the half-sector between a tip (angle 0) and the next inner vertex (angle pi/n), where the
    # outline is the single segment tip -> inner vertex.
    points, inner, _ = SHAPE_GEOMETRY[obj.shape]
    cos_r, sin_r = math.cos(obj.rotation), math.sin(obj.rotation)
    qx = cos_r * dx + sin_r * dy
    qy = cos_r * dy - sin_r * dx
    rho = np.hypot(qx, qy)
    half = math.pi / points
    angle = np.abs(np.mod(np.arctan2(qy, qx) + half, 2 * half) - half)
    wx = rho * np.cos(angle) - obj.radius  # offset from the tip
    wy = rho * np.sin(angle)
    ex = obj.radius * (inner * math.cos(half) - 1.0)  # segment tip -> inner vertex
    ey = obj.radius * inner * math.sin(half)
    t = np.clip((wx * ex + wy * ey) / (ex * ex + ey * ey), 0.0, 1.0)
    dist = np.hypot(wx - t * ex, wy - t * ey)
    return np.where(ex * wy - ey * wx > 0, -dist, dist)


def rasterize(scene: Scene, size: int) -> list[ObjectLayer]:
    """The SDF window of every object of ``scene`` (same order: farthest first)."""
    centers = pixel_centers(size)
    layers = []
    for obj in scene.objects:
        (cx, cy), reach = obj.center, obj.radius * size + WINDOW_MARGIN
        r0, r1 = max(int(cy * size - reach), 0), min(int(math.ceil(cy * size + reach)), size)
        c0, c1 = max(int(cx * size - reach), 0), min(int(math.ceil(cx * size + reach)), size)
        sdf = shape_sdf(obj, centers[c0:c1], centers[r0:r1])
        layers.append(ObjectLayer(slice(r0, r1), slice(c0, c1), sdf, sdf < 0))
    return layers


def object_id_map(layers: list[ObjectLayer], size: int) -> np.ndarray:
    """Which object is visible at each pixel: 0 = background, k + 1 = ``scene.objects[k]``.  # (H, W)"""
    ids = np.zeros((size, size), dtype=np.uint8)
    for k, layer in enumerate(layers):
        ids[layer.rows, layer.cols][layer.inside] = k + 1
    return ids


def relief(obj: SceneObject, sdf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Relief height above the outline and its slope d(height)/d(-sdf): a rounded bevel of width
    ``obj.bevel_width`` rising by ``obj.relief``, flat on top.  # (h, w), (h, w)"""
    width = max(obj.bevel_width, 1e-6)
    t = np.clip(-sdf / width, 0.0, 1.0)
    height = obj.relief * t * (2.0 - t)
    slope = (2.0 * obj.relief / width) * (1.0 - t)
    return height, slope


def layer_depth(obj: SceneObject, layer: ObjectLayer) -> np.ndarray:
    """Depth the object's surface would have on its window if nothing covered it.  # (h, w)"""
    return obj.depth - relief(obj, layer.sdf)[0]


def render_background(scene: Scene, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ground plane: rgb (H, W, 3) float32 in [0, 1], depth (H, W) float32, normal (3,) (a plane)."""
    centers = pixel_centers(size)
    bg = scene.background
    top, bottom = np.asarray(bg.top_rgb), np.asarray(bg.bottom_rgb)
    gradient = (top + centers[:, None] * (bottom - top)).astype(np.float32)  # (H, 3)
    # sum_k a_k sin(u_k(x) + v_k(y)) with sin(u + v) = sin u cos v + cos u sin v: one small matmul
    rows, cols = [], []
    for fx, fy, phase, amplitude in bg.waves:
        u, v = 2 * math.pi * fx * centers, 2 * math.pi * fy * centers + phase
        rows += [amplitude * np.cos(v), amplitude * np.sin(v)]
        cols += [np.sin(u), np.cos(u)]
    texture = np.float32(1.0) + (np.stack(rows, axis=1) @ np.stack(cols)).astype(np.float32)  # (H, W)
    rgb = gradient[:, None, :] * texture[:, :, None]  # (H, W, 3)
    near, far = GROUND_DEPTH_RANGE
    depth = np.repeat((far - (far - near) * centers).astype(np.float32)[:, None], size, axis=1)
    normal = np.array([0.0, -(far - near), 1.0])  # d(depth)/dy = -(far - near): the plane faces up
    return rgb, depth, normal / np.linalg.norm(normal)


def _central_gradient(field: np.ndarray, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """d/dy, d/dx by central differences (one-sided at the borders), like np.gradient but leaner."""
    gy, gx = np.empty_like(field), np.empty_like(field)
    gy[1:-1] = (field[2:] - field[:-2]) * (0.5 / spacing)
    gy[0], gy[-1] = (field[1] - field[0]) / spacing, (field[-1] - field[-2]) / spacing
    gx[:, 1:-1] = (field[:, 2:] - field[:, :-2]) * (0.5 / spacing)
    gx[:, 0], gx[:, -1] = (field[:, 1] - field[:, 0]) / spacing, (field[:, -1] - field[:, -2]) / spacing
    return gy, gx


def surface(obj: SceneObject, sdf: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Depth (h, w), unit normals (h, w, 3) and Lambertian shade (h, w) of an object on its window.

    depth = base - height(-sdf), so d(depth)/dx = slope * d(sdf)/dx and the normal is
    (dz/dx, dz/dy, 1) normalised. The shade is scaled so a camera-facing surface gets exactly 1."""
    height, slope = relief(obj, sdf)
    grad_y, grad_x = _central_gradient(sdf, 1.0 / size)
    dz_dx, dz_dy = slope * grad_x, slope * grad_y
    inv_len = 1.0 / np.sqrt(1.0 + dz_dx * dz_dx + dz_dy * dz_dy)
    normals = np.stack([dz_dx * inv_len, dz_dy * inv_len, inv_len], axis=-1)
    lambert = np.maximum(normals @ LIGHT, 0.0)
    shade = AMBIENT + (1.0 - AMBIENT) * lambert / LIGHT[2]
    return obj.depth - height, normals, shade


def edge_map(object_ids: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Occluding contours: a pixel is an edge if a 4-neighbour shows another object (or lies more than
    EDGE_DEPTH_JUMP deeper) and this pixel is the nearer of the two.  # (H, W) uint8 in {0, 1}"""
    edges = np.zeros(object_ids.shape, dtype=bool)
    for axis in (0, 1):
        a = [slice(None), slice(None)]
        b = [slice(None), slice(None)]
        a[axis], b[axis] = slice(None, -1), slice(1, None)
        a, b = tuple(a), tuple(b)
        step = depth[b] - depth[a]  # > 0: the first pixel is nearer
        boundary = (object_ids[a] != object_ids[b]) | (np.abs(step) > EDGE_DEPTH_JUMP)
        edges[a] |= boundary & (step > 0)
        edges[b] |= boundary & (step <= 0)
    return edges.astype(np.uint8)


@dataclass
class Rendering:
    """All image modalities of a scene, plus the per-pixel object ids and shading they came from."""

    rgb: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray  # (H, W) float32 in [0, 1]
    semseg: np.ndarray  # (H, W) uint8, CLASS_NAMES ids
    normals: np.ndarray  # (H, W, 3) uint8, (n * 0.5 + 0.5) * 255
    edges: np.ndarray  # (H, W) uint8 in {0, 1}
    object_ids: np.ndarray  # (H, W) uint8, 0 = background, k + 1 = scene.objects[k]
    shade: np.ndarray  # (H, W) float32, Lambertian factor of the visible surface (1 = facing camera)
    unblended: np.ndarray  # (H, W) bool, rgb comes from the visible surface alone (no anti-aliased rim)


def render_scene(scene: Scene, size: int, layers: list[ObjectLayer] | None = None) -> Rendering:
    """Render every image modality of ``scene`` at ``size`` x ``size`` (objects in painter's order)."""
    layers = rasterize(scene, size) if layers is None else layers
    rgb, depth, bg_normal = render_background(scene, size)
    normals = np.empty((size, size, 3), dtype=np.float32)
    normals[:] = bg_normal
    shade = np.ones((size, size), dtype=np.float32)
    semseg = np.zeros((size, size), dtype=np.uint8)
    object_ids = np.zeros((size, size), dtype=np.uint8)
    unblended = np.ones((size, size), dtype=bool)
    for k, (obj, layer) in enumerate(zip(scene.objects, layers)):
        win, m = (layer.rows, layer.cols), layer.inside
        obj_depth, obj_normals, obj_shade = surface(obj, layer.sdf, size)
        coverage = np.clip(0.5 - layer.sdf * size, 0.0, 1.0)
        color = obj_shade[..., None] * (np.asarray(obj.albedo) / 255.0)
        rgb_win = rgb[win]
        rgb_win += (coverage[..., None] * (color - rgb_win)).astype(np.float32)
        np.copyto(unblended[win], coverage == 1.0, where=coverage > 0)
        np.copyto(semseg[win], SHAPE_CLASS[obj.shape], where=m)
        np.copyto(object_ids[win], k + 1, where=m)
        np.copyto(depth[win], obj_depth, where=m, casting="same_kind")
        np.copyto(normals[win], obj_normals, where=m[..., None], casting="same_kind")
        np.copyto(shade[win], obj_shade, where=m, casting="same_kind")
    np.clip(depth, 0.0, 1.0, out=depth)
    np.clip(rgb, 0.0, 1.0, out=rgb)
    return Rendering(
        rgb=np.rint(rgb * 255.0).astype(np.uint8),
        depth=depth,
        semseg=semseg,
        normals=np.rint(normals * 127.5 + 127.5).astype(np.uint8),
        edges=edge_map(object_ids, depth),
        object_ids=object_ids,
        shade=shade,
        unblended=unblended,
    )
