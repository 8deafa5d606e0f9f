"""The one place every command-line writer claims its output (``--out``) before doing any work.

    with claim_output(args.out, "fourm-data world", inputs=[("--config", args.config)],
                      overwrite=args.overwrite) as out:
        ...write out (atomically)...

:func:`claim_output`

* always refuses an output that is, contains or lies inside one of the command's inputs (even with
  ``--overwrite``: replacing it would destroy the input);
* refuses an existing non-empty output that this command did not write, unless ``overwrite``.
  "Did it write it": the marker file :data:`MARKER` (``{"command": ...}``) that every claimed output
  folder gets when the command finishes, or, for outputs written before markers existed, a
  ``recognize(path)`` test of the command's own format. A re-run of the same command into its own
  output is allowed (``rerun=False`` refuses it too, e.g. ``generate.py``);
* takes a lock (:func:`output_lock`) for the duration of the work, so two writers never mix their
  results into one output; a lock whose holder process is dead (same host) is taken over;
* removes temporaries of earlier killed writers of that output
  (:func:`fourm.utils.atomic.clean_stale_temporaries`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from fourm.errors import FourmError
from fourm.utils.atomic import atomic_write_text, clean_stale_temporaries, host_id, pid_alive

MARKER = ".fourm-output.json"
PNG_KEY = "fourm-output"  # text chunk of the PNGs fourm writes (file outputs cannot hold a marker)

Inputs = Iterable[tuple[str, "str | os.PathLike | None"]]


def _resolve(path: str | os.PathLike) -> Path:
    return Path(path).expanduser().resolve()


def check_inputs(out: str | os.PathLike, inputs: Inputs, flag: str = "--out") -> None:
    """FourmError if ``out`` is, contains or lies inside one of ``inputs`` ((option, path) pairs)."""
    target = _resolve(out)
    for option, path in inputs:
        if path is None or str(path) == "":
            continue
        source = _resolve(path)
        if target == source:
            how = "is"
        elif source in target.parents:
            how = "lies inside"
        elif target in source.parents:
            how = "contains"
        else:
            continue
        raise FourmError(
            f"{flag} {out} {how} the input {option} {path}; choose another {flag} "
            "(--overwrite does not apply to inputs)"
        )


def written_by(out: str | os.PathLike) -> str | None:
    """The command named by the marker of output folder ``out`` (None: no readable marker)."""
    marker = Path(out) / MARKER
    try:
        command = json.loads(marker.read_text()).get("command")
    except (OSError, ValueError, AttributeError):
        return None
    return command if isinstance(command, str) else None


def png_written_by(path: str | os.PathLike) -> str | None:
    """The command recorded in a PNG written by fourm (None for any other file)."""
    try:
        from PIL import Image

        with Image.open(path) as img:
            value = img.info.get(PNG_KEY) if img.format == "PNG" else None
    except Exception:  # not an image, unreadable, ...
        return None
    return value if isinstance(value, str) else None


def png_info(command: str):
    """``pnginfo`` for ``Image.save`` that marks a PNG as written by ``command``."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text(PNG_KEY, command)
    return info


def check_existing(
    out: str | os.PathLike,
    command: str,
    overwrite: bool = False,
    recognize: Callable[[Path], bool] | None = None,
    rerun: bool = True,
    flag: str = "--out",
) -> None:
    """FourmError if ``out`` exists, is not empty and was not written by ``command`` (see the module
    docstring), unless ``overwrite``."""
    path = Path(out)
    if overwrite or not (path.exists() or path.is_symlink()):
        return
    if path.is_dir() and not path.is_symlink():
        if not any(path.iterdir()):
            return
        writer = written_by(path)
        ours = writer == command or (writer is None and recognize is not None and recognize(path))
        what = f"was written by {writer}" if writer not in (None, command) else f"was not written by {command}"
    else:
        writer = png_written_by(path)
        ours = writer == command or (writer is None and recognize is not None and recognize(path))
        what = f"is a file written by {writer}" if writer not in (None, command) else f"is a file not written by {command}"
    if ours and rerun:
        return
    if ours:
        what = "is not empty"
    raise FourmError(f"{flag} {out} already exists and {what}; choose another {flag} or pass --overwrite to replace it")


