"""Text embeddings computed once per prompt per text encoder for a whole run: every method, batch and
classifier-free-guidance negative prompt of a run shares the same frozen text encoder, so a prompt is encoded once
instead of once per method and batch.

The runner attaches one cache to the base components it loads (`BaseComponents.text_cache`); code that trains or
edits a text encoder never sees one. Entries are keyed by the encoder object, the text, and the output device and
dtype; an encoder whose weights change in place (a parameter's version counter moves) starts a fresh table.
"""
from __future__ import annotations

import weakref
from typing import Callable, Sequence

import torch


class TextEmbeddingCache:
    def __init__(self, max_entries: int = 8192):
        self.max_entries = max_entries
        self._tables: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def _weights_version(encoder: torch.nn.Module) -> int:
        return sum(p._version for p in encoder.parameters())

    def embed(self, encoder: torch.nn.Module, texts: Sequence[str], device: torch.device, dtype: torch.dtype,
              encode: Callable[[list[str]], torch.Tensor]) -> torch.Tensor:
        """(len(texts), L, D): cached rows, with the missing texts encoded by `encode` in one batch."""
        version = self._weights_version(encoder)
        stamp, table = self._tables.get(encoder, (None, None))
        if stamp != version or table is None:
            table = {}
            self._tables[encoder] = (version, table)
        context = (str(device), dtype)
        missing = list(dict.fromkeys(t for t in texts if (t, context) not in table))
        if missing and len(table) + len(missing) > self.max_entries:
            table.clear()  # a suite larger than the cache: recompute rather than grow without bound
            missing = list(dict.fromkeys(texts))
        if missing:
            for text, row in zip(missing, encode(missing)):
                table[(text, context)] = row
        self.misses += len(missing)
        self.hits += len(texts) - len(missing)
        return torch.stack([table[(t, context)] for t in texts])
