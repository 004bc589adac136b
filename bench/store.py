"""The run folder on disk. Every write is atomic (temp file + rename), so a crash or Ctrl-C never leaves a
half-written file that a rerun would trust.

results/runs/<run_id>/
  config.json                      resolved config + generation hash (a rerun with another config is refused)
  videos/<method>/<prompt_id>-s<k>.npy   lossless uint8 frames (F, H, W, C): what the metrics read
  videos/<method>/<prompt_id>-s<k>.mp4   for people (H.264 via PyAV)
  videos/<method>/<prompt_id>-s<k>.json  item record (request, cache key, timings, frames_sha256 of the .npy); written
                                           last = "done"; a rerun verifies the hash
  videos/<method>/perf.rank<r>.json  peak memory of process r's latest generation session of that method
  samples.jsonl, run.json, report.md
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from bench.errors import UserError

if TYPE_CHECKING:  # reports and `ls` read and write run folders without loading torch
    import torch

SCHEMA_VERSION = "1.0"
log = logging.getLogger("t2v_bench")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n").encode())


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    atomic_write_bytes(path, "".join(json.dumps(r, default=str) + "\n" for r in rows).encode())


def read_json(path: Path) -> Any:
    with open(path) as fh:
        return json.load(fh)


def encode_video(frames_uint8: np.ndarray, path: Path, fps: int, codec: str = "libx264", pix_fmt: str = "yuv420p",
                 options: dict[str, str] | None = None) -> None:
    """(F, H, W, 3) uint8 -> a video file through PyAV, written to a temp name and renamed. PyAV directly rather
    than imageio's plugin, whose close() runs a full gc.collect() (0.3 s a video with torch loaded)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    with av.open(str(tmp), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames_uint8.shape[2], frames_uint8.shape[1], pix_fmt
        if options:
            stream.options = options
        for frame in frames_uint8:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(stream.encode())  # flush
    os.replace(tmp, path)


def write_mp4(path: Path, frames_uint8: np.ndarray, fps: int) -> None:
    """H.264 mp4 for viewing; sides are multiples of 8 (yuv420p needs even sides)."""
    encode_video(frames_uint8, path, fps, "libx264")


