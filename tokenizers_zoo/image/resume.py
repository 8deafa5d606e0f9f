"""The state an interrupted tokenizer training resumes from: ``<out>/resume/``.

    resume/manifest.json     what the run is (config, step and time budget, data and init digests)
    resume/state.pt          step, tokenizer, optimizer, batch and flip samplers, the run's log and
                             the main process's RNG states (fourm.utils.loop_state: written last, atomically)
    resume/rng_rank<r>.pt    {"step", "rng"}: the RNG states of process r > 0

Saved every ``train.save_every`` steps and at every evaluation; removed when the run finishes. A
resume restores everything a step depends on, so on one process the run ends with the weights and
losses of an uninterrupted one (with ``max_minutes`` the schedules follow the wall time, saved too,
and are only as exact as the clock).

    manifest = run_manifest(cfg, total_steps, budget_s, [train_arrays, val_arrays], init)
    step = load_resume(out, manifest, start_over, setup, rng, flip_gen, log, seed)   # 0: nothing saved
    ...
    save_resume(out, setup, step, rng, flip_gen, log)        # every train.save_every steps
    finish_resume(out, setup.accelerator)                    # the run is complete
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from fourm.errors import FourmError
from fourm.utils.atomic import atomic_path
from fourm.utils.loop_state import LoopState, load_loop_state, save_loop_state
from fourm.utils.outputs import claim_partial
from fourm.utils.rng import rng_state, set_rng_state

RESUME_DIR = "resume"


def array_digest(arrays: list[np.ndarray | None]) -> str:
    """A content hash of the training and evaluation arrays (dtype, shape and bytes of each)."""
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none\0")
            continue
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype}{a.shape}\0".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()[:16]


def run_manifest(cfg, total_steps: int, budget_s: float | None, arrays: list[np.ndarray | None], init) -> dict:
    """What a resumed run must share with the interrupted one (JSON-able)."""
    init_digest = None
    if init is not None:
        h = hashlib.sha256()
        for name, value in sorted(init.state_dict().items()):
            h.update(name.encode() + b"\0" + value.detach().cpu().contiguous().numpy().tobytes())
        init_digest = h.hexdigest()[:16]
    return {"config": resume_config(cfg), "steps": total_steps, "max_seconds": budget_s,
            "inputs": {"data": array_digest(arrays), "init": init_digest}}  # fmt: skip


def resume_config(cfg) -> dict:
    """``cfg`` as a resumed run must match it: all of it but how often the state is saved."""
    data = json.loads(json.dumps(cfg.to_dict()))
    data.get("train", {}).pop("save_every", None)
    return data


def save_resume(out: Path, setup, step: int, rng: np.random.Generator, flip_gen: torch.Generator, log) -> None:
    """Write ``out/resume/`` at ``step`` (every process calls it: each saves its RNG states). ``setup``:
    the trainer's ``TrainingSetup``; ``rng`` / ``flip_gen``: the batch and flip samplers; ``log``: its
    ``TrainingLog`` (losses, evaluations, best row, start time)."""
    folder = Path(out) / RESUME_DIR
    accelerator = setup.accelerator
    rank = accelerator.process_index
    if rank > 0:
        with atomic_path(folder / f"rng_rank{rank}.pt") as tmp:
            torch.save({"step": step, "rng": rng_state()}, tmp)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:  # the shared state, with the main process's RNGs
        extra = {"sampler": rng.bit_generator.state, "flips": flip_gen.get_state(), "history": log.history,
                 "best": log.best}  # fmt: skip
        loop = LoopState(step, log.losses, time.monotonic() - log.t0, extra)
        save_loop_state(folder / "state.pt", loop, {"tokenizer": setup.tokenizer}, setup.optimizer)
    accelerator.wait_for_everyone()


def load_resume(out: Path, manifest: dict, start_over: bool, setup, rng: np.random.Generator,
                flip_gen: torch.Generator, log, seed: int) -> int:  # fmt: skip
    """Claim ``out/resume/`` for the run ``manifest`` describes (a leftover of another run is refused,
    naming what changed, unless ``start_over``) and restore its saved state into ``setup`` (tokenizer,
    optimizer), the samplers, ``log`` and this process's RNGs -> the step to continue from (0: none saved)."""
    folder = Path(out) / RESUME_DIR
    accelerator = setup.accelerator
    if accelerator.is_main_process:
        claim_partial(folder, manifest, start_over, hint="pass --overwrite to start over")
    accelerator.wait_for_everyone()
    try:
        loop = load_loop_state(folder / "state.pt", {"tokenizer": setup.tokenizer}, setup.optimizer)
        if loop is None:
            return 0
        rng.bit_generator.state = loop.extra["sampler"]
        flip_gen.set_state(loop.extra["flips"])
        log.history, log.best = loop.extra["history"], loop.extra["best"]
    except FourmError as e:
        raise FourmError(f"{e} (pass --overwrite to start over)") from e
    except (KeyError, ValueError, TypeError, RuntimeError) as e:
        raise FourmError(f"cannot resume from {folder / 'state.pt'}: {str(e).splitlines()[0]} "
                         "(pass --overwrite to start over)") from e  # fmt: skip
    log.losses, log.t0 = loop.losses, time.monotonic() - loop.elapsed
    if accelerator.process_index > 0:  # load_loop_state restored the main process's RNGs
        _restore_rank_rng(folder, loop.step, accelerator.process_index, seed)
    return loop.step


def _restore_rank_rng(folder: Path, step: int, rank: int, seed: int) -> None:
    path = folder / f"rng_rank{rank}.pt"
    saved = torch.load(path, map_location="cpu", weights_only=True) if path.exists() else None
    if saved is not None and int(saved["step"]) == step:
        set_rng_state(saved["rng"])
    else:  # more processes than when saved: a fresh stream per (seed, rank, step)
        torch.manual_seed(seed * 1_000_003 + rank * 7919 + step)
        np.random.seed((seed * 1_000_003 + rank * 7919 + step) % (2**32))


def finish_resume(out: Path, accelerator) -> None:
    """The run is complete: its resume state goes."""
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        shutil.rmtree(Path(out) / RESUME_DIR, ignore_errors=True)
