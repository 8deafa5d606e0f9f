"""Crash test: real CLI runs killed with SIGKILL at random points, then resumed (or redone), end bit-identical
to an uninterrupted run.

* ``fourm-data world``: killed mid-render and again while replacing its own earlier output (the old dataset
  must survive every kill); the re-run redoes it.
* ``fourm-data tokenize``: killed at random points and while the final dataset is being written; the
  re-run resumes from ``<out>.partial/`` (the final run must have resumed shards).
* ``train.py --resume auto`` (checkpoint_every=1, dropout, grad_accum 2, epochs of 6 steps): killed at
  random points, while a checkpoint is being written and while the final ``model/`` is being saved; the
  weights, optimizer, scheduler and RNG states, the per-step metrics and the validation losses must equal
  those of a straight run.
* the same under DeepSpeed ZeRO-2 (``accelerate launch``, 2 CPU processes, every rank killed) when
  ``deepspeed`` imports.

The kill points come from a seeded RNG (:data:`SEED`): a random point into the work (counted in
checkpoints / shards on disk where there are some, so that a loaded machine moves the points with the
work), the moment an atomic write is under way (a temporary ``.NAME.p<pid>@<host>.*.tmp|.old`` of
:mod:`fourm.utils.atomic` appears in a watched folder; counted as "while writing" only if the kill left
it behind), and a random time during start-up. Each run prints one line: its kills, the outputs being
written at each and the progress on disk before and after each.

Slow: ``pytest -m slow tests/robustness/test_kill_resume.py -s`` (about 80 s on 2 idle cores, 45 s more
with DeepSpeed).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SEED = 1717  # of the kill points
RUN_TIMEOUT = 240  # seconds one command may take before the test gives up on it
ENV = {
    **os.environ,
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "TQDM_DISABLE": "1",
    "CUDA_VISIBLE_DEVICES": "",  # CPU: bit-identical kernels from run to run
    "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p),
    "PYTHONUNBUFFERED": "1",
}


# ------------------------------------------------------------------------------------------- running, killing
def temporaries(folder: Path, prefix: str = "") -> set[str]:
    """Names of the atomic-write temporaries in ``folder`` (``.NAME.p<pid>@<host>.<rand>.tmp|.old``)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return set()
    return {
        n
        for n in names
        if n.startswith("." + prefix) and ".p" in n and "@" in n and n.endswith((".tmp", ".old"))
    }


Watch = list[tuple[Path, str]]  # (folder, name prefix of the temporaries that count)


def _all_temporaries(watch: Watch) -> set[tuple[Path, str]]:
    return {(folder, name) for folder, prefix in watch for name in temporaries(folder, prefix)}


@dataclass
class Outcome:
    killed: bool
    seconds: float
    first_write: float | None = None  # seconds until the first temporary appeared (None: none seen)
    left: set = field(default_factory=set)  # temporaries the kill left behind
    log: str = ""
    progress: tuple[int, int] | None = None  # progress (checkpoints, shards) at the start and at the end

    @property
    def during_write(self) -> bool:
        return bool(self.left)


