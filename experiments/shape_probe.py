"""Does the FourM's encoder see an object's shape? Probes of the shape of each object in world
val scenes, from (a) the patch stem's output (the encoder's input), (b) the encoder's output, both
averaged over the object's patches, and (c) the object's pixels (a 24 x 24 crop around it). Round 7
of issue 16 (docs/experiments/default_model.md).

    python experiments/shape_probe.py [--model models/world-default] [--train 2000] [--test 500] [--label colour]

``--label colour`` (round 8) probes the object's named colour instead (the COLORS entry nearest the
median rgb of its pixels).

Objects are the pixels of one shape class in the true segmentation. Model features per object: the
average over the 8 x 8 patches it covers (weighted by its pixels in each), and the 3 x 3 patches around
its centre, concatenated (where things are inside the object). Logistic regression, full batch, trained on the
objects of the first scenes and scored on the rest; also a one-hidden-layer MLP on each, and a small CNN
on the crops (what a convolutional reader learns in seconds). Chance is the most common shape's share.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
import torch.nn.functional as F

from fourm.data.world.palette import COLORS
from fourm.eval.world import given, load_eval_pipeline, load_samples
from fourm.generation.conditions import encoder_inputs

PATCH = 8


def objects_of(semseg: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(class, (64,) patch weights: the object's pixel share of each 8 x 8 patch) per shape class present."""
    out = []
    grid = semseg.shape[0] // PATCH
    for c in np.unique(semseg):
        if c == 0:
            continue
        m = (semseg == c).reshape(grid, PATCH, grid, PATCH).mean(axis=(1, 3)).reshape(-1)
        out.append((int(c), m / m.sum()))
    return out


def colour_of(rgb: np.ndarray, semseg: np.ndarray, c: int) -> int:
    """Index in COLORS of the named colour nearest the median rgb of class ``c``'s pixels."""
    median = np.median(rgb[semseg == c].astype(np.float32), axis=0)
    return int(np.argmin(((np.array(list(COLORS.values()), np.float32) - median) ** 2).sum(1)))


def neighbourhood(weights: np.ndarray, grid: int = 8) -> torch.Tensor:
    """Indices (9,) of the 3 x 3 patches around the object's weighted centre patch (clamped to the grid)."""
    w = weights.reshape(grid, grid)
    cy = int(round(float((w.sum(1) * np.arange(grid)).sum())))
    cx = int(round(float((w.sum(0) * np.arange(grid)).sum())))
    cy, cx = min(max(cy, 1), grid - 2), min(max(cx, 1), grid - 2)
    return torch.tensor([(cy + dy) * grid + cx + dx for dy in (-1, 0, 1) for dx in (-1, 0, 1)])


def crop(rgb: np.ndarray, semseg: np.ndarray, c: int, size: int = 24) -> np.ndarray:
    """The ``size`` x ``size`` rgb crop centred on class ``c``'s pixels (edge-padded), flattened in [0, 1]."""
    ys, xs = np.nonzero(semseg == c)
    cy, cx = int(ys.mean()), int(xs.mean())
    pad = np.pad(rgb, ((size, size), (size, size), (0, 0)), mode="edge")
    y0, x0 = cy + size - size // 2, cx + size - size // 2
    return pad[y0 : y0 + size, x0 : x0 + size].reshape(-1).astype(np.float32) / 255.0


def probe(x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor) -> float:
    """Test accuracy of a (standardised) logistic regression trained full-batch with L-BFGS."""
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-6
    x_train, x_test = (x_train - mu) / sd, (x_test - mu) / sd
    w = torch.zeros(x_train.shape[1], int(y_train.max()) + 1, requires_grad=True)
    b = torch.zeros(w.shape[1], requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=300, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(x_train @ w + b, y_train) + 1e-3 * w.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return float(((x_test @ w + b).argmax(1) == y_test).float().mean())


def mlp_probe(x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor) -> float:
    """Test accuracy of a one-hidden-layer MLP (256 units) trained 400 full-batch Adam steps."""
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-6
    x_train, x_test = (x_train - mu) / sd, (x_test - mu) / sd
    net = torch.nn.Sequential(torch.nn.Linear(x_train.shape[1], 256), torch.nn.GELU(), torch.nn.Linear(256, int(y_train.max()) + 1))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.05)
    for _ in range(400):
        opt.zero_grad()
        F.cross_entropy(net(x_train), y_train).backward()
        opt.step()
    with torch.no_grad():
        return float((net(x_test).argmax(1) == y_test).float().mean())


