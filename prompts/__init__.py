"""Versioned prompt suites shipped with t2v-bench (see prompts/README.md for the format)."""
from pathlib import Path

SUITES_DIR = Path(__file__).parent