def run(
    cmd: list[str],
    log: Path,
    *,
    watch: Watch = (),
    delay: float | None = None,
    after_write: bool = False,
    skip: int | None = None,
    progress: Callable[[], int] | None = None,
    at: int | None = None,
    then: float = 0.0,
) -> Outcome:
    """Run ``cmd`` (own process group, output to ``log``) and SIGKILL it and every process it started at
    the first of these points (none given: it runs to the end and must exit 0):

    * ``delay`` seconds after the start (after the first new temporary in ``watch`` with ``after_write``);
    * the moment the ``skip``-th new temporary (0-based) appears in ``watch`` (a write under way);
    * ``then`` seconds after ``progress()`` (checkpoints or shards on disk) reached ``at`` (at the latest
      when it passes ``at``: a faster run than the reference still stops within the unit after ``at``).
    """
    stale = _all_temporaries(watch)  # of earlier killed runs: not this run's writes
    begin_progress = progress() if progress is not None else 0
    with open(log, "w") as out:
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=ENV, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        start = time.monotonic()
        seen: set = set()
        first_write = reached = None
        # a write-targeted kill busy-polls (a small checkpoint is written within a millisecond or two)
        poll = 0.0 if skip is not None else 0.0005 if watch or progress else 0.01
        while proc.poll() is None:
            now = time.monotonic() - start
            if now > RUN_TIMEOUT:
                _kill(proc)
                raise AssertionError(
                    f"{' '.join(cmd)} ran for more than {RUN_TIMEOUT} s:\n{log.read_text()[-3000:]}"
                )
            new = _all_temporaries(watch) - stale - seen if watch else set()
            if new and first_write is None:
                first_write = now
            done = progress() if at is not None else 0
            if at is not None and reached is None and done >= at:
                reached = now
            due = (
                (delay is not None and not after_write and now >= delay)
                or (
                    delay is not None
                    and after_write
                    and first_write is not None
                    and now - first_write >= delay
                )
                or (skip is not None and len(seen) + len(new) > skip)
                or (reached is not None and (now - reached >= then or done > at))  # at the latest: next unit
            )
            if due:
                _kill(proc)
                left = _all_temporaries(watch) - stale
                end_progress = progress() if progress is not None else 0
                return Outcome(True, time.monotonic() - start, first_write, left, log.read_text(),
                               (begin_progress, end_progress))  # fmt: skip
            seen |= new
            time.sleep(poll)
    text = log.read_text()
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}:\n{text[-4000:]}"
    end_progress = progress() if progress is not None else 0
    return Outcome(False, time.monotonic() - start, first_write, set(), text, (begin_progress, end_progress))


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc): launchers such as torchrun start ranks in new sessions."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _kill(proc: subprocess.Popen) -> None:
    """SIGKILL the command and every process it started, all at once (as a machine failure would)."""
    tree = _descendants(proc.pid)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for pid in tree:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


@dataclass
class KillPlan:
    """Kill points of one command, in turn: a random point into its work, the moment one of its atomic
    writes is under way, and a random time during start-up (imports, checks).

    With ``progress`` (units of work on disk: checkpoints, shards) the first two are counted in units
    from where the run starts, at most ``jump`` units on, so that a loaded machine (slower runs) moves
    the kill points with the work and a series of kills cannot run past the end; without it they are
    times measured on the uninterrupted ``reference`` run."""

    rng: random.Random
    reference: Outcome  # an uninterrupted run: how long start-up and the work take
    kills: int
    progress: Callable[[], int] | None = None
    units: int = 1  # units of work of a whole run
    jump: int = 1  # most units a killed run may complete
    writes_per_unit: int = 1  # temporaries per unit of work

    def point(self, i: int, kind: int | None = None) -> dict:
        """Keyword arguments of :func:`run` for the ``i``-th kill (``kind``: 0 work, 1 write, 2 start-up)."""
        begin = self.reference.first_write or 0.0
        work = max(self.reference.seconds - begin, 0.2)
        kind = i % 3 if kind is None else kind
        if self.progress is None:
            return [
                {"delay": self.rng.uniform(0.0, 0.25 * work), "after_write": True},
                {"skip": 0},
                {"delay": self.rng.uniform(0.3, 1.0) * begin},
            ][kind]
        now = self.progress()
        unit = work / max(self.units, 1)  # seconds per unit, on the reference run
        fallback = {"progress": self.progress, "at": now + self.jump, "then": 0.0}  # never past this
        if kind == 0:
            return {"progress": self.progress, "at": now + self.rng.randint(1, self.jump),
                    "then": self.rng.uniform(0.0, unit)}  # fmt: skip
        if kind == 1:
            return {"skip": self.rng.randrange(self.writes_per_unit * self.jump), **fallback}
        return {"delay": self.rng.uniform(0.3, 1.0) * begin, **fallback}


def kill_repeatedly(
    cmd: list[str] | Callable[[int], list[str]],
    logs: Path,
    plan: KillPlan,
    watch: Watch,
    after_kill: Callable[[Outcome], None] | None = None,
    stop_when_done: bool = True,
) -> list[Outcome]:
    """Run ``cmd`` (or ``cmd(i)`` for the i-th run) ``plan.kills`` times, killing it at ``plan.point(i)``,
    calling ``after_kill`` after each kill. A run that completes before its kill point ends the series,
    unless ``not stop_when_done`` (commands whose re-run redoes the work: the later kills hit a re-run)."""
    outcomes = []
    for i in range(plan.kills):
        outcome = run(cmd(i) if callable(cmd) else cmd, logs / f"kill{i}.log", watch=watch, **plan.point(i))
        outcomes.append(outcome)
        if not outcome.killed and stop_when_done:
            break
        if outcome.killed and after_kill is not None:
            after_kill(outcome)
    return outcomes


