"""Cold start: listing, help and the report commands never load torch or diffusers (a property checked on
sys.modules in a fresh interpreter; the times are measured by tests/benchmarks/cold_start.py)."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

BASELINE = Path(__file__).parent.parent / "results" / "baselines" / "toy.json"
HEAVY = ("torch", "diffusers", "transformers", "open_clip")

PROBE = """
import sys, json
from bench.cli import main
try:
    rc = main(sys.argv[1:])
except SystemExit as exc:  # --help exits 0 through argparse
    rc = exc.code
print(json.dumps({"rc": rc, "loaded": [m for m in %r if m in sys.modules]}))
""" % (HEAVY,)


def probe(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("args", [["ls"], ["--help"], ["run", "--help"], ["compare", "--help"], ["ls", "methods"]])
def test_listing_and_help_load_no_heavy_library(args):
    assert probe(*args) == {"rc": 0, "loaded": []}


def test_compare_report_and_leaderboard_load_no_torch(tmp_path):
    assert probe("compare", str(BASELINE), str(BASELINE)) == {"rc": 0, "loaded": []}
    assert probe("report", str(BASELINE), "--out", str(tmp_path / "rep"), "--format", "md,html,plots")["loaded"] == []
    assert probe("leaderboard", str(BASELINE), "--out", str(tmp_path / "lb")) == {"rc": 0, "loaded": []}
    assert (tmp_path / "lb" / "leaderboard.md").is_file()


def test_run_still_silences_library_chatter_once_libraries_load():
    code = ("import os, sys; from bench.cli import main; main(['ls', 'configs']); "
            "import diffusers.utils.logging as l; print(l.get_verbosity())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.strip().splitlines()[-1] == "40"  # logging.ERROR


def test_ls_configs_lists_what_load_config_accepts(capsys):
    from bench.cli import main
    from bench.config import config_names

    assert main(["ls", "configs"]) == 0
    listed = [line.strip() for line in capsys.readouterr().out.splitlines()[1:]]
    assert listed == config_names()
