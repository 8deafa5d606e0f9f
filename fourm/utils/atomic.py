"""Atomic writes: write to a temporary sibling, then rename, so readers never see half a file.

Temporary names record their owner: ``.NAME.p<pid>@<host>.<random>.tmp`` (and ``.old`` for the
previous contents being removed). A writer that is killed leaves its temporary behind; the next
atomic write next to it removes the ones whose owner process is dead (same host only), and keeps
the others (:func:`clean_stale_temporaries`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

_STALE = re.compile(r"^\.(?P<name>.+)\.p(?P<pid>\d+)@(?P<host>[0-9a-f]{8})\.[^.]+\.(?:tmp|old)$")


def host_id() -> str:
    """8 hex digits naming this machine (temporary names and locks are only judged on their host)."""
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (True when we may not signal it)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _prefix(path: Path) -> str:
    return f".{path.name}.p{os.getpid()}@{host_id()}."


def clean_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporaries of ``path`` (``.NAME.p<pid>@<host>.*.tmp|.old`` beside it) whose owner
    process is dead on this host; returns what was removed. Live owners and other hosts are kept."""
    path = Path(path)
    removed: list[Path] = []
    if not path.parent.is_dir():
        return removed
    me = host_id()
    for entry in path.parent.iterdir():
        m = _STALE.match(entry.name)
        if not m or m["name"] != path.name or m["host"] != me or pid_alive(int(m["pid"])):
            continue
        if entry.name.endswith(".old") and (entry / "x").exists() and not path.exists():
            os.replace(entry / "x", path)  # killed between moving the old contents aside and the rename
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def _umask() -> int:
    """The process umask (read from /proc where possible: setting it to read it races with threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary file path next to ``path``; on success it is renamed onto ``path``.

    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=_prefix(path), suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes 0600 and a writer may recreate the file: set the mode the umask gives a plain file
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a fresh temporary directory next to ``path``; on success it replaces ``path``.

    An existing ``path`` is only removed after the new directory is complete (it is first moved
    aside, then deleted), so a crash mid-way never loses the old contents.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists")
    clean_stale_temporaries(path)
    tmp = Path(tempfile.mkdtemp(prefix=_prefix(path), suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; a plain directory honours the umask
    try:
        yield tmp
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=_prefix(path), suffix=".old", dir=path.parent))
            os.replace(path, old / "x")
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
