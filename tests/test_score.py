"""`t2v-bench score` / `export`: round trip, bad input, a leaderboard mixing a generated and an imported run."""
from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import statistics
from pathlib import Path

import numpy as np
import pytest

from bench.cli import main

# Prompt texts that stress file names: spaces, commas, quotes, unicode, a slash, a trailing "-<digits>".
PROMPTS = [
    {"id": "p-comma", "text": 'a red ball, bouncing "high"', "tags": ["object", "motion"]},
    {"id": "p-unicode", "text": "l'été à Paris — 東京 at night", "tags": ["scene"]},
    {"id": "p-slash", "text": "a cat / dog on a mat", "tags": ["object"]},
    {"id": "p-count", "text": "a countdown 3-2-1", "tags": ["motion", "scene"]},
]


def tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A 1-method run on the tiny models (4 frames 32x32, 1 step) over the awkward prompts above."""
    root = tmp_path_factory.mktemp("score")
    suite = root / "awkward.jsonl"
    suite.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in PROMPTS), encoding="utf-8")
    cfg = root / "tiny.yaml"
    cfg.write_text(f"""name: tiny
base: {{model: tiny, seed: 0}}
methods: {{per_frame: {{}}}}
prompts: {suite}
sampling: {{num_frames: 4, height: 32, width: 32, num_inference_steps: 1, guidance_scale: 7.5, fps: 8}}
metrics: [clip_score, frame_consistency, temporal_flickering_all, fvd]
fvd: {{detector: smoke, reference: procedural, procedural_videos: 4, num_frames: 4}}
clip: {{model: tiny, pretrained: null, seed: 0}}
device: cpu
""")
    assert main(["run", "--config", str(cfg), "--out", str(root / "gen"), "--no-progress"]) == 0
    assert main(["export", str(root / "gen"), "--out", str(root / "vb")]) == 0
    return root


def metrics_of(run: Path, method: str) -> dict:
    return json.loads((run / "run.json").read_text())["methods"][method]["metrics"]


def test_round_trip_generate_export_score(generated, capsys):
    root, vb = generated, generated / "vb" / "per_frame"
    names = sorted(p.name for p in vb.iterdir())
    # VBench names: the prompt verbatim + "-<index>.mp4"; '/' cannot be in a file name and becomes '_'.
    assert names == sorted(['a red ball, bouncing "high"-0.mp4', "l'été à Paris — 東京 at night-0.mp4",
                            "a cat _ dog on a mat-0.mp4", "a countdown 3-2-1-0.mp4"])
    prompt_file = json.loads((root / "vb" / "per_frame.prompts.json").read_text())
    assert prompt_file["a cat _ dog on a mat-0.mp4"] == "a cat / dog on a mat"
    for name, prompt in prompt_file.items():  # VBench's get_prompt_from_filename reads the prompt back
        assert re.sub(r"-\d+$", "", Path(name).stem) == prompt.replace("/", "_")
    before = tree(vb)
    assert main(["score", str(vb), "--name", "theirs", "--prompts", str(root / "awkward.jsonl"),
                 "--config", str(root / "tiny.yaml"), "--out", str(root / "imp")]) == 0
    assert tree(vb) == before  # nothing written into the user's folder
    gen, imp = metrics_of(root / "gen", "per_frame"), metrics_of(root / "imp", "theirs")
    for name in ("clip_score", "frame_consistency", "temporal_flickering_all", "fvd"):
        assert abs(gen[name]["value"] - imp[name]["value"]) <= 1e-6, name
        # and so does the breakdown by prompt tag (FVD: none, 2 videos a tag are too few; both records say why)
        assert set(gen[name]["by_tag"]) == set(imp[name]["by_tag"]) and gen[name].get("by_tag_note") == imp[name].get(
            "by_tag_note")
        for tag, s in gen[name]["by_tag"].items():
            assert imp[name]["by_tag"][tag]["n"] == s["n"]
            assert imp[name]["by_tag"][tag]["mean"] == pytest.approx(s["mean"], abs=2e-6), (name, tag)
    assert gen["fvd"]["by_tag"] == {} and "at least 10 videos" in gen["fvd"]["by_tag_note"]
    for p in PROMPTS:  # lossless export: the stored frames are bit-identical
        a = np.load(root / "gen" / "videos" / "per_frame" / f"{p['id']}-s0.npy")
        b = np.load(root / "imp" / "videos" / "theirs" / f"{p['id']}-s0.npy")
        assert np.array_equal(a, b)
    rec = json.loads((root / "imp" / "run.json").read_text())
    assert rec["origin"] == "imported" and rec["methods"]["theirs"]["origin"] == "imported"
    assert rec["import"]["layout"] == "vbench"
    assert rec["import"]["counts"] == {"found": 4, "matched": 4, "scored": 4, "failed": 0, "prompts_without_video": 0}
    for f in rec["import"]["files"]:
        assert f["sha256"] == hashlib.sha256((vb / f["path"]).read_bytes()).hexdigest()


def test_tag_breakdown_matches_a_hand_computation(generated):
    """by_tag from run.json against means and Student-t 95% intervals computed here from samples.jsonl."""
    root = generated
    rows = [json.loads(line) for line in (root / "gen" / "samples.jsonl").read_text().splitlines()]
    tags = {p["id"]: p["tags"] for p in PROMPTS}
    by_tag = metrics_of(root / "gen", "per_frame")["clip_score"]["by_tag"]
    assert set(by_tag) == {"object", "motion", "scene"}
    for tag, s in by_tag.items():
        values = [r["metrics"]["clip_score"] for r in rows if tag in tags[r["prompt_id"]]]
        assert s["n"] == len(values) == 2
        t975 = {2: 12.7062047}[len(values)]  # Student t, 1 degree of freedom (bench.stats.mean_ci)
        mean, half = statistics.fmean(values), t975 * statistics.stdev(values) / math.sqrt(len(values))
        assert s["mean"] == pytest.approx(mean, abs=1e-5)
        assert s["ci95"] == pytest.approx([mean - half, mean + half], abs=1e-5)
    assert "by prompt tag" in (root / "gen" / "report.md").read_text()


def test_leaderboard_mixes_generated_and_imported(generated, tmp_path, capsys):
    root = generated
    if not (root / "imp" / "run.json").is_file():
        assert main(["score", str(root / "vb" / "per_frame"), "--name", "theirs", "--prompts",
                     str(root / "awkward.jsonl"), "--config", str(root / "tiny.yaml"), "--out", str(root / "imp")]) == 0
    assert main(["leaderboard", str(root / "gen"), str(root / "imp"), "--out", str(tmp_path / "lb")]) == 0
    md = (tmp_path / "lb" / "leaderboard.md").read_text()
    assert "| per_frame " in md and "| theirs " in md
    # The same videos scored at another size: resized by the recorded rule, and the leaderboard names the difference.
    capsys.readouterr()
    assert main(["score", str(root / "vb" / "per_frame"), "--name", "small", "--prompts", str(root / "awkward.jsonl"),
                 "--config", str(root / "tiny.yaml"), "--height", "16", "--width", "24", "--out",
                 str(root / "imp16")]) == 0
    assert "resized 4 video(s) from 32x32 to 16x24" in capsys.readouterr().err
    assert main(["leaderboard", str(root / "gen"), str(root / "imp16"), "--out", str(tmp_path / "lb2")]) == 2
    err = capsys.readouterr().err
    assert "not comparable" in err and "height 32 vs 16" in err and "steps" not in err


def test_bad_input_is_named_and_the_rest_is_scored(generated, tmp_path, capsys):
    root, vb = generated, generated / "vb" / "per_frame"
    bad = tmp_path / "videos"
    shutil.copytree(vb, bad)
    good = bad / 'a red ball, bouncing "high"-0.mp4'
    (bad / "a cat _ dog on a mat-0.mp4").unlink()  # this prompt now has no video
    data = (bad / "a countdown 3-2-1-0.mp4").read_bytes()
    (bad / "a countdown 3-2-1-0.mp4").write_bytes(data[: len(data) // 3])  # truncated
    (bad / "no such prompt-0.mp4").write_bytes(good.read_bytes())  # matches no prompt
    shutil.copy(good, bad / 'a red ball, bouncing "high"-0.webm')  # a second file for the same sample
    (bad / "l'été à Paris — 東京 at night-1.mp4").write_bytes(b"not a video at all")  # unreadable
    import av
    with av.open(str(bad / "a countdown 3-2-1-4.mp4"), "w") as container:  # a valid mp4 with zero frames
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        container.start_encoding()
    before = tree(bad)
    rc = main(["score", str(bad), "--name", "messy", "--prompts", str(root / "awkward.jsonl"),
               "--config", str(root / "tiny.yaml"), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert rc == 1
    assert tree(bad) == before
    lines = err.splitlines()
    for needle in ("a countdown 3-2-1-0.mp4: ", "no such prompt-0.mp4: matches no prompt",
                   "claim sample 0 of prompt 'p-comma'", "l'été à Paris — 東京 at night-1.mp4: unreadable",
                   "a countdown 3-2-1-4.mp4: zero frames", "no video for prompt p-slash"):
        assert sum(needle in line for line in lines) == 1, (needle, err)
    rec = json.loads((tmp_path / "run" / "run.json").read_text())
    assert rec["import"]["counts"] == {"found": 7, "matched": 6, "scored": 1, "failed": 6,
                                       "prompts_without_video": 1}
    status = {f["path"]: f["status"] for f in rec["import"]["files"]}
    assert status["no such prompt-0.mp4"] == "unmatched" and status[good.name] == "duplicate"
    assert status["l'été à Paris — 東京 at night-0.mp4"] == "imported"
    assert status["a countdown 3-2-1-4.mp4"].startswith("failed: zero frames") and len(status) == 7
    # The one good video is scored exactly as in the generated run.
    gen_rows = {r["prompt_id"]: r for r in map(json.loads, (root / "gen" / "samples.jsonl").read_text().splitlines())}
    rows = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert [r["prompt_id"] for r in rows] == ["p-unicode"]
    for k, v in rows[0]["metrics"].items():
        assert v == pytest.approx(gen_rows["p-unicode"]["metrics"][k], abs=1e-6)


def test_nothing_usable_exits_2_and_out_inside_video_dir_is_refused(generated, tmp_path, capsys):
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a red ball-0.mp4").write_bytes(b"\x00" * 100)
    assert main(["score", str(junk), "--name", "x", "--config", str(generated / "tiny.yaml"),
                 "--out", str(tmp_path / "run")]) == 2
    assert "nothing usable" in capsys.readouterr().err
    vb = generated / "vb" / "per_frame"
    assert main(["score", str(vb), "--name", "x", "--out", str(vb / "run")]) == 2
    assert "never written to" in capsys.readouterr().err
    assert not (vb / "run").exists()


def test_t2v_bench_layout_reads_a_run_folder_with_its_suite(generated):
    """Another run's method folder, without --prompts: the suite named in that run's config.json, .npy frames."""
    root = generated
    assert main(["score", str(root / "gen" / "videos" / "per_frame"), "--name", "again", "--config",
                 str(root / "tiny.yaml"), "--out", str(root / "again")]) == 0
    gen, again = (json.loads((root / r / "run.json").read_text()) for r in ("gen", "again"))
    assert again["import"]["layout"] == "t2v-bench" and again["suite"]["sha256"] == gen["suite"]["sha256"]
    assert {f["path"].rsplit(".", 1)[1] for f in again["import"]["files"]} == {"npy"}
    for name, m in gen["methods"]["per_frame"]["metrics"].items():
        assert abs(m["value"] - again["methods"]["again"]["metrics"][name]["value"]) <= 1e-6, name
