"""User-facing errors: the CLI prints them as one line and exits non-zero, without a traceback."""
from __future__ import annotations

import difflib
from typing import Iterable


class UserError(Exception):
    """Bad input the user can fix; the message names the fix."""

    exit_code = 2


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"{hint}choose from: {', '.join(choices)}"