# ------------------------------------------------------------------------------------------- comparing
def dataset_digest(path: Path) -> dict[str, str]:
    """sha256 of every file of a (raw or token) dataset folder. ``state.json``'s ``_fingerprint`` is a random
    id that ``datasets`` draws on every save, and the output marker is not data: both are left out."""
    digest = {}
    for p in sorted(path.rglob("*")):
        if not p.is_file() or p.name == ".fourm-output.json":
            continue
        data = p.read_bytes()
        if p.name == "state.json":
            state = json.loads(data)
            state.pop("_fingerprint", None)
            data = json.dumps(state, sort_keys=True).encode()
        digest[str(p.relative_to(path))] = hashlib.sha256(data).hexdigest()
    return digest


def safetensors_digest(path: Path) -> str:
    """sha256 of a safetensors file with its JSON header in canonical key order: every byte of every
    tensor, the dtypes, shapes and offsets, and the metadata. (safetensors writes the ``__metadata__``
    entries in a random order on each save, so two saves of the same weights differ in a few header bytes.)"""
    data = path.read_bytes()
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    return hashlib.sha256(json.dumps(header, sort_keys=True).encode() + b"\0" + data[8 + size :]).hexdigest()


def _csv_rows(path: Path, drop: tuple[str, ...] = ()) -> list[dict[str, str]]:
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    return [{k: v for k, v in row.items() if k not in drop} for row in rows]


def run_digest(run_dir: Path) -> dict:
    """What a finished training run must reproduce bit for bit: the saved model, the last checkpoint
    (weights, optimizer / ZeRO state, scheduler, RNG, trainer state but its wall time), the per-step
    metrics (all but throughput) and the validation losses."""
    import torch

    ckpt = run_dir / "checkpoints" / (run_dir / "checkpoints" / "latest").read_text().strip()
    state = json.loads((ckpt / "trainer_state.json").read_text())
    state.pop("elapsed_seconds", None)
    out = {
        "model": safetensors_digest(run_dir / "model" / "model.safetensors"),
        "model_config": (run_dir / "model" / "config.json").read_text(),
        "checkpoint": ckpt.name,
        "checkpoint_model": safetensors_digest(ckpt / "model" / "model.safetensors"),
        "trainer_state": state,
        "metrics": _csv_rows(run_dir / "metrics.csv", drop=("tokens_per_s",)),
        "val": _csv_rows(run_dir / "val.csv"),
    }
    for name in ("optimizer.pt", "scheduler.pt", "rng_rank0.pt", "rng_rank1.pt"):
        if (ckpt / name).is_file():
            out[name] = _tensor_digest(torch.load(ckpt / name, weights_only=True))
    if (ckpt / "deepspeed").is_dir():  # ZeRO partitions: every tensor of every file
        for p in sorted((ckpt / "deepspeed").rglob("*.pt")):
            out[f"deepspeed/{p.relative_to(ckpt / 'deepspeed')}"] = _tensor_digest(
                torch.load(p, weights_only=False)
            )
    return out


def _tensor_digest(obj) -> str:
    """Digest of a nested structure of tensors, numbers and strings (tensor bytes, not pickles)."""
    import numpy as np
    import torch

    h = hashlib.sha256()

    def visit(x) -> None:
        if isinstance(x, torch.Tensor):
            h.update(f"T{x.dtype}{tuple(x.shape)}".encode())
            h.update(
                x.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
                if x.numel()
                else b""
            )
        elif isinstance(x, np.ndarray):
            h.update(f"A{x.dtype}{x.shape}".encode() + np.ascontiguousarray(x).tobytes())
        elif isinstance(x, dict):
            for k in sorted(x, key=repr):
                h.update(f"K{k!r}".encode())
                visit(x[k])
        elif isinstance(x, (list, tuple)):
            h.update(f"L{len(x)}".encode())
            for v in x:
                visit(v)
        elif x is None or isinstance(x, (bool, int, float, str, bytes)):
            h.update(f"V{x!r}".encode())
        elif hasattr(x, "__dict__"):  # e.g. DeepSpeed's loss scaler: its fields, not its address
            h.update(f"O{type(x).__qualname__}".encode())
            visit(vars(x))
        else:
            h.update(f"O{type(x).__qualname__}".encode())

    visit(obj)
    return h.hexdigest()


def assert_clean(folder: Path) -> None:
    """No temporaries and no lock left beside or inside an output after a completed run."""
    left = sorted(temporaries(folder.parent) | temporaries(folder)) if folder.exists() else []
    assert not left, f"temporaries left after a completed run: {left}"
    assert not (folder.parent / f".{folder.name}.lock").exists(), "lock left after a completed run"