def cnn_probe(x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor) -> float:
    """Test accuracy of a small CNN on the 24 x 24 crops (3 conv layers), 20 epochs of Adam."""
    x_train, x_test = (x.reshape(-1, 24, 24, 3).permute(0, 3, 1, 2) for x in (x_train, x_test))
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.GELU(), torch.nn.Conv2d(32, 64, 3, stride=2, padding=1), torch.nn.GELU(),
        torch.nn.Conv2d(64, 64, 3, stride=2, padding=1), torch.nn.GELU(), torch.nn.Flatten(), torch.nn.Linear(64 * 36, int(y_train.max()) + 1),
    )  # fmt: skip
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3)
    for _ in range(20):
        for idx in torch.randperm(len(x_train)).split(128):
            opt.zero_grad()
            F.cross_entropy(net(x_train[idx]), y_train[idx]).backward()
            opt.step()
    with torch.no_grad():
        return float((net(x_test).argmax(1) == y_test).float().mean())


@torch.no_grad()
def features(pipe, samples: list[dict], batch: int = 64, label: str = "shape") -> tuple[list, list, list, list]:
    """Per object: its shape class (or named colour), stem features, encoder features, pixel crop."""
    model = pipe.model
    labels, stem, enc, pixels = [], [], [], []
    for start in range(0, len(samples), batch):
        chunk = samples[start : start + batch]
        conds = pipe.with_patch_conditions({"rgb": [s["rgb"] for s in chunk]})
        inputs = encoder_inputs(model.config, {"rgb_pixels": given(pipe, "rgb_pixels", conds["rgb_pixels"])})
        tok, _ = model.embeddings.encoder_parts(inputs.tokens, inputs.modality, inputs.position, inputs.valid, inputs.patches, None)
        out = model.encode(inputs.tokens, inputs.modality, inputs.position, inputs.valid, inputs.patches, decoder_context=False)
        for i, s in enumerate(chunk):
            seg = np.asarray(s["semseg"])
            for c, weights in objects_of(seg):
                w = torch.as_tensor(weights, dtype=torch.float32)
                labels.append(c if label == "shape" else colour_of(np.asarray(s["rgb"]), seg, c))
                near = neighbourhood(weights)
                stem.append(torch.cat([w @ tok[i].float(), tok[i][near].float().reshape(-1)]))
                enc.append(torch.cat([w @ out[i].float(), out[i][near].float().reshape(-1)]))
                pixels.append(torch.from_numpy(crop(np.asarray(s["rgb"]), seg, c)))
    return labels, stem, enc, pixels


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--test", type=int, default=500)
    parser.add_argument("--label", choices=("shape", "colour"), default="shape", help="what the probes read")
    args = parser.parse_args()
    torch.manual_seed(0)
    pipe = load_eval_pipeline(args.model)
    split = {}
    for name, (start, num) in {"train": (0, args.train), "test": (args.train, args.test)}.items():
        labels, *feats = features(pipe, load_samples(None, num, "val", pipe, start=start), label=args.label)
        split[name] = (torch.tensor(labels), [torch.stack(f) for f in feats])
    (y_tr, f_tr), (y_te, f_te) = split["train"], split["test"]
    row = {"objects": [len(y_tr), len(y_te)], "chance": round(float(torch.bincount(y_te).max() / len(y_te)), 3)}
    dim = f_tr[0].shape[1] // 10  # [average, 3 x 3 patches] per object
    for k, name in enumerate(("stem", "encoder")):
        for part, cols in (("avg", slice(0, dim)), ("3x3", slice(dim, None))):
            row[f"{name}_{part}_linear"] = round(probe(f_tr[k][:, cols], y_tr, f_te[k][:, cols], y_te), 3)
            row[f"{name}_{part}_mlp"] = round(mlp_probe(f_tr[k][:, cols], y_tr, f_te[k][:, cols], y_te), 3)
    row["pixels_linear"] = round(probe(f_tr[2], y_tr, f_te[2], y_te), 3)
    row["pixels_mlp"] = round(mlp_probe(f_tr[2], y_tr, f_te[2], y_te), 3)
    row["pixels_cnn"] = round(cnn_probe(f_tr[2], y_tr, f_te[2], y_te), 3)
    print(json.dumps(row))


if __name__ == "__main__":
    main()
