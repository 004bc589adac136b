"""Folder layouts of videos made elsewhere, and matching their files to prompts.

- `vbench`: `{prompt}-{index}.{mp4,gif,...}` (or a frame folder named so). The prompt is the file name without
  the `-<digits>` ending, as VBench's `get_prompt_from_filename` reads it (a name without that ending is index 0).
  VBench (v1) writes `f"{prompt}-{index}.mp4"` verbatim, without truncating or sanitising, and looks sampled
  videos up by that exact name; VBench-2.0 truncates the prompt to 180 characters (`prompt[:180]`). A suite prompt
  matches a file by its exact text, its first 180 characters, or the name `vbench_stem` gives it on export.
- `t2v-bench`: `videos/<method>/<prompt_id>-s<k>.npy` (lossless, preferred) or `.mp4`, the `.json` beside it giving
  the prompt text; VIDEO_DIR may be a run folder, its `videos/` or one `videos/<method>` folder.
- `csv`: a map file (`--map`), CSV with a header `path,prompt[,prompt_id,sample]` or JSON lines with those keys;
  `path` relative to VIDEO_DIR (or absolute); a missing `sample` numbers a prompt's rows in file order.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

from bench.errors import UserError
from bench.prompts import Prompt, PromptSuite
from bench.video_io import FRAME_EXTS, VIDEO_EXTS, is_frame_folder

LAYOUTS = ("auto", "t2v-bench", "vbench", "csv")
VBENCH_TRUNCATE = 180  # VBench-2.0's prompt[:180] in file names
NAME_BYTES = 250  # file-name limit 255 bytes, less the 5 of our writer's temporary name
T2V_NAME = re.compile(r"^(?P<id>[^/\\ ]+)-s(?P<k>\d+)\.(?P<ext>npy|mp4)$")
VBENCH_INDEX = re.compile(r"-(\d+)$")


@dataclass
class Found:
    """One video on disk and what its name or map says about it."""

    path: Path
    rel: str
    text: str | None = None
    prompt_id: str | None = None
    sample: int | None = None


@dataclass
class Matched:
    found: Found
    prompt: Prompt
    sample: int


def vbench_stem(prompt: str) -> str:
    """The file-name stem of a prompt in the VBench layout: the text itself (VBench's rule), with '/' (which no
    file name can hold) replaced by '_', and cut to 180 characters, then to whole UTF-8 characters, only when the
    name would pass the file-name length limit."""
    stem = prompt.replace("/", "_").replace("\0", "")
    if len(f"{stem}-99.mp4".encode()) > NAME_BYTES:
        stem = stem[:VBENCH_TRUNCATE]
        while len(f"{stem}-99.mp4".encode()) > NAME_BYTES:
            stem = stem[:-1]
    return stem


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _is_video(p: Path) -> bool:
    return (p.is_file() and p.suffix.lower() in VIDEO_EXTS) or is_frame_folder(p)


def detect(video_dir: Path, map_file: str | None) -> str:
    if map_file:
        return "csv"
    if (video_dir / "videos").is_dir() or (video_dir / "config.json").is_file():
        return "t2v-bench"
    for folder in [video_dir, *(p for p in _visible(video_dir) if p.is_dir() and not is_frame_folder(p))]:
        names = [p.name for p in _visible(folder) if p.is_file()]
        if any(T2V_NAME.match(n) and n.endswith(".npy") for n in names) or \
                any(T2V_NAME.match(n[:-5] + ".mp4") for n in names if n.endswith(".json")):
            return "t2v-bench"
    return "vbench"


def scan_vbench(video_dir: Path) -> list[Found]:
    found = []
    for p in _visible(video_dir):
        if not _is_video(p):
            continue
        stem = p.name if p.is_dir() else p.stem
        m = VBENCH_INDEX.search(stem)
        text, index = (stem[:m.start()], int(m.group(1))) if m else (stem, 0)
        found.append(Found(p, p.name, text=text, sample=index))
    return found


def _t2v_folder(video_dir: Path) -> Path:
    base = video_dir / "videos" if (video_dir / "videos").is_dir() else video_dir
    if any(T2V_NAME.match(p.name) for p in _visible(base) if p.is_file()):
        return base
    methods = [p for p in _visible(base) if p.is_dir() and any(T2V_NAME.match(q.name) for q in _visible(p))]
    if len(methods) == 1:
        return methods[0]
    if not methods:
        raise UserError(f"{video_dir}: no <prompt_id>-s<k>.npy/.mp4 files (t2v-bench layout); pass --layout vbench "
                        "or --map FILE")
    raise UserError(f"{video_dir} holds videos of several methods ({', '.join(p.name for p in methods)}); pass one "
                    f"of them, e.g. {methods[0]}")


def scan_t2v(video_dir: Path) -> list[Found]:
    folder = _t2v_folder(video_dir)
    by_item: dict[tuple[str, int], Path] = {}
    for p in _visible(folder):
        m = T2V_NAME.match(p.name)
        if m and p.is_file():
            key = (m.group("id"), int(m.group("k")))
            if key not in by_item or p.suffix == ".npy":  # the lossless frames beside the mp4 win
                by_item[key] = p
    found = []
    for (pid, k), p in sorted(by_item.items()):
        text = None
        sidecar = p.with_suffix(".json")
        if sidecar.is_file():
            try:
                text = json.loads(sidecar.read_text()).get("request", {}).get("prompt")
            except (OSError, ValueError):
                text = None
        found.append(Found(p, str(p.relative_to(video_dir)), text=text, prompt_id=pid, sample=k))
    return found


def scan_map(video_dir: Path, map_file: str) -> tuple[list[Found], list[str]]:
    path = Path(map_file)
    if not path.is_file():
        raise UserError(f"--map {map_file}: no such file; pass a CSV (path,prompt[,prompt_id,sample]) or JSONL map")
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() in (".jsonl", ".json"):
        try:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError as exc:
            raise UserError(f"{path}: not valid JSON lines ({exc})") from None
    else:
        rows = list(csv.DictReader(io.StringIO(text)))
    if not rows or not all(isinstance(r, dict) and r.get("path") for r in rows):
        raise UserError(f"{path}: every row needs a 'path' (header: path,prompt[,prompt_id,sample])")
    found, problems, counter = [], [], {}
    for i, r in enumerate(rows, 2 if path.suffix.lower() == ".csv" else 1):
        p = Path(r["path"]) if Path(r["path"]).is_absolute() else video_dir / r["path"]
        if not (p.is_file() or p.is_dir()):
            problems.append(f"{path.name}:{i}: {r['path']}: no such file")
            continue
        prompt_text = (str(r.get("prompt") or "").strip()) or None
        pid = (str(r.get("prompt_id") or "").strip()) or None
        key = pid or prompt_text or ""
        try:
            sample = int(r["sample"]) if str(r.get("sample", "")).strip() else counter.get(key, 0)
        except ValueError:
            problems.append(f"{path.name}:{i}: {r['path']}: sample '{r['sample']}' is not an integer")
            continue
        counter[key] = max(counter.get(key, 0), sample + 1)
        found.append(Found(p, str(r["path"]), text=prompt_text, prompt_id=pid, sample=sample))
    return found, problems


def scan(video_dir: Path, layout: str, map_file: str | None) -> tuple[str, list[Found], list[str]]:
    if layout not in LAYOUTS:
        raise UserError(f"--layout {layout}: choose from {', '.join(LAYOUTS)}")
    layout = detect(video_dir, map_file) if layout == "auto" else layout
    if layout == "csv":
        if not map_file:
            raise UserError("--layout csv needs --map FILE (CSV: path,prompt[,prompt_id,sample])")
        found, problems = scan_map(video_dir, map_file)
        return layout, found, problems
    found = scan_t2v(video_dir) if layout == "t2v-bench" else scan_vbench(video_dir)
    return layout, found, []


def suite_from_found(found: list[Found], label: str) -> PromptSuite:
    """When no suite is given: the prompts the names or the map carry (VBench's custom_input reading)."""
    from bench.suite_loaders import prompt_id_for

    prompts: dict[str, Prompt] = {}
    for f in found:
        if f.text:
            pid = f.prompt_id or prompt_id_for(f.text)
            prompts.setdefault(pid, Prompt(pid, f.text))
    blob = json.dumps(sorted((p.id, p.text) for p in prompts.values()), ensure_ascii=False).encode()
    return PromptSuite(name=f"{label}-names", version="derived", prompts=tuple(prompts.values()),
                       sha256=hashlib.sha256(blob).hexdigest(), source=f"derived from the {label} file names",
                       description="prompts read from the file names or map (no --prompts given)")


def match(found: list[Found], suite: PromptSuite) -> tuple[list[Matched], list[str], list[Prompt], dict[str, str]]:
    """Files -> (prompt, sample); returns (the usable matches, one line per problem, prompts with no video, the
    rejected files: path -> 'unmatched' or 'duplicate')."""
    by_id = {p.id: p for p in suite.prompts}
    by_text: dict[str, Prompt | None] = {}
    for p in suite.prompts:
        for key in {p.text, p.text[:VBENCH_TRUNCATE], vbench_stem(p.text)}:
            by_text[key] = p if by_text.get(key, p) == p else None  # None: two prompts share this name
    matched, problems, rejected = [], [], {}
    for f in found:
        prompt = by_id.get(f.prompt_id) if f.prompt_id else None
        if prompt is None and f.text:
            prompt = by_text.get(f.text) or by_text.get(f.text.strip())
            if prompt is None and by_text.get(f.text, 0) is None:
                problems.append(f"{f.rel}: its name fits several prompts of suite '{suite.name}'; use --map FILE")
                rejected[f.rel] = "unmatched"
                continue
        if prompt is None:
            what = f"prompt id '{f.prompt_id}'" if f.prompt_id and not f.text else f"'{(f.text or '')[:80]}'"
            problems.append(f"{f.rel}: matches no prompt of suite '{suite.name}' ({what})")
            rejected[f.rel] = "unmatched"
            continue
        matched.append(Matched(f, prompt, f.sample or 0))
    claims: dict[tuple[str, int], list[Matched]] = {}
    for m in matched:
        claims.setdefault((m.prompt.id, m.sample), []).append(m)
    kept = []
    for (pid, k), ms in claims.items():
        if len(ms) > 1:
            problems.append(f"{', '.join(m.found.rel for m in ms)}: {len(ms)} files claim sample {k} of prompt "
                            f"'{pid}'; none of them is scored (remove or rename all but one)")
            rejected.update({m.found.rel: "duplicate" for m in ms})
        else:
            kept.append(ms[0])
    order = {p.id: i for i, p in enumerate(suite.prompts)}
    kept.sort(key=lambda m: (order[m.prompt.id], m.sample))
    have = {m.prompt.id for m in kept} | {pid for (pid, _), ms in claims.items() if len(ms) > 1}
    missing = [p for p in suite.prompts if p.id not in have]
    return kept, problems, missing, rejected
