"""fourm.utils.outputs / atomic: inputs never overwritten, foreign outputs refused, locks, stale temporaries."""

from __future__ import annotations

import json
import socket

import pytest

from fourm.errors import FourmError
from fourm.utils.atomic import atomic_dir, atomic_path, host_id
from fourm.utils.outputs import (
    MARKER,
    claim_output,
    claim_partial,
    lock_path,
    output_lock,
    partial_path,
    partial_run,
)


@pytest.mark.parametrize("where", ["same", "inside", "contains"])
def test_out_overlapping_an_input_is_refused_even_with_overwrite(tmp_path, where):
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    out = {"same": data, "inside": data / "sub" / "out", "contains": tmp_path}[where]
    how = {"same": "is", "inside": "lies inside", "contains": "contains"}[where]
    with pytest.raises(FourmError, match=f"--out .* {how} the input --data") as info:
        with claim_output(out, "cmd", [("--data", data)], overwrite=True):
            pytest.fail("claimed an input")
    assert "\n" not in str(info.value)


def test_foreign_output_refused_own_accepted_and_marked(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FourmError, match=f"--out {out} already exists .*--overwrite"):
        with claim_output(out, "cmd"):
            pass
    with claim_output(out, "cmd", overwrite=True):
        pass
    assert json.loads((out / MARKER).read_text()) == {"command": "cmd"}
    with claim_output(out, "cmd"):  # its own output: a re-run may replace it
        pass
    with pytest.raises(FourmError, match="was written by cmd"):
        with claim_output(out, "other"):
            pass
    with pytest.raises(FourmError, match="is not empty"):  # rerun=False: even its own output
        with claim_output(out, "cmd", rerun=False):
            pass
    assert not lock_path(out).exists()


def test_lock_held_by_a_live_process_is_refused(tmp_path, live_pid):
    out = tmp_path / "out"
    lock_path(out).write_text(json.dumps({"pid": live_pid, "host": host_id(), "hostname": socket.gethostname(),
                                          "command": "train.py"}))  # fmt: skip
    with pytest.raises(FourmError) as info:
        with output_lock(out, "train.py"):
            pytest.fail("took a live lock")
    message = str(info.value)
    assert f"pid {live_pid} on {socket.gethostname()}" in message and str(lock_path(out)) in message
    assert json.loads(lock_path(out).read_text())["pid"] == live_pid  # left to its holder


def test_lock_of_a_dead_process_is_taken_over_and_released(tmp_path, dead_pid):
    out = tmp_path / "out"
    lock_path(out).write_text(json.dumps({"pid": dead_pid, "host": host_id(), "command": "train.py"}))
    with output_lock(out, "train.py") as lock:
        import os

        assert json.loads(lock.read_text())["pid"] == os.getpid()
        with pytest.raises(FourmError, match="being written by train.py"):  # a second writer meanwhile
            with output_lock(out, "train.py"):
                pass
    assert not lock_path(out).exists()


def test_stale_temporaries_are_cleaned_live_ones_kept(tmp_path, live_pid, dead_pid):
    me = host_id()
    dead = tmp_path / f".d.p{dead_pid}@{me}.abc123.tmp"
    dead_file = tmp_path / f".d.p{dead_pid}@{me}.xyz789.tmp"
    live = tmp_path / f".d.p{live_pid}@{me}.def456.tmp"
    other_host = tmp_path / f".d.p{dead_pid}@{'0' * 8 if me != '0' * 8 else '1' * 8}.ghi.tmp"
    other_name = tmp_path / f".e.p{dead_pid}@{me}.jkl.tmp"
    for d in (dead, live, other_host, other_name):
        d.mkdir()
        (d / "big").write_bytes(b"x" * 1000)
    dead_file.write_text("half")
    with atomic_dir(tmp_path / "d") as tmp:
        assert str(live_pid) not in tmp.name and tmp.name.startswith(".d.p")
        (tmp / "a").write_text("1")
    assert not dead.exists() and not dead_file.exists()
    assert live.exists() and other_host.exists() and other_name.exists()
    # atomic_path cleans the same way
    stale = tmp_path / f".f.txt.p{dead_pid}@{me}.q.tmp"
    stale.write_text("half")
    with atomic_path(tmp_path / "f.txt") as tmp:
        tmp.write_text("ok")
    assert not stale.exists() and (tmp_path / "f.txt").read_text() == "ok"


def test_killed_between_renames_restores_the_old_contents(tmp_path, dead_pid):
    old = tmp_path / f".d.p{dead_pid}@{host_id()}.zz.old"
    (old / "x").mkdir(parents=True)
    (old / "x" / "keep.txt").write_text("old data")
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "d"):
            raise RuntimeError("writer fails")
    assert (tmp_path / "d" / "keep.txt").read_text() == "old data" and not old.exists()


def test_claim_partial_keeps_its_own_run_and_refuses_or_discards_another(tmp_path):
    partial = partial_path(tmp_path / "out")
    assert partial == tmp_path / "out.partial"
    manifest = {"inputs": {"data": "abc"}, "steps": 10}
    claim_partial(partial, manifest)
    (partial / "work.bin").write_bytes(b"done so far")
    claim_partial(partial, manifest)  # the same run: its work is kept
    assert (partial / "work.bin").read_bytes() == b"done so far"
    with pytest.raises(FourmError, match=r"changed: data; steps \(10 -> 20\)\); delete it to start over"):
        claim_partial(partial, {"inputs": {"data": "xyz"}, "steps": 20})
    assert (partial / "work.bin").exists()
    claim_partial(partial, {"inputs": {"data": "xyz"}, "steps": 20}, start_over=True)
    assert not (partial / "work.bin").exists()
    assert json.loads((partial / "manifest.json").read_text())["steps"] == 20


def test_partial_run_goes_when_done_and_when_refused_before_any_work(tmp_path):
    out = tmp_path / "net.safetensors"
    with partial_run(out, {"a": 1}) as partial:
        (partial / "state.pt").write_bytes(b"x")
    assert not partial.exists()  # done: removed
    with pytest.raises(FourmError, match="bad input"):
        with partial_run(out, {"a": 1}):
            raise FourmError("bad input")
    assert not partial.exists()  # nothing saved yet: nothing left beside out
    with pytest.raises(KeyboardInterrupt):
        with partial_run(out, {"a": 1}) as partial:
            (partial / "state.pt").write_bytes(b"x")
            raise KeyboardInterrupt
    assert (partial / "state.pt").exists()  # work saved: kept for the resume
