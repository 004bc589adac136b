"""Killed mid-write, `generate`, `evaluate` and `report` never leave a half-written file that a reader trusts: every
file is written to a temporary name and renamed, so the file being written at the kill is always a temporary one.

In-process, each write point in turn: the n-th file opened for writing under the run folder gets half its bytes,
then the process is "killed" (a BaseException no handler catches). Out-of-process, one real SIGKILL while
`evaluate` writes run.json.
"""
import builtins
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from bench.cli import main

PROMPTS = '{"id": "p-a", "text": "a red ball"}\n{"id": "p-b", "text": "a blue cat"}\n'
CONFIG = ("name: k\nbase: {model: tiny}\nmethods: [per_frame]\nprompts: PROMPTS\n"
          "sampling: {num_frames: 2, height: 32, width: 32, num_inference_steps: 1}\n"
          "metrics: [clip_score, temporal_flickering]\nclip: {model: tiny}\ndevice: cpu\n")


class Killed(BaseException):
    """Stands for SIGKILL: nothing in the harness catches it, as nothing can catch the signal."""


class _HalfWriter:
    """A file object whose first write gets half its bytes on disk, then 'kills' the process."""

    def __init__(self, fh, on_kill):
        self._fh, self._on_kill = fh, on_kill

    def write(self, data):
        self._fh.write(data[:len(data) // 2])
        self._fh.flush()
        self._on_kill()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._fh.close()
        return False

    def __getattr__(self, name):
        return getattr(self._fh, name)


@contextmanager
def kill_at_write(n: int, root: Path, monkeypatch):
    """Kill at the n-th file opened for writing under `root` (n=0: never); yields {'path': the file being written
    at the kill, 'written': every file opened for writing}."""
    state = {"opened": 0, "path": None, "written": []}
    real_open = builtins.open
    root = root.resolve()

    def fake_open(file, mode="r", *args, **kwargs):
        fh = real_open(file, mode, *args, **kwargs)
        if not any(c in mode for c in "wax+"):
            return fh
        path = Path(os.readlink(f"/proc/self/fd/{file}") if isinstance(file, int) else os.fspath(file)).resolve()
        if root not in path.parents:
            return fh
        state["opened"] += 1
        state["written"].append(path)
        if state["opened"] != n:
            return fh
        state["path"] = path

        def kill():
            raise Killed(str(path))
        return _HalfWriter(fh, kill)

    with monkeypatch.context() as m:
        m.setattr(builtins, "open", fake_open)
        m.setattr(io, "open", fake_open)  # os.fdopen and Path.open go through io.open
        yield state


def trusted_files(root: Path) -> dict[str, bytes]:
    """Every file a reader uses: all but the temporaries ('.<name>.<random>.tmp' or '.<stem>.tmp<suffix>')."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and not p.name.startswith(".")}


def assert_intact(files: dict[str, bytes]) -> None:
    for name, data in files.items():
        if name.endswith(".json"):
            json.loads(data)
        elif name.endswith(".jsonl"):
            [json.loads(line) for line in data.decode().splitlines()]
        elif name.endswith(".png"):
            assert data.endswith(b"IEND\xaeB`\x82"), name
        elif name.endswith(".pdf"):
            assert data.rstrip().endswith(b"%%EOF"), name
        elif name.endswith(".html"):
            assert data.rstrip().endswith(b"</html>"), name


def every_write_killed(pristine: Path, work: Path, argv: list[str], monkeypatch, capsys) -> list[Path]:
    """Run `argv` from a fresh copy of `pristine`: once to list its writes, then once per kind of file written (its
    first write of each file name pattern), killed at that write. Returns the file being written at each kill."""
    def fresh():
        if work.exists():
            shutil.rmtree(work)
        shutil.copytree(pristine, work)

    fresh()
    with kill_at_write(0, work, monkeypatch) as state:
        assert main(argv) == 0
    kinds: dict[str, int] = {}
    for n, path in enumerate(state["written"], 1):
        target = path.name[1:].rsplit(".", 2)[0] if path.name.endswith(".tmp") else path.name  # '.a.png.x1y2.tmp'
        name = Path(target).suffix if path.parent.name == "plots" else re.sub(r"p-[ab]-s[0-9]+", "ITEM", target)
        kinds.setdefault(f"{path.parent.name}/{name}", n)  # one kill per kind of file: per item kind, per figure type
    killed = []
    print(f"{argv[0]}: {len(state['written'])} writes, killed at the first of each of {len(kinds)} kinds")
    for n in sorted(kinds.values()):
        fresh()
        with kill_at_write(n, work, monkeypatch) as state:
            with pytest.raises(Killed):
                main(argv)
        capsys.readouterr()
        killed.append(state["path"])
        assert_intact(trusted_files(work))
    return killed


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill")
    (root / "p.jsonl").write_text(PROMPTS)
    (root / "c.yaml").write_text(CONFIG.replace("PROMPTS", str(root / "p.jsonl")))
    assert main(["run", "--config", str(root / "c.yaml"), "--out", str(root / "pristine" / "run"),
                 "--no-progress"]) == 0
    return root


def test_generate_killed_at_any_write_leaves_only_temporaries(finished_run, tmp_path, monkeypatch, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    work = tmp_path / "work"
    killed = every_write_killed(empty, work, ["generate", "--config", str(finished_run / "c.yaml"), "--out",
                                              str(work / "run"), "--no-progress"], monkeypatch, capsys)
    assert len(killed) >= 4  # config.json, then .npy and .json of a video, perf record
    assert all(p.name.startswith(".") for p in killed), [p.name for p in killed if not p.name.startswith(".")]


def test_evaluate_killed_at_any_write_leaves_no_half_written_record(finished_run, tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    killed = every_write_killed(finished_run / "pristine", work,
                                ["evaluate", "--config", str(finished_run / "c.yaml"), "--out", str(work / "run"),
                                 "--no-progress"], monkeypatch, capsys)
    names = [p.name for p in killed]
    for target in ("samples.jsonl", "run.json", "report.md"):  # each was being written at some kill
        assert any(n.startswith(f".{target}.") for n in names), names
    assert all(n.startswith(".") and n.endswith(".tmp") for n in names), names


@pytest.mark.parametrize("formats,targets", [("md,latex,html", (".report.md.", ".table.tex.", ".index.html.",
                                                                 ".p-a-s0.gif.", ".p-a-s0.mp4.")),
                                             ("plots", (".png.", ".pdf."))])  # plots apart: they take seconds
def test_report_killed_at_any_write_leaves_no_half_written_report(finished_run, tmp_path, monkeypatch, capsys,
                                                                  formats, targets):
    work = tmp_path / "work"
    killed = every_write_killed(finished_run / "pristine", work,
                                ["report", str(work / "run"), "--out", str(work / "run" / "report"), "--format",
                                 formats], monkeypatch, capsys)
    names = [p.name for p in killed]
    for target in targets:  # each kind of report file was being written at some kill
        assert any(target in n for n in names), (target, names)
    assert all(n.startswith(".") and n.endswith(".tmp") for n in names), names


KILLER = """
import builtins, io, os, signal, sys
real_open = builtins.open
def fake_open(file, mode="r", *a, **k):
    fh = real_open(file, mode, *a, **k)
    name = os.path.basename(os.readlink(f"/proc/self/fd/{file}") if isinstance(file, int) else os.fspath(file))
    if any(c in mode for c in "wax+") and ("run.json" in name):
        class Half:
            def __enter__(s): return s
            def __exit__(s, *e): fh.close()
            def write(s, data):
                fh.write(data[:len(data) // 2]); fh.flush(); os.kill(os.getpid(), signal.SIGKILL)
            def __getattr__(s, n): return getattr(fh, n)
        return Half()
    return fh
builtins.open = io.open = fake_open
from bench.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow  # a fresh interpreter imports torch and diffusers: slow on a loaded CI machine
def test_sigkill_while_evaluate_writes_run_json(finished_run, tmp_path):
    work = tmp_path / "run"
    shutil.copytree(finished_run / "pristine" / "run", work)
    before = trusted_files(work)
    argv = ["evaluate", "--config", str(finished_run / "c.yaml"), "--out", str(work), "--no-progress"]
    proc = subprocess.run([sys.executable, "-c", KILLER, *argv], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    leftovers = [p for p in work.glob(".run.json.*.tmp")]
    assert len(leftovers) == 1 and 0 < leftovers[0].stat().st_size  # killed mid-write: the half is in the temp
    after = trusted_files(work)
    assert after["run.json"] == before["run.json"]  # the record a reader sees is the previous, complete one
    assert_intact(after)
    assert main(argv) == 0 and json.loads((work / "run.json").read_text())["methods"]["per_frame"]["counts"]
