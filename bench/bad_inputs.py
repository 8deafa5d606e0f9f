#!/usr/bin/env python
"""Bad-input survey: every command-line tool given mistakes a user could make, each run as a
subprocess (with a timeout) in a temporary folder, each outcome classified::

    nice -n 19 env OMP_NUM_THREADS=1 python bench/bad_inputs.py [--json FILE] [--timeout S] [--only NAME]

Cases: those of ``tests/robustness/test_bad_inputs_cli.py`` (imported: ``CASES`` and the inputs its
tests build) and those of ``tests/robustness/survey_cases.py``. One folder of tiny inputs (a toy
bundle, world datasets, broken files of every kind, a user's own files) is built once; before and
after each case the whole folder is hashed. Outcomes:

* **clear error**: exit code 2 and exactly one line on stderr, ``error: ...``, naming the expected
  value (progress bars and ``warning:`` lines aside), inputs unchanged;
* **traceback**: a Python traceback on stderr;
* **silent wrong**: exit code 0 (every case should fail), or a file of the inputs changed;
* **hang**: still running at the timeout (killed);
* **other**: anything else (another exit code, several lines, a line that does not name the value).

Prints the table "tried / clear error / traceback / silent wrong / hang / other" per CLI and in
total, and writes every case (command line, exit code, stderr tail, outcome, seconds) to ``--json``
(default ``bad_inputs.json`` in the working directory). A liveness check follows: ``generate.py
--num-samples 1000000000`` must stream its first chunk (an output line and a chunk folder) within
the timeout instead of running silently. Results: docs/experiments/bad_inputs.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "robustness"))

OUTCOMES = ("clear error", "traceback", "silent wrong", "hang", "other")
MODULES = {
    "data": "fourm.cli.data", "tokenizer": "fourm.cli.tokenizer", "pack": "fourm.cli.pack",
    "bundle": "fourm.cli.bundle", "retrieve": "fourm.cli.retrieve", "convert": "fourm.cli.convert",
    "recipe": "fourm.cli.recipe", "stem": "fourm.cli.stem",
}  # fmt: skip
SCRIPTS = {"train": "train.py", "generate": "generate.py"}
DATA_SUBCOMMANDS = ("world", "import", "show", "tokenize", "embed")
# a progress bar line (tqdm: "...%|", or "N examples [00:01, 12.3 examples/s]" without a total)
PROGRESS = re.compile(r"%\||\[\d+:\d+(:\d+)?[,<]")


def cli_name(command: str, argv: list[str]) -> str:
    """The table row of a case: ``fourm-data <subcommand>``, ``train.py``, ``fourm-retrieve``, ..."""
    if command in SCRIPTS:
        return SCRIPTS[command]
    name = f"fourm-{command}"
    if command == "data":
        sub = argv[0] if argv and argv[0] in DATA_SUBCOMMANDS else "(none)"
        return f"{name} {sub}"
    return name


def command_line(command: str, argv: list[str]) -> list[str]:
    if command in SCRIPTS:
        return [sys.executable, str(REPO / SCRIPTS[command]), *argv]
    return [sys.executable, "-m", MODULES[command], *argv]


def fill(arg: str, inputs: dict[str, Path], out: Path) -> str:
    arg = arg.replace("{out}", str(out)).replace("{repo}", str(REPO))
    for name, path in sorted(inputs.items(), key=lambda kv: -len(kv[0])):
        arg = arg.replace("{" + name + "}", str(path))
    return arg


def classify(rc: int | None, err: str, changed: bool, expected: str | None) -> tuple[str, str]:
    """(outcome, why) of one run (rc None: timed out)."""
    if rc is None:
        return "hang", "killed at the timeout"
    if changed:
        return "silent wrong", f"an input file changed (exit {rc})"
    if "Traceback (most recent call last)" in err:
        return "traceback", err.strip().splitlines()[-1][:200] if err.strip() else ""
    if rc == 0:
        return "silent wrong", "exit 0"
    lines = [line for line in err.splitlines() if line.strip() and not PROGRESS.search(line) and not line.startswith("warning")]
    if rc != 2:
        return "other", f"exit {rc}"
    if len(lines) != 1 or not lines[0].startswith("error: "):
        return "other", f"{len(lines)} stderr lines"
    if expected is not None and expected not in lines[0]:
        return "other", f"message does not name {expected!r}"
    return "clear error", ""


PRELOAD = (
    "torch", "numpy", "PIL.Image", "safetensors.torch", "datasets", "yaml", "tqdm.auto", "fourm.cli.data",
    "fourm.cli.tokenizer", "fourm.cli.pack", "fourm.cli.bundle", "fourm.cli.retrieve", "fourm.cli.convert",
    "fourm.cli.recipe", "fourm.cli.train", "fourm.cli.generate", "fourm.generation.pipeline", "fourm.data.raw_dataset",
    "fourm.training.config", "fourm.retrieval.index", "tokenizers_zoo.text",
)  # fmt: skip


def preload() -> None:
    """Import what the CLIs import (fork mode: every case then starts from a warm interpreter)."""
    import importlib

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:  # an optional extra that is not installed: the case imports it itself
            pass


def _child(command: str, args: list[str], cwd: Path, stdout: Path, stderr: Path) -> None:
    """Fork mode, in the child: run the CLI as ``python -m MODULE`` / ``python SCRIPT`` would, then exit."""
    import runpy
    import traceback

    code = 1
    try:
        os.setsid()
        for fd, path in ((1, stdout), (2, stderr)):
            os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.chdir(cwd)
        try:
            if command in SCRIPTS:
                sys.argv = [str(REPO / SCRIPTS[command]), *args]
                runpy.run_path(sys.argv[0], run_name="__main__")
            else:
                sys.argv = [MODULES[command], *args]
                sys.modules.pop(MODULES[command], None)  # run it afresh as __main__, like python -m
                runpy.run_module(MODULES[command], run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as e:
            if e.code is None or isinstance(e.code, int):
                code = e.code or 0
            else:
                print(e.code, file=sys.stderr)
                code = 1
        except BaseException:
            traceback.print_exc()
            code = 1
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
    finally:
        os._exit(code & 0xFF)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its reaped children (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


class Running:
    """One case in flight: its process, files and the hash of its inputs before it started."""

    def __init__(self, case, inputs, work: Path, mode: str, env: dict[str, str]):
        from bad_inputs_support import tree_hash

        self.case, self.inputs = case, inputs
        cid, command, argv, _ = case
        self.args = [fill(a, inputs, work / f"out_{cid}") for a in argv]
        self.cwd = work / f"cwd_{cid}"
        self.cwd.mkdir()
        self.stdout, self.stderr = work / f"{cid}.stdout", work / f"{cid}.stderr"
        self.before = tree_hash(inputs["root"])
        self.start = time.perf_counter()
        self.cpu = 0.0
        if mode == "fork":
            pid = os.fork()
            if pid == 0:
                _child(command, self.args, self.cwd, self.stdout, self.stderr)
            self.pid, self.proc = pid, None
        else:
            with open(self.stdout, "wb") as out, open(self.stderr, "wb") as err:
                self.proc = subprocess.Popen(command_line(command, self.args), cwd=self.cwd, env=env, stdout=out,
                                             stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
            self.pid = self.proc.pid

    def poll(self, cpu_limit: float, wall_limit: float) -> int | None | bool:
        """The exit code when it ended, None when killed at a limit now, False while it runs."""
        if self.proc is not None:
            rc = self.proc.poll()
            if rc is not None:
                return rc
        else:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
        self.cpu = max(self.cpu, _cpu_seconds(self.pid))
        if self.cpu > cpu_limit or time.perf_counter() - self.start > wall_limit:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if self.proc is not None:
                self.proc.wait()
            else:
                os.waitpid(self.pid, 0)
            return None
        return False

    def result(self, rc: int | None) -> dict:
        from bad_inputs_support import tree_hash

        cid, command, argv, expected = self.case
        seconds = time.perf_counter() - self.start
        err = self.stderr.read_text(errors="replace")
        changed = tree_hash(self.inputs["root"]) != self.before
        outcome, why = classify(rc, err, changed, expected)
        if rc is None:
            why = f"killed after {self.cpu:.0f} s CPU / {seconds:.0f} s"
        return {
            "id": cid, "cli": cli_name(command, argv),
            "argv": [a.encode("utf-8", "surrogateescape").decode("utf-8", "replace") for a in self.args],
            "expected": expected, "exit_code": rc, "outcome": outcome, "why": why, "seconds": round(seconds, 2),
            "stderr_tail": err[-1500:], "stdout_tail": self.stdout.read_text(errors="replace")[-500:],
            "inputs_changed": changed,
        }  # fmt: skip


def run_cases(cases, copies: list[dict], work: Path, args, env) -> list[dict]:
    """Run ``cases``, up to one per copy of the inputs at a time; print a line per finished case."""
    free = list(range(len(copies)))
    running: dict[int, Running] = {}
    pending = list(enumerate(cases))
    results: list[dict | None] = [None] * len(cases)
    done = 0
    while pending or running:
        while pending and free:
            i, case = pending.pop(0)
            slot = free.pop()
            running[slot] = Running(case, copies[slot], work / f"w{slot}", args.mode, env)
            running[slot].index = i
        time.sleep(0.05)
        for slot, run in list(running.items()):
            rc = run.poll(args.timeout, args.wall_timeout)
            if rc is False:
                continue
            r = run.result(rc)
            results[run.index] = r
            del running[slot]
            free.append(slot)
            done += 1
            mark = "" if r["outcome"] == "clear error" else f"  <-- {r['why']}"
            print(f"[{done}/{len(cases)}] {r['id']}: {r['outcome']} ({r['seconds']:.1f} s){mark}", flush=True)
            finished = [r for r in results if r is not None]  # written as it goes: a long run can be read early
            Path(args.json).write_text(json.dumps({"cases": finished, "table": table(finished), "partial": True}) + "\n")
    return [r for r in results if r is not None]


def liveness(inputs, work: Path, timeout: float, env: dict[str, str]) -> dict:
    """``generate.py --num-samples 1000000000`` (a fresh interpreter): the first chunk must appear
    before ``timeout`` CPU seconds (or 10x that in wall time)."""
    out = work / "out_liveness"
    argv = ["--model", str(inputs["bundle"]), "--target", "caption", "--num-samples", "1000000000", "--out", str(out),
            "--no-progress"]  # fmt: skip
    # SIGINT back to its default in the child: a survey started in the background (``&``, no job
    # control) ignores SIGINT, and its children would inherit that and never see the Ctrl-C below
    proc = subprocess.Popen(command_line("generate", argv), cwd=work, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    start = time.perf_counter()
    first = None
    while _cpu_seconds(proc.pid) < timeout and time.perf_counter() - start < 10 * timeout and proc.poll() is None:
        if (out / "progress.json").is_file():
            first = time.perf_counter() - start
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)  # like Ctrl-C
    try:
        stdout, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, _ = proc.communicate()
    text = stdout.decode("utf-8", "replace")
    chunks = sorted(p.name for p in out.glob("chunk_*")) if out.is_dir() else []
    ok = first is not None and "chunk 1/15625000" in text and bool(chunks)
    try:
        done = json.loads((out / "progress.json").read_text())["chunks_done"]
    except (OSError, ValueError, KeyError):
        done = None
    return {"case": "generate.py --num-samples 1000000000", "streams": ok, "first_chunk_seconds": first,
            "chunks_written": len(chunks), "exit_code": proc.returncode,
            # Ctrl-C ends it (exit 130) leaving complete chunks only: those progress.json counts (it is
            # rewritten just after each chunk, so it may lag one behind)
            "stops_on_interrupt": proc.returncode == 130 and done is not None and 0 <= len(chunks) - done <= 1,
            "stdout_head": text[:300]}  # fmt: skip


def table(results: list[dict]) -> str:
    rows: dict[str, Counter] = {}
    for r in results:
        rows.setdefault(r["cli"], Counter())[r["outcome"]] += 1
    total = Counter(r["outcome"] for r in results)
    head = "| CLI | tried | " + " | ".join(OUTCOMES) + " |"
    lines = [head, "| --- " * (len(OUTCOMES) + 2) + "|"]
    for name in sorted(rows):
        c = rows[name]
        lines.append(f"| {name} | {sum(c.values())} | " + " | ".join(str(c[o]) for o in OUTCOMES) + " |")
    lines.append(f"| **total** | **{len(results)}** | " + " | ".join(f"**{total[o]}**" for o in OUTCOMES) + " |")
    return "\n".join(lines)


def all_cases() -> list[tuple]:
    import survey_cases
    import test_bad_inputs_cli

    cases = [tuple(c) for c in test_bad_inputs_cli.CASES] + [tuple(c) for c in survey_cases.CASES]
    ids = [c[0] for c in cases]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    return cases


def build_all_inputs(root: Path) -> dict[str, Path]:
    """The inputs of every case under the existing empty folder ``root``."""
    import survey_cases
    import test_bad_inputs_cli

    inputs = test_bad_inputs_cli.build_inputs(root)
    return survey_cases.build_extra_inputs(inputs)


def _copy_inputs(inputs: dict[str, Path], root: Path) -> dict[str, Path]:
    import shutil

    shutil.copytree(inputs["root"], root, symlinks=True)
    return {name: root / path.relative_to(inputs["root"]) for name, path in inputs.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", default="bad_inputs.json", help="write every case here (default bad_inputs.json)")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="CPU seconds a case may use before it counts as a hang (default 60)")
    parser.add_argument("--wall-timeout", type=float, default=600.0,
                        help="wall seconds a case may take before it counts as a hang (default 600: waiting hangs)")
    parser.add_argument("--jobs", type=int, default=1, help="cases at a time, each on its own copy of the inputs")
    parser.add_argument("--mode", choices=("fork", "spawn"), default="fork",
                        help="fork (default): every case is a child forked from one interpreter that has imported "
                        "torch and the CLIs, then runs the CLI as python -m / python SCRIPT would; spawn: a fresh "
                        "interpreter per case (exact, ~1-2 s more CPU per case)")  # fmt: skip
    parser.add_argument("--only", default=None,
                        help="only cases whose id or CLI contains this text (comma-separated: any of them)")
    parser.add_argument("--no-liveness", action="store_true", help="skip the --num-samples 1000000000 check")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--build-inputs", default=None, help=argparse.SUPPRESS)  # internal: in a fresh process
    args = parser.parse_args(argv)
    os.environ.update(OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"), HF_HUB_OFFLINE="1",
                      TRANSFORMERS_OFFLINE="1", PYTHONWARNINGS="ignore")  # fmt: skip
    if args.build_inputs:  # the parent forks cases: it must not have run torch itself
        inputs = build_all_inputs(Path(args.build_inputs))
        print(json.dumps({k: str(v) for k, v in inputs.items()}))
        return 0

    cases = all_cases()
    if args.only:
        wanted = [w for w in args.only.split(",") if w]
        cases = [c for c in cases if any(w in c[0] or w in cli_name(c[1], c[2]) for w in wanted)]
    env = dict(os.environ)
    tmp = Path(tempfile.mkdtemp(prefix="fourm-bad-inputs-"))
    start = time.perf_counter()
    (tmp / "inputs0").mkdir()
    built = subprocess.run([sys.executable, __file__, "--build-inputs", str(tmp / "inputs0")], capture_output=True,
                           text=True, env=env, check=True)  # fmt: skip
    inputs = {k: Path(v) for k, v in json.loads(built.stdout.strip().splitlines()[-1]).items()}
    copies = [inputs] + [_copy_inputs(inputs, tmp / f"inputs{k}") for k in range(1, max(1, args.jobs))]
    for k in range(len(copies)):
        (tmp / "work" / f"w{k}").mkdir(parents=True)
    print(f"{len(cases)} cases; inputs built in {time.perf_counter() - start:.0f} s under {tmp}", flush=True)
    if args.mode == "fork":
        preload()
    results = run_cases(cases, copies, tmp / "work", args, env)
    live = None if args.no_liveness else liveness(inputs, tmp / "work", args.timeout, env)
    report = {
        "cases": results, "table": table(results), "liveness": live, "mode": args.mode,
        "counts": dict(Counter(r["outcome"] for r in results)), "seconds": round(time.perf_counter() - start, 1),
    }  # fmt: skip
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    print()
    print(report["table"])
    if live is not None:
        status = f"streams (first chunk after {live['first_chunk_seconds']:.1f} s)" if live["streams"] else "DOES NOT stream"
        status += "; Ctrl-C stops it (exit 130, only complete chunks)" if live["stops_on_interrupt"] else (
            f"; Ctrl-C DOES NOT stop it cleanly (exit {live['exit_code']})")
        print(f"\nliveness: {live['case']}: {status}")
    print(f"\n{len(results)} cases in {report['seconds']:.0f} s; every case in {args.json}")
    if not args.keep:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