def write_marker(out: str | os.PathLike, command: str) -> None:
    """Record in output folder ``out`` that ``command`` wrote it."""
    atomic_write_text(Path(out) / MARKER, json.dumps({"command": command}) + "\n")


def lock_path(out: str | os.PathLike) -> Path:
    """The lock file of output ``out``: ``.<name>.lock`` beside it (``out`` itself may be replaced)."""
    out = Path(out)
    return out.parent / f".{out.name}.lock"


def _read_lock(lock: Path) -> dict | None:
    try:
        data = json.loads(lock.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@contextlib.contextmanager
def output_lock(out: str | os.PathLike, command: str, flag: str = "--out") -> Iterator[Path]:
    """Hold the lock of output ``out`` (a file ``.<name>.lock`` beside it naming pid, host and command).

    FourmError naming the holder if a live process holds it; a lock left by a dead process on this
    host is taken over. The lock is removed on exit."""
    lock = lock_path(out)
    lock.parent.mkdir(parents=True, exist_ok=True)
    mine = {"pid": os.getpid(), "host": host_id(), "hostname": socket.gethostname(), "command": command}
    text = json.dumps(mine) + "\n"
    for _ in range(5):
        staged = lock.with_name(f"{lock.name}.{os.getpid()}.new")
        staged.write_text(text)
        try:
            os.link(staged, lock)  # atomic create-if-absent, with the content already in place
            break
        except FileExistsError:
            holder = _read_lock(lock)
        finally:
            staged.unlink(missing_ok=True)
        if holder is None:  # unreadable: a writer from before locks had content, or a damaged file
            holder = {}
        pid, host = holder.get("pid"), holder.get("host")
        if isinstance(pid, int) and host == mine["host"] and not pid_alive(pid):
            lock.unlink(missing_ok=True)  # stale: its holder is gone
            continue
        who = f"pid {pid} on {holder.get('hostname', '?')}" if pid is not None else "an unknown process"
        raise FourmError(
            f"{flag} {out} is being written by {holder.get('command', 'another command')} ({who}); "
            f"wait for it to finish (lock file {lock}; delete it only if that process is gone)"
        )
    else:
        raise FourmError(f"could not take the lock {lock} of {flag} {out}")
    try:
        yield lock
    finally:
        if _read_lock(lock) == mine:
            lock.unlink(missing_ok=True)


@contextlib.contextmanager
def claim_output(
    out: str | os.PathLike,
    command: str,
    inputs: Inputs = (),
    overwrite: bool = False,
    recognize: Callable[[Path], bool] | None = None,
    rerun: bool = True,
    mark: bool = True,
    flag: str = "--out",
) -> Iterator[Path]:
    """Check ``out`` against the inputs and its current contents, lock it, clean stale temporaries,
    yield it; on success mark the output folder as written by ``command`` (see the module docstring)."""
    out = Path(out)
    check_inputs(out, inputs, flag)
    check_existing(out, command, overwrite, recognize, rerun, flag)
    with output_lock(out, command, flag):
        check_existing(out, command, overwrite, recognize, rerun, flag)  # written while we waited?
        clean_stale_temporaries(out)
        yield out
        if mark and out.is_dir():
            write_marker(out, command)


# ------------------------------------------------------------------ formats of outputs without a marker
def partial_path(out: str | os.PathLike) -> Path:
    """Where an interrupted run of a command writing ``out`` keeps its work: ``<out>.partial`` beside it."""
    out = Path(out)
    return out.with_name(out.name + ".partial")


def manifest_changes(old: dict, new: dict) -> list[str]:
    """What differs between two run manifests, in words (the keys of their ``inputs`` by name)."""
    changes = []
    for key in sorted(set(old) | set(new)):
        if key == "inputs":
            a, b = old.get(key) or {}, new.get(key) or {}
            changes += [name for name in sorted(set(a) | set(b)) if a.get(name) != b.get(name)]
        elif old.get(key) != new.get(key):
            changes.append(f"{key} ({old.get(key)!r} -> {new.get(key)!r})")
    return changes


def claim_partial(partial: Path, manifest: dict, start_over: bool = False, hint: str = "delete it to start over") -> None:
    """Make folder ``partial`` the home of the run that ``manifest`` (JSON-able settings and input
    fingerprints) describes, writing ``partial/manifest.json``. A leftover interrupted run with another
    manifest is refused, naming what changed, unless ``start_over`` (then its work is discarded)."""
    manifest_path = partial / "manifest.json"
    if manifest_path.exists():
        try:
            old = json.loads(manifest_path.read_text())
        except ValueError:
            old = {}
        old = old if isinstance(old, dict) else {}
        if old != manifest:
            if not start_over:
                changed = "; ".join(manifest_changes(old, manifest))
                raise FourmError(f"{partial} holds an interrupted run with other settings or inputs "
                                 f"(changed: {changed}); {hint}")  # fmt: skip
            shutil.rmtree(partial)
    partial.mkdir(parents=True, exist_ok=True)
    atomic_write_text(manifest_path, json.dumps(manifest))


@contextlib.contextmanager
def partial_run(out: str | os.PathLike, manifest: dict, start_over: bool = False,
                hint: str = "delete it or pass --overwrite to start over") -> Iterator[Path]:  # fmt: skip
    """:func:`claim_partial` on ``<out>.partial`` and yield it; removed when the work succeeds, and when
    it fails before saving anything there (only the manifest), so a refused run leaves nothing beside ``out``."""
    partial = partial_path(out)
    claim_partial(partial, manifest, start_over, hint)
    try:
        yield partial
    except BaseException:
        if {p.name for p in partial.iterdir()} <= {"manifest.json"}:
            shutil.rmtree(partial, ignore_errors=True)
        raise
    shutil.rmtree(partial, ignore_errors=True)


def is_raw_dataset(path: Path) -> bool:
    return (path / "fourm_dataset.json").is_file() and (path / "dataset_dict.json").is_file()


def raw_dataset_source(path: Path) -> str:
    """The ``source`` recorded in a raw dataset's fourm_dataset.json ('' when unreadable)."""
    try:
        source = json.loads((path / "fourm_dataset.json").read_text(encoding="utf-8")).get("source", "")
    except (OSError, ValueError, AttributeError):
        return ""
    return source if isinstance(source, str) else ""


def is_token_dataset(path: Path) -> bool:
    return (path / "fourm_tokens.json").is_file()


def is_saved_model(path: Path) -> bool:
    """A ``save_pretrained`` directory (config.json + weights or tokenizer.json)."""
    return (path / "config.json").is_file() and any(
        (path / f).is_file() for f in ("model.safetensors", "tokenizer.json")
    )


def is_run_dir(path: Path) -> bool:
    return (path / "config.json").is_file() and any(
        (path / f).exists() for f in ("checkpoints", "metrics.csv", "model")
    )


def is_trained_tokenizer(path: Path) -> bool:
    """The output of ``fourm-tokenizer train`` (image tokenizer training: metrics, final or last tokenizer)."""
    return (path / "metrics.json").is_file() or (path / "tokenizer").is_dir() or (path / "last").is_dir()


def is_model_bundle(path: Path) -> bool:
    """The output of ``fourm-bundle``: ``modalities.json`` and a ``model/`` directory."""
    return (path / "modalities.json").is_file() and (path / "model").is_dir()