def _written(left: set) -> set[str]:
    """The outputs being written, from the names of the temporaries a kill left."""
    return {
        name[1:].split(".p")[0] + (" (old contents aside)" if name.endswith(".old") else "")
        for _, name in left
    }


def report(name: str, outcomes: list[Outcome]) -> str:
    kills = [o for o in outcomes if o.killed]
    writes = sum(o.during_write for o in kills)
    points = [
        f"{o.seconds:.2f}s" + (f" (writing {', '.join(sorted(_written(o.left)))})" if o.left else "")
        for o in kills
    ]
    line = f"{name}: {len(kills)} kills, {writes} while writing: " + "; ".join(points)
    if any(o.progress and o.progress != (0, 0) for o in kills):  # units of work on disk before -> after each
        line += " | progress " + ", ".join(f"{o.progress[0]}->{o.progress[1]}" for o in kills if o.progress)
    print(line)
    return line


# ------------------------------------------------------------------------------------------- fourm-data world
def world_cmd(out: Path, num: int) -> list[str]:
    return [sys.executable, "-m", "fourm.cli.data", "world", "--out", str(out), "--num", str(num), "--size", "32",
            "--seed", "3", "--workers", "2"]  # fmt: skip


def test_world_killed_and_rerun_is_identical(tmp_path):
    rng = random.Random(SEED)
    num = 1500
    ref = run(world_cmd(tmp_path / "ref" / "w", num), tmp_path / "ref.log", watch=[(tmp_path / "ref", "w.")])
    expected = dataset_digest(tmp_path / "ref" / "w")

    out = tmp_path / "runs" / "w"
    out.parent.mkdir()
    plan = KillPlan(rng, ref, kills=4)

    def nothing_partial(outcome: Outcome) -> None:  # no dataset, or the complete one of an earlier run
        assert not out.exists() or dataset_digest(out) == expected, f"a killed run left a partial {out}"

    outcomes = kill_repeatedly(
        world_cmd(out, num), tmp_path, plan, [(out.parent, "w.")], nothing_partial, False
    )
    assert any(o.killed for o in outcomes), "no run of fourm-data world was killed"
    run(world_cmd(out, num), tmp_path / "final.log")
    assert dataset_digest(out) == expected
    assert_clean(out)

    # a re-run into its own output, killed while rendering and while swapping the old dataset out: the
    # complete old dataset is there after every kill, and the next run still produces the same
    swaps = []
    for i in range(3):
        point = {"delay": rng.uniform(0.1, 0.9) * ref.seconds} if i == 0 else {"skip": 0 if i == 1 else 1}
        # skip 0: the new dataset's temporary folder; skip 1: the ".old" folder the old dataset is moved into
        outcome = run(world_cmd(out, num), tmp_path / f"replace{i}.log", watch=[(out.parent, "w.")], **point)
        swaps.append(outcome)
        if out.is_dir():  # the old dataset untouched (or, killed after the swap, the new one complete)
            assert dataset_digest(out) == expected
        else:  # killed between moving the old dataset aside and renaming the new one: the old one is intact
            aside = [folder / name / "x" for folder, name in outcome.left if name.endswith(".old")]
            assert aside and dataset_digest(aside[0]) == expected, (
                f"the old dataset was lost ({outcome.left})"
            )
        run(world_cmd(out, num), tmp_path / f"replace{i}_final.log")
        assert dataset_digest(out) == expected
        assert_clean(out)
    report("fourm-data world", outcomes + swaps)


# ------------------------------------------------------------------------------------------- fourm-data tokenize
@pytest.fixture(scope="module")
def raw_world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("kill_raw") / "w"
    cmd = [sys.executable, "-m", "fourm.cli.data", "world", "--out", str(out), "--num", "192", "--size", "64",
           "--workers", "0"]  # fmt: skip
    run(cmd, out.parent / "world.log")
    return out


