"""Prompt suites from the files users already have, read in place (loaders, not copies):

- VBench's `VBench_full_info.json`: a list of `{"prompt_en": ..., "dimension": [...]}`; the dimensions become tags.
  A prompt listed under several entries (VBench lists two twice) is one prompt with the union of their tags.
- a plain text file: one prompt a line (blank lines skipped), e.g. VBench's `prompts/all_dimension.txt`.
- a caption CSV such as MSR-VTT's test split (`video_id,sentence`, CLIP4Clip's `MSRVTT_JSFUSION_test.csv` has
  `key,vid_key,video_id,sentence`): the caption column is the first of sentence/caption/name/text/prompt; a
  `category` column, when present, becomes a tag.

Ids are derived from the text (a slug plus 8 hex digits of its sha256), so the same prompt has the same id in
every file that holds it, and ids stay valid file names whatever the text (spaces, quotes, unicode).
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from pathlib import Path

from bench.errors import UserError
from bench.prompts import Prompt, PromptSuite

CAPTION_COLUMNS = ("sentence", "caption", "name", "text", "prompt")
VIDEO_ID_COLUMNS = ("video_id", "videoid", "vid_key", "key", "id")


def prompt_id_for(text: str) -> str:
    """'A cat, "Tom" on a mat' -> 'a-cat-tom-on-a-mat-1b2c3d4e': readable, unique per text, file-name safe."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40].strip("-")
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{slug}-{digest}" if slug else f"p-{digest}"


def _merge(texts_tags: list[tuple[str, tuple[str, ...]]]) -> tuple[Prompt, ...]:
    """Prompts in first-seen order; a repeated text keeps one entry with the union of its tags."""
    merged: dict[str, list[str]] = {}
    for text, tags in texts_tags:
        bucket = merged.setdefault(text, [])
        bucket += [t for t in tags if t not in bucket]
    return tuple(Prompt(prompt_id_for(t), t, tuple(tags)) for t, tags in merged.items())


def load_vbench_info(path: Path, raw: bytes) -> tuple[tuple[Prompt, ...], dict]:
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc}); expected VBench_full_info.json's list of "
                        "{\"prompt_en\", \"dimension\"} objects") from None
    if not isinstance(doc, list) or not all(isinstance(e, dict) and isinstance(e.get("prompt_en"), str)
                                            for e in doc):
        raise UserError(f"{path}: expected a list of {{\"prompt_en\": ..., \"dimension\": [...]}} objects "
                        "(VBench_full_info.json)")
    entries = []
    for e in doc:
        dims = e.get("dimension") or []
        entries.append((e["prompt_en"].strip(), tuple(str(d) for d in ([dims] if isinstance(dims, str) else dims))))
    return _merge(entries), {"format": "vbench_full_info", "entries": len(doc)}


def load_text(path: Path, raw: bytes) -> tuple[tuple[Prompt, ...], dict]:
    lines = [line.strip() for line in raw.decode("utf-8").splitlines()]
    texts = [line for line in lines if line]
    return _merge([(t, ()) for t in texts]), {"format": "text", "lines": len(texts)}


def load_caption_csv(path: Path, raw: bytes) -> tuple[tuple[Prompt, ...], dict]:
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    columns = [c.strip() for c in (rows[0].keys() if rows else [])]
    caption = next((c for c in CAPTION_COLUMNS if c in columns), None)
    if caption is None:
        raise UserError(f"{path}: no caption column; expected one of {', '.join(CAPTION_COLUMNS)} "
                        f"(found {', '.join(columns) or 'no header'}), e.g. MSR-VTT's video_id,sentence")
    vid = next((c for c in VIDEO_ID_COLUMNS if c in columns), None)
    entries = []
    for row in rows:
        text = (row.get(caption) or "").strip()
        if text:
            tags = tuple(t for t in [(row.get("category") or "").strip()] if t)
            entries.append((text, tags))
    meta = {"format": "caption_csv", "caption_column": caption, "video_id_column": vid, "rows": len(rows)}
    if vid:  # which source video each caption describes: kept so a reader can trace the protocol
        meta["videos"] = len({row.get(vid) for row in rows})
    return _merge(entries), meta


LOADERS = {".json": load_vbench_info, ".txt": load_text, ".csv": load_caption_csv}


def load_foreign_suite(path: Path, raw: bytes) -> PromptSuite:
    """A suite from a VBench JSON, a text file or a caption CSV (by suffix); sha256 of the file's bytes."""
    prompts, meta = LOADERS[path.suffix.lower()](path, raw)
    if not prompts:
        raise UserError(f"{path}: no prompts in the file")
    return PromptSuite(name=path.stem, version="file", prompts=prompts, sha256=hashlib.sha256(raw).hexdigest(),
                       source=str(path), description=f"loaded from {path.name} ({meta['format']})", meta=meta)
