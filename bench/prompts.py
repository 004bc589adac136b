"""Prompt suites: YAML (`name`, `version`, `prompts: [{id, text, tags, negative_prompt}]`) or JSONL (one such object
a line). `negative_prompt` (optional) is added to the run's `sampling.negative_prompt` for that prompt."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bench.errors import UserError, did_you_mean
from prompts import SUITES_DIR

FOREIGN_SUFFIXES = (".json", ".txt", ".csv")  # read by bench.suite_loaders


@dataclass(frozen=True)
class Prompt:
    id: str
    text: str
    tags: tuple[str, ...] = ()
    negative_prompt: str | None = None  # this prompt's own, added to sampling.negative_prompt


def combined_negative(global_negative: str | None, own: str | None) -> str | None:
    """The negative prompt of one item: the run's global one, then the prompt's own, joined with ", "."""
    parts = [p.strip() for p in (global_negative, own) if p and p.strip()]
    return ", ".join(parts) or None


@dataclass(frozen=True)
class PromptSuite:
    name: str
    version: str
    prompts: tuple[Prompt, ...]
    sha256: str
    source: str
    description: str = ""
    meta: dict = field(default_factory=dict, hash=False, compare=False)


def suite_names() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.iterdir() if p.suffix in (".yaml", ".yml", ".jsonl"))


def _suite_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml", ".jsonl", *FOREIGN_SUFFIXES) or path.exists():
        if not path.is_file():
            raise UserError(f"prompt file '{name_or_path}' does not exist; pass a suite name ({', '.join(suite_names())}) "
                            "or an existing .yaml/.jsonl file (or a VBench .json, a .txt or a caption .csv)")
        return path
    for suffix in (".yaml", ".yml", ".jsonl"):
        candidate = SUITES_DIR / f"{name_or_path}{suffix}"
        if candidate.is_file():
            return candidate
    raise UserError(f"unknown prompt suite '{name_or_path}': {did_you_mean(name_or_path, suite_names())}")


def _prompt_from(entry: object, where: str) -> Prompt:
    if not isinstance(entry, dict) or "id" not in entry or "text" not in entry:
        raise UserError(f"{where}: each prompt needs an 'id' and a 'text', e.g. {{id: p-001, text: \"a cat\"}}")
    pid, text = str(entry["id"]).strip(), str(entry["text"]).strip()
    if not pid or not text:
        raise UserError(f"{where}: prompt 'id' and 'text' must not be empty")
    if any(c in pid for c in "/\\ ") or pid.startswith("."):
        raise UserError(f"{where}: prompt id '{pid}' must not contain '/', '\\' or spaces (it names files)")
    tags = entry.get("tags") or ()
    if isinstance(tags, str):
        tags = (tags,)
    negative = entry.get("negative_prompt")
    if negative is not None and not isinstance(negative, str):
        raise UserError(f"{where}: prompt '{pid}' negative_prompt must be a string")
    return Prompt(pid, text, tuple(str(t) for t in tags), (negative.strip() or None) if negative else None)


def load_suite(name_or_path: str) -> PromptSuite:
    path = _suite_path(name_or_path)
    raw = path.read_bytes()
    if path.suffix.lower() in FOREIGN_SUFFIXES:  # VBench_full_info.json, a text file, MSR-VTT captions
        from bench.suite_loaders import load_foreign_suite
        return load_foreign_suite(path, raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start}); save the prompt file as UTF-8") from None
    meta: dict = {}
    prompts: list[Prompt] = []
    if path.suffix == ".jsonl":
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}:{lineno}: not valid JSON ({exc.msg}); each line must be one {{\"id\", \"text\"}} object") from None
            prompts.append(_prompt_from(entry, f"{path}:{lineno}"))
        name, version, description = path.stem, "1", ""
    else:
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f":{mark.line + 1}" if mark else ""
            raise UserError(f"{path}{line}: malformed YAML ({getattr(exc, 'problem', exc)})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("prompts"), list):
            raise UserError(f"{path}: a suite file needs a top-level 'prompts:' list (see prompts/README.md)")
        for i, entry in enumerate(doc["prompts"]):
            prompts.append(_prompt_from(entry, f"{path}: prompts[{i}]"))
        name = str(doc.get("name", path.stem))
        version = str(doc.get("version", "1"))
        description = str(doc.get("description", ""))
        meta = {k: v for k, v in doc.items() if k not in ("name", "version", "description", "prompts")}
    if not prompts:
        raise UserError(f"{path}: the suite has no prompts")
    seen: set[str] = set()
    for p in prompts:
        if p.id in seen:
            raise UserError(f"{path}: duplicate prompt id '{p.id}'; ids must be unique within a suite")
        seen.add(p.id)
    return PromptSuite(name=name, version=version, prompts=tuple(prompts), sha256=hashlib.sha256(raw).hexdigest(),
                       source=str(path), description=description, meta=meta)