class RunStore:
    """One run folder. Item files are keyed by (method, prompt_id, sample index) and validated by cache key."""

    def __init__(self, root: str | Path, regenerate: bool = True):
        self.root = Path(root)
        self.regenerate = regenerate  # what a bad frames file means: regenerate it (run, generate) or fail (evaluate)
        self.bad_items: set[tuple[str, str, int]] = set()  # items whose frames failed verification, as of now
        self.unverified = 0
        self._verdicts: dict[tuple, str | None] = {}

    # --------------------------------------------------------------- run-level
    def claim(self, config_doc: dict, generation_hash: str, write: bool = True) -> None:
        """Check that the folder is new or holds a run of the same configuration; create it (when `write`)."""
        if self.root.exists() and not self.root.is_dir():
            raise UserError(f"--out {self.root} is a file, not a run folder; pass a folder path (new or a run's)")
        path = self.root / "config.json"
        if path.exists():
            previous = read_json(path)
            if previous.get("generation_hash") != generation_hash:
                raise UserError(f"{self.root} holds a run of a different configuration "
                                f"(hash {previous.get('generation_hash', '?')[:12]} vs {generation_hash[:12]}); "
                                "pass another --out DIR, or delete that folder to start over")
        if write:
            self.root.mkdir(parents=True, exist_ok=True)
            atomic_write_json(path, {"generation_hash": generation_hash, "config": config_doc})

    # --------------------------------------------------------------- items
    def item_stem(self, method: str, prompt_id: str, sample: int) -> Path:
        return self.root / "videos" / method / f"{prompt_id}-s{sample}"

    def item_path(self, method: str, prompt_id: str, sample: int, ext: str) -> Path:
        """<stem><ext>, appended to the whole stem: a prompt id may hold dots (`x.alpha`), so never with_suffix."""
        stem = self.item_stem(method, prompt_id, sample)
        return stem.with_name(stem.name + ext)

    def is_done(self, method: str, prompt_id: str, sample: int, key: str) -> bool:
        """The sidecar is there with this cache key, and the frames it vouches for are intact (see check_frames)."""
        meta_path = self.item_path(method, prompt_id, sample, ".json")
        if not meta_path.is_file():
            return False
        try:
            meta = read_json(meta_path)
        except (OSError, json.JSONDecodeError):
            return False
        if meta.get("key") != key:
            return False
        problem = self.check_frames(method, prompt_id, sample, meta)
        if problem:
            self.bad_items.add((method, prompt_id, sample))
        else:
            self.bad_items.discard((method, prompt_id, sample))
        return problem is None

    def check_frames(self, method: str, prompt_id: str, sample: int, meta: dict) -> str | None:
        """None when the .npy holds exactly the frames the sidecar recorded (sha256 of the file's bytes), else what
        is wrong, warned once per file version. Verdicts are cached by (size, mtime): a rerun hashes each file once."""
        path = self.item_path(method, prompt_id, sample, ".npy")
        try:
            st = path.stat()
        except OSError:
            return "missing"
        stamp = (path, st.st_size, st.st_mtime_ns, meta.get("frames_sha256"))
        if stamp in self._verdicts:
            return self._verdicts[stamp]
        problem = None
        data = path.read_bytes()
        expected = meta.get("frames_sha256")
        try:
            array = np.load(io.BytesIO(data), allow_pickle=False)
            req = meta.get("request") or {}
            want = (req.get("num_frames"), req.get("height"), req.get("width"))
            if array.dtype != np.uint8 or array.ndim != 4 or (None not in want and array.shape[:3] != want):
                problem = f"it holds {array.dtype} {array.shape}, not the uint8 frames its request asked for"
        except Exception as exc:  # truncated or garbled: numpy raises ValueError, EOFError, OSError...
            problem = f"it cannot be read ({type(exc).__name__}: {str(exc)[:120]})"
        if problem is None and expected is not None and hashlib.sha256(data).hexdigest() != expected:
            problem = "its sha256 does not match the one recorded in its .json (corrupted or edited)"
        if problem is None and expected is None:
            self.unverified += 1  # written before frames_sha256 existed: trusted, but said so (once per run)
            if self.unverified == 1:
                log.warning("%s has no frames_sha256 (written by an older t2v-bench): such items are used "
                            "unverified; delete their .json files to regenerate them",
                            self.item_path(method, prompt_id, sample, ".json"))
        if problem:
            log.warning("%s: %s; %s", path, problem, "it will be regenerated" if self.regenerate else
                        "that item is failed (run `t2v-bench run` or `generate` to regenerate it)")
        self._verdicts[stamp] = problem
        return problem

    def save_item(self, method: str, prompt_id: str, sample: int, frames_uint8: torch.Tensor, fps: int,
                  meta: dict) -> None:
        array = frames_uint8.numpy()
        buf = _npy_bytes(array)
        atomic_write_bytes(self.item_path(method, prompt_id, sample, ".npy"), buf)
        write_mp4(self.item_path(method, prompt_id, sample, ".mp4"), array, fps)
        # last: marks the item done; the hash lets every later read verify the frames
        atomic_write_json(self.item_path(method, prompt_id, sample, ".json"),
                          {**meta, "frames_sha256": hashlib.sha256(buf).hexdigest()})

    def load_frames(self, method: str, prompt_id: str, sample: int) -> torch.Tensor:
        """(F, H, W, C) uint8."""
        import torch

        path = self.item_path(method, prompt_id, sample, ".npy")
        try:
            return torch.from_numpy(np.load(path, allow_pickle=False))
        except Exception as exc:  # changed since is_done verified it
            raise UserError(f"{path} cannot be read ({type(exc).__name__}); rerun `t2v-bench run` to regenerate "
                            "it") from None

    def load_item_meta(self, method: str, prompt_id: str, sample: int) -> dict:
        return read_json(self.item_path(method, prompt_id, sample, ".json"))

    def relpath(self, path: Path) -> str:
        return str(path.relative_to(self.root))

    # --------------------------------------------------------------- per-method perf
    def save_method_perf(self, method: str, rank: int, perf: dict) -> None:
        atomic_write_json(self.root / "videos" / method / f"perf.rank{rank}.json", perf)

    def load_method_perf(self, method: str) -> dict:
        """Peaks over every process and session that generated for this method."""
        merged: dict = {}
        for path in sorted((self.root / "videos" / method).glob("perf.rank*.json")):
            for key, value in read_json(path).items():
                if key.startswith("peak_") and isinstance(value, (int, float)) and not isinstance(value, bool):
                    merged[key] = max(value, merged.get(key, value))
                else:
                    merged.setdefault(key, value)
        return merged


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def git_state(path: Path) -> dict[str, Any]:
    """Commit and dirty flag of the harness checkout (None outside a git checkout)."""
    try:
        sha = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, timeout=5).stdout.strip()) if sha else None
        return {"git_sha": sha, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"git_sha": None, "dirty": None}


def environment(device: torch.device) -> dict[str, Any]:
    import platform

    import torch
    from importlib.metadata import PackageNotFoundError, version

    def v(pkg: str) -> str | None:
        try:
            return version(pkg)
        except PackageNotFoundError:
            return None

    env: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform(),
                           "torch": torch.__version__, "diffusers": v("diffusers"), "transformers": v("transformers"),
                           "open_clip": v("open-clip-torch"), "torchmetrics": v("torchmetrics"),
                           "accelerate": v("accelerate"), "device": str(device),
                           # CPU results depend on the thread count in the last bits (sum order): record it
                           "torch_threads": torch.get_num_threads(), "torch_interop_threads":
                           torch.get_num_interop_threads(), "cpu_count": os.cpu_count()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(gpu=props.name, gpu_memory_gb=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda,
                   cudnn=torch.backends.cudnn.version(), gpu_count=torch.cuda.device_count())
    else:
        env["device_name"] = platform.processor() or platform.machine()
    return env
