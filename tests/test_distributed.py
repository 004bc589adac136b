"""Sharded runs: 2 processes (torchrun, gloo on CPU) give the 1-process numbers and byte-identical videos, and a
run killed under 2 processes resumes under 1 without regenerating finished videos."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

# at equal torch threads per process (OMP_NUM_THREADS=1 below) sharding changes nothing, at batch 1 and at batch 4
ARGS = ["--methods", "per_frame,animatediff", "--frames", "4", "--steps", "2", "--height", "32", "--width", "32",
        "--no-progress"]


def _env():
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def _single(out: Path, batch: int = 1) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench.cli", "run", *ARGS, "--batch-size", str(batch),
                           "--out", str(out)], env=_env(), capture_output=True, text=True, timeout=600)


def _torchrun(out: Path, port: int, batch: int = 1) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
            "-m", "bench.cli", "run", *ARGS, "--batch-size", str(batch), "--out", str(out)]


def _metric_values(run_dir: Path) -> dict:
    record = json.loads((run_dir / "run.json").read_text())
    return {(m, k): v["value"] for m, e in record["methods"].items() for k, v in e["metrics"].items()}


def _lossless(run_dir: Path) -> dict:
    return {p.relative_to(run_dir): p.read_bytes() for p in sorted(run_dir.glob("videos/*/*.npy"))}


def _kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the launcher and its workers (torch's elastic agent starts workers in sessions of their own, so
    killing the launcher's process group alone would leave them running)."""
    import psutil

    victims = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    for p in victims:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(victims, timeout=30)
    proc.wait()


def _single_run(tmp_path_factory, batch: int) -> Path:
    out = tmp_path_factory.mktemp(f"single-b{batch}") / "run"
    proc = _single(out, batch)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


@pytest.fixture(scope="module")
def single_run(tmp_path_factory) -> Path:
    return _single_run(tmp_path_factory, 1)


@pytest.mark.parametrize("batch", [1, 4])
def test_two_processes_give_the_same_numbers_and_bytes(single_run, tmp_path_factory, tmp_path, batch):
    single_run = single_run if batch == 1 else _single_run(tmp_path_factory, batch)
    out = tmp_path / "run"
    proc = subprocess.run(_torchrun(out, 29611 + 10 * batch, batch), env=_env(), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    one, two = _metric_values(single_run), _metric_values(out)
    assert one.keys() == two.keys() and len(one) >= 8
    for key in one:
        assert two[key] == pytest.approx(one[key], abs=1e-6), key
    assert _lossless(out) == _lossless(single_run)
    record = json.loads((out / "run.json").read_text())
    assert record["world_size"] == 2
    assert record["methods"]["per_frame"]["perf"]["world_size"] == 2
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    single_rows = [json.loads(line) for line in (single_run / "samples.jsonl").read_text().splitlines()]
    assert [r["key"] for r in rows] == [r["key"] for r in single_rows]  # merged in plan order


def test_killed_two_process_run_resumes_with_one(single_run, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(_torchrun(out, 29612), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if any(not p.name.startswith("perf.") for p in out.glob("videos/*/*.json")):
            break  # the first video has landed
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    _kill_tree(proc)
    landed = {p: p.stat().st_mtime_ns for p in out.glob("videos/*/*.npy") if p.with_suffix(".json").exists()}
    assert landed and not (out / "run.json").exists()
    resumed = _single(out)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert all(p.stat().st_mtime_ns == t for p, t in landed.items())  # no finished video regenerated
    record = json.loads((out / "run.json").read_text())
    skipped = sum(e["counts"]["skipped"] for e in record["methods"].values())
    assert skipped == len(landed)
    one, resumed_values = _metric_values(single_run), _metric_values(out)
    for key in one:
        assert resumed_values[key] == pytest.approx(one[key], abs=1e-6), key
    assert _lossless(out) == _lossless(single_run)