@pytest.fixture(scope="module")
def tokenizer_root(tmp_path_factory) -> Path:
    """A snapshot of the default bundle's rgb and text tokenizers and of the modality registry: the
    resume guard rightly refuses to resume when they change, and the repository's copies may be rebuilt
    while this test runs."""
    import shutil

    source = REPO / "models" / "world-default" / "tokenizers"
    if not (source / "rgb" / "model.safetensors").is_file() or not (source / "text").is_dir():
        pytest.skip(
            "models/world-default has no rgb / text tokenizer (scripts/build_default_model.sh builds them)"
        )
    root = tmp_path_factory.mktemp("kill_tokenizers")
    for name in ("rgb", "text"):
        shutil.copytree(source / name, root / "tokenizers" / name)
    (root / "modalities").mkdir()
    for spec in (REPO / "configs" / "modalities").glob("*.yaml"):
        shutil.copy(spec, root / "modalities" / spec.name)
    return root


def tokenize_cmd(raw: Path, out: Path, root: Path) -> list[str]:
    return [sys.executable, "-m", "fourm.cli.data", "tokenize", "--data", str(raw), "--out", str(out),
            "--modalities", "rgb,caption", "--registry", str(root / "modalities"), "--tokenizer-root", str(root),
            "--shard-size", "16", "--batch-size", "8", "--precision", "fp32"]  # fmt: skip


