"""The CLI: one clear line and a non-zero exit for bad input; ls lists everything."""
import pytest

from bench.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_ls_lists_methods_metrics_suites_configs(capsys):
    code, out, _ = run_cli(capsys, "ls")
    assert code == 0
    for name in ("per_frame", "animatediff", "clip_score", "temporal_flickering", "smoke"):
        assert name in out


@pytest.mark.parametrize("argv,needle", [
    (["run", "--methods", "animatedif"], "did you mean 'animatediff'"),
    (["run", "--frames", "0"], "num_frames: must be >= 1"),
    (["run", "--height", "30"], "height: must be a positive multiple of 8"),
    (["run", "--steps", "0"], "num_inference_steps: must be >= 1"),
    (["run", "--prompts", "no/such/file.yaml"], "does not exist"),
    (["run", "--prompts", "smok"], "did you mean 'smoke'"),
    (["run", "--config", "smok"], "did you mean 'smoke'"),
    (["run", "--reference", "per_frme"], "did you mean 'per_frame'"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, argv, needle):
    code, _, err = run_cli(capsys, *argv, "--out", str(tmp_path / "run"))
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]


def test_missing_weights_path(capsys, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"base: {{model: {tmp_path / 'missing'}}}\nmethods: [per_frame]\n")
    code, _, err = run_cli(capsys, "run", "--config", str(cfg), "--out", str(tmp_path / "run"))
    assert code == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1


def test_run_prints_where_the_report_is(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "run", "--methods", "per_frame", "--frames", "2", "--steps", "1",
                           "--height", "32", "--width", "32", "--no-progress", "--out", str(tmp_path / "r"))
    assert code == 0 and f"report: {tmp_path / 'r' / 'report.md'}" in out
    code, out, _ = run_cli(capsys, "run", "--methods", "per_frame", "--frames", "2", "--steps", "1",
                           "--height", "32", "--width", "32", "--no-progress", "--out", str(tmp_path / "r"))
    assert "0 generated" in out