def test_tokenize_killed_and_resumed_is_identical(raw_world, tokenizer_root, tmp_path):
    rng = random.Random(SEED + 1)
    ref_out = tmp_path / "ref" / "t"
    ref = run(
        tokenize_cmd(raw_world, ref_out, tokenizer_root),
        tmp_path / "ref.log",
        watch=[(tmp_path / "ref" / "t.partial" / "train", ""), (tmp_path / "ref", "t.")],
    )
    expected = dataset_digest(ref_out)
    counts = json.loads((raw_world / "fourm_dataset.json").read_text())["counts"]
    shards = sum(-(-n // 16) for n in counts.values())  # shards of 16 samples, train and val

    out = tmp_path / "runs" / "t"
    out.parent.mkdir()
    watch = [
        (out.parent / "t.partial" / "train", ""),
        (out.parent / "t.partial" / "val", ""),
        (out.parent, "t."),
    ]
    partial = out.parent / "t.partial"

    def shards_on_disk() -> int:
        return sum(len(list((partial / split).glob("shard_*.jsonl"))) for split in ("train", "val"))

    kills = 6
    plan = KillPlan(rng, ref, kills, shards_on_disk, units=shards, jump=max(1, shards // (kills + 2)))

    def nothing_partial(outcome: Outcome) -> None:  # no dataset, or the complete one of an earlier run
        assert not out.exists() or dataset_digest(out) == expected, f"a killed run left a partial {out}"

    outcomes = kill_repeatedly(
        tokenize_cmd(raw_world, out, tokenizer_root), tmp_path, plan, watch, nothing_partial, False
    )
    # and once while the final dataset is assembled from the shards
    outcomes.append(
        run(
            tokenize_cmd(raw_world, out, tokenizer_root),
            tmp_path / "assemble.log",
            watch=[(out.parent, "t.")],
            skip=0,
        )
    )
    nothing_partial(outcomes[-1])
    kills = [o for o in outcomes if o.killed]
    assert len(kills) >= 3, report("fourm-data tokenize", outcomes)
    final = run(tokenize_cmd(raw_world, out, tokenizer_root), tmp_path / "final.log")
    resumed = re.search(r"(\d+) resumed", final.log)
    assert resumed and int(resumed[1]) > 0, f"the final run resumed no shard:\n{final.log[-2000:]}"
    assert dataset_digest(out) == expected
    assert not (out.parent / "t.partial").exists()
    assert_clean(out)
    report("fourm-data tokenize", outcomes)


# ------------------------------------------------------------------------------------------- train.py
@pytest.fixture(scope="module")
def token_data(tmp_path_factory) -> Path:
    from fourm.training.synthetic import write_synthetic_tokens

    return write_synthetic_tokens(
        tmp_path_factory.mktemp("kill_tokens") / "syn", num_train=48, num_val=8, seed=1
    )


def train_yaml(token_data: Path, path: Path, **changes) -> Path:
    """A tiny fp32 run with dropout (the restored RNG matters), a checkpoint every step and evaluations."""
    config = {
        "data": {"datasets": [{"path": str(token_data)}]},
        "model": {"preset": "tiny", "overrides": {"dim": 32, "enc_depth": 1, "dec_depth": 1, "num_heads": 2,
                                                   "dropout": 0.1}},
        "masking": {"input_budget": 16, "target_budget": 16},
        "optim": {"lr": 3.0e-3, "min_lr": 1.0e-4, "warmup_steps": 2},
        "batch_size": 4,
        "grad_accum": 2,
        "steps": 60,
        "precision": "fp32",
        "log_every": 1,
        "eval_every": 5,
        "checkpoint_every": 1,
        "keep_checkpoints": 2,
        "tensorboard": False,
        "num_workers": 0,
        "seed": 0,
        **changes,
    }  # fmt: skip
    path.write_text(yaml.safe_dump(config))
    return path


def train_watch(run_dir: Path) -> Watch:
    return [(run_dir / "checkpoints", ""), (run_dir, "model.")]


def _train_kill_test(
    token_data: Path, tmp_path: Path, launcher: list[str], name: str, kills: int, seed: int, **changes
) -> None:
    rng = random.Random(seed)
    config = train_yaml(token_data, tmp_path / "train.yaml", **changes)
    steps = changes.get("steps", 60)

    def cmd(run_dir: Path, *extra: str) -> list[str]:
        launch = [*launcher, "--main_process_port", str(free_port())] if launcher else [sys.executable]
        return [*launch, str(REPO / "train.py"), "--config", str(config), "--out", str(run_dir), *extra]

    ref_dir = tmp_path / "ref" / "run"
    ref = run(cmd(ref_dir), tmp_path / "ref.log", watch=train_watch(ref_dir))
    expected = run_digest(ref_dir)
    assert expected["checkpoint"] == f"step_{steps:08d}"

    run_dir = tmp_path / "runs" / "run"

    def latest_step() -> int:  # checkpoints on disk: the step the ``latest`` pointer names
        try:
            return int((run_dir / "checkpoints" / "latest").read_text().strip().split("_")[-1])
        except (OSError, ValueError):
            return 0

    # at most `jump` steps a kill: the plan and the retries below end before the last step
    plan = KillPlan(
        rng, ref, kills, latest_step, units=steps, jump=max(1, steps // (kills + 6)), writes_per_unit=2
    )

    def resumed_cmd(i: int = 1) -> list[str]:  # a fresh run first, then resumes
        return cmd(run_dir, "--resume", "auto") if i else cmd(run_dir)

    outcomes = kill_repeatedly(resumed_cmd, tmp_path, plan, train_watch(run_dir))
    for retry in range(6):  # a loaded machine may delay the killer past short writes: try again
        if any(o.during_write for o in outcomes) or not outcomes[-1].killed:
            break
        outcomes.append(run(resumed_cmd(), tmp_path / f"retry{retry}.log", watch=train_watch(run_dir),
                            **plan.point(0, kind=1)))  # fmt: skip
    # and once while the final model/ is being saved
    outcomes.append(run(resumed_cmd(), tmp_path / "final_save.log", watch=[(run_dir, "model.")], skip=0))
    final = run(resumed_cmd(), tmp_path / "final.log")
    assert "done:" in final.log, final.log[-2000:]
    kills = [o for o in outcomes if o.killed]
    line = report(name, outcomes)
    assert len(kills) >= 3, line
    assert any(o.during_write for o in kills), (
        f"no kill landed while a checkpoint or the model was written: {line}"
    )
    got = run_digest(run_dir)
    for key in expected:
        assert got.get(key) == expected[key], f"{key} differs after {len(kills)} kills and resumes ({line})"
    assert got.keys() == expected.keys()
    assert got["model"] == got["checkpoint_model"]  # the saved model is the last checkpoint's
    assert_clean(run_dir)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_train_killed_and_resumed_is_identical(token_data, tmp_path):
    _train_kill_test(token_data, tmp_path, [], "train.py", kills=8, seed=SEED + 2)


def test_deepspeed_zero2_train_killed_and_resumed_is_identical(token_data, tmp_path):
    try:
        import deepspeed  # noqa: F401
    except Exception as e:  # ImportError, or a broken install failing at import
        pytest.skip(f"DeepSpeed ZeRO-2 variant needs `import deepspeed` (pip install -e '.[deepspeed]'): {e}")
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                str(REPO / "configs" / "accelerate" / "deepspeed_zero2.yaml")]  # fmt: skip
    # 2 processes (ranks started by torchrun in sessions of their own: every one is killed), a checkpoint
    # (ZeRO partitions of both ranks) every step; fewer kills, as DeepSpeed start-up takes ~10 s
    _train_kill_test(
        token_data,
        tmp_path,
        launcher,
        "train.py under DeepSpeed ZeRO-2",
        kills=6,
        seed=SEED + 3,
        steps=40,
        batch_size=2,
        eval_every=8,
    )
