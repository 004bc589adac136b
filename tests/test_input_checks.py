"""Issue 12, items 2-6: inputs that used to overwrite, trust, reinterpret or fail late now fail early in one line,
and nothing finished is ever silently lost or silently wrong."""
import hashlib
import json
import logging

import numpy as np
import pytest
import torch

from bench.cli import main
from bench.errors import UserError


def cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, [line for line in err.splitlines() if line.strip()]


def small_config(tmp_path, ids=("p-a", "p-b"), extra=""):
    prompts = tmp_path / "prompts.jsonl"
    texts = ["a red ball", "a blue cat", "a green tree", "a dog"]
    prompts.write_text("".join(json.dumps({"id": i, "text": texts[k % 4]}) + "\n" for k, i in enumerate(ids)))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"name: t\nbase: {{model: tiny}}\nmethods: [per_frame]\nprompts: {prompts}\n"
                   "sampling: {num_frames: 2, height: 32, width: 32, num_inference_steps: 1, guidance_scale: 2.0}\n"
                   "metrics: [clip_score, temporal_flickering]\nclip: {model: tiny}\ndevice: cpu\n" + extra)
    return cfg


def run_args(cfg, out, *more):
    return ["--config", cfg, "--out", out, "--no-progress", *more]


def items(out):
    return sorted((out / "videos" / "per_frame").glob("*.npy"))


# ------------------------------------------------------------------------------------------ item 2: naming
def test_prompt_ids_with_dots_get_their_own_files(capsys, tmp_path):
    cfg = small_config(tmp_path, ids=("x.alpha", "x.beta"))
    code, out, _ = cli(capsys, "run", *run_args(cfg, tmp_path / "r", "--samples", 2))
    assert code == 0, out
    assert [p.name for p in items(tmp_path / "r")] == ["x.alpha-s0.npy", "x.alpha-s1.npy", "x.beta-s0.npy",
                                                       "x.beta-s1.npy"]
    counts = json.loads((tmp_path / "r" / "run.json").read_text())["methods"]["per_frame"]["counts"]
    assert counts["planned"] == counts["finished"] == 4


def test_missing_videos_are_named_in_the_summary_and_exit_1(capsys, tmp_path):
    cfg = small_config(tmp_path)
    assert cli(capsys, "generate", *run_args(cfg, tmp_path / "r"))[0] == 0
    (tmp_path / "r" / "videos" / "per_frame" / "p-a-s0.json").unlink()
    code, out, err = cli(capsys, "evaluate", *run_args(cfg, tmp_path / "r"))
    assert code == 1
    assert "1 of 2 planned videos missing" in out
    assert len(err) == 1 and err[0].startswith("error: 1 planned video(s) are missing")


# ------------------------------------------------------------------------------------------ item 3: frame hashes
def test_sidecar_records_the_frames_sha256(capsys, tmp_path):
    cfg = small_config(tmp_path)
    assert cli(capsys, "generate", *run_args(cfg, tmp_path / "r"))[0] == 0
    for npy in items(tmp_path / "r"):
        meta = json.loads(npy.with_name(npy.name[:-4] + ".json").read_text())
        assert meta["frames_sha256"] == hashlib.sha256(npy.read_bytes()).hexdigest()


def test_truncated_frames_fail_that_item_in_evaluate_naming_the_file(capsys, caplog, tmp_path):
    cfg = small_config(tmp_path)
    assert cli(capsys, "generate", *run_args(cfg, tmp_path / "r"))[0] == 0
    bad = items(tmp_path / "r")[0]
    bad.write_bytes(bad.read_bytes()[:100])
    with caplog.at_level(logging.WARNING, logger="t2v_bench"):
        code, out, err = cli(capsys, "evaluate", *run_args(cfg, tmp_path / "r"))
    assert code == 1 and len(err) == 1 and "Traceback" not in caplog.text + "".join(err)
    assert str(bad) in caplog.text and "cannot be read" in caplog.text
    record = json.loads((tmp_path / "r" / "run.json").read_text())["methods"]["per_frame"]
    assert record["counts"]["failed"] == 1 and record["metrics"]["clip_score"]["n"] == 1
    assert len((tmp_path / "r" / "samples.jsonl").read_text().splitlines()) == 1


def test_same_size_corruption_is_detected_and_regenerated_by_run(capsys, caplog, tmp_path):
    cfg = small_config(tmp_path)
    assert cli(capsys, "run", *run_args(cfg, tmp_path / "r"))[0] == 0
    first = json.loads((tmp_path / "r" / "run.json").read_text())["methods"]["per_frame"]["metrics"]
    bad = items(tmp_path / "r")[1]
    good_bytes = bad.read_bytes()
    array = np.load(bad)
    np.save(bad, 255 - array)  # same size, same shape and dtype: only the hash can tell
    assert bad.stat().st_size == len(good_bytes)
    with caplog.at_level(logging.WARNING, logger="t2v_bench"):
        code, out, _ = cli(capsys, "run", *run_args(cfg, tmp_path / "r"))
    assert code == 0 and "1 generated, 1 already done" in out
    warnings = [r.getMessage() for r in caplog.records if str(bad) in r.getMessage()]
    assert len(warnings) == 1 and "sha256 does not match" in warnings[0] and "regenerated" in warnings[0]
    assert bad.read_bytes() == good_bytes  # the same seed gives the same frames back
    again = json.loads((tmp_path / "r" / "run.json").read_text())["methods"]["per_frame"]["metrics"]
    assert again["clip_score"]["value"] == first["clip_score"]["value"]


def test_an_old_sidecar_without_a_hash_is_used_with_one_warning(capsys, caplog, tmp_path):
    cfg = small_config(tmp_path)
    assert cli(capsys, "generate", *run_args(cfg, tmp_path / "r"))[0] == 0
    for npy in items(tmp_path / "r"):
        meta_path = npy.with_name(npy.name[:-4] + ".json")
        meta = json.loads(meta_path.read_text())
        del meta["frames_sha256"]
        meta_path.write_text(json.dumps(meta))
    with caplog.at_level(logging.WARNING, logger="t2v_bench"):
        code, out, _ = cli(capsys, "run", *run_args(cfg, tmp_path / "r"))
    assert code == 0 and "0 generated, 2 already done" in out
    assert caplog.text.count("has no frames_sha256") == 1


# ------------------------------------------------------------------------------------------ item 4: numbers
@pytest.mark.parametrize("flags,needle", [
    (["--guidance", "nan"], "sampling.guidance_scale: must be a finite number"),
    (["--guidance", "inf"], "sampling.guidance_scale: must be a finite number"),
    (["--guidance", "-1"], "sampling.guidance_scale: must be >= 0"),
    (["--height", "100000"], "sampling.height: must be <= 4096"),
])
def test_bad_numbers_on_the_command_line_are_refused(capsys, tmp_path, flags, needle):
    code, _, err = cli(capsys, "run", *run_args(small_config(tmp_path), tmp_path / "r", *flags))
    assert code == 2 and len(err) == 1 and needle in err[0]
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("extra,needle", [
    ("seed: .nan\n", "seed: must be a finite number"),
    ("batch_size: .inf\n", "batch_size: must be a finite number"),
    ("fvd: {procedural_videos: .nan}\n", "fvd.procedural_videos: must be a finite number"),
])
def test_non_finite_numbers_in_a_config_are_refused(capsys, tmp_path, extra, needle):
    code, _, err = cli(capsys, "run", *run_args(small_config(tmp_path, extra=extra), tmp_path / "r"))
    assert code == 2 and len(err) == 1 and needle in err[0]


def test_non_finite_method_options_and_lora_scale_are_refused(capsys, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("base: {model: tiny, lora_scale: .inf}\nmethods: [per_frame]\n")
    code, _, err = cli(capsys, "run", "--config", cfg, "--out", tmp_path / "r")
    assert code == 2 and len(err) == 1 and "base.lora_scale: must be a finite number" in err[0]
    cfg.write_text("base: {model: tiny}\nmethods: {dual_stream: {motion_weight: .nan}}\n")
    code, _, err = cli(capsys, "run", "--config", cfg, "--out", tmp_path / "r")
    assert code == 2 and len(err) == 1 and "dual_stream.motion_weight: nan is not a finite number" in err[0]


@pytest.mark.parametrize("guidance,cfg_on", [(0.0, False), (1.0, False), (1.5, True)])
def test_run_json_records_whether_guidance_ran(tmp_path, guidance, cfg_on):
    from bench.config import load_config
    from bench.runner import Runner

    runner = Runner(load_config(str(small_config(tmp_path)), {"sampling.guidance_scale": guidance}), tmp_path / "r",
                    progress=False)
    assert runner.record({}, {}, [])["sampling"]["cfg"] is cfg_on


def test_non_finite_frames_fail_the_item_and_are_never_scored(capsys, caplog, tmp_path, monkeypatch):
    from methods.per_frame import PerFrame

    original = PerFrame.generate

    def nan_for_cat(self, requests):
        videos = original(self, requests)
        for r, v in zip(requests, videos):
            if "cat" in r.prompt:
                v.frames[0, 0, 0, 0] = float("nan")
        return videos

    monkeypatch.setattr(PerFrame, "generate", nan_for_cat)
    with caplog.at_level(logging.ERROR, logger="t2v_bench"):
        code, out, err = cli(capsys, "run", *run_args(small_config(tmp_path), tmp_path / "r"))
    assert code == 1 and "1 failed" in out and len(err) == 1
    assert "p-b-s0" in caplog.text and "non-finite" in caplog.text
    assert [p.name for p in items(tmp_path / "r")] == ["p-a-s0.npy"]
    record = json.loads((tmp_path / "r" / "run.json").read_text())["methods"]["per_frame"]
    assert record["metrics"]["clip_score"]["n"] == 1


# ------------------------------------------------------------------------------------------ item 5: weights first
@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    """No Hugging Face cache and no open_clip URL cache, offline: whatever this machine has cached."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "hf-cache"


def test_a_config_without_clip_section_fails_before_the_first_video(capsys, tmp_path, empty_caches):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("base: {model: tiny}\nmethods: [per_frame]\nmetrics: [clip_score]\n"
                   "sampling: {num_frames: 2, height: 32, width: 32, num_inference_steps: 1}\n")
    code, _, err = cli(capsys, "run", "--config", cfg, "--out", tmp_path / "r", "--no-progress")
    assert code == 2 and len(err) == 1 and err[0].startswith("error: clip.pretrained:")
    assert "not in the local cache" in err[0]
    assert not (tmp_path / "r" / "videos").exists()


@pytest.mark.parametrize("yaml,key", [
    ("base: {model: nobody/no-such-model}\nmethods: [per_frame]\n", "base.model"),
    ("base: {model: tiny, unet: nobody/no-such-unet}\nmethods: [per_frame]\n", "base.unet"),
    ("base: {model: tiny, lora: /no/such/lora.safetensors}\nmethods: [per_frame]\n", "base.lora"),
    ("base: {model: tiny}\nmethods: {per_frame: {}, animatediff: {motion_adapter: /no/such/adapter}}\n",
     "methods.animatediff.motion_adapter"),
    ("base: {model: tiny}\nmethods: {per_frame: {}, animatediff: {motion_adapter: nobody/no-adapter}}\n",
     "methods.animatediff.motion_adapter"),
    ("base: {model: tiny}\nmethods: {per_frame: {}, simda: {adapter_weights: missing.safetensors}}\n",
     "methods.simda.adapter_weights"),
    ("base: {model: tiny}\nmethods: {per_frame: {}, simda: {adapter_wieghts: toy}}\n",
     "methods.simda.adapter_wieghts"),
    ("base: {model: tiny}\nmethods: [per_frame]\nmetrics: [fvd]\nfvd: {detector: /no/i3d.pt}\n", "fvd.detector"),
    ("base: {model: tiny}\nmethods: [per_frame]\nmetrics: [fvd]\nfvd: {reference: /no/ref.safetensors}\n",
     "fvd.reference"),
    ("base: {model: tiny}\nmethods: [per_frame]\nmetrics: [clip_score]\nclip: {model: ViT-B-32, pretrained: "
     "/no/clip.pt}\n", "clip.pretrained"),
    ("base: {model: tiny}\nmethods: [per_frame]\nmetrics: [clip_score]\nclip: {model: ViT-B-99}\n", "clip.model"),
])
def test_every_weight_source_is_checked_before_the_first_video(capsys, tmp_path, empty_caches, yaml, key):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml + "sampling: {num_frames: 2, height: 32, width: 32, num_inference_steps: 1}\n")
    code, _, err = cli(capsys, "run", "--config", cfg, "--out", tmp_path / "r", "--no-progress")
    assert code == 2 and len(err) == 1 and err[0].startswith(f"error: {key}:"), err
    assert not (tmp_path / "r" / "videos").exists()


def test_a_cached_hub_id_passes_the_offline_check(empty_caches):
    from bench.preflight import check_weight_source, hub_cached

    snapshot = empty_caches / "models--someorg--somemodel" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "model_index.json").write_text("{}")
    (empty_caches / "models--someorg--somemodel" / "refs").mkdir()
    (empty_caches / "models--someorg--somemodel" / "refs" / "main").write_text("a" * 40)
    assert hub_cached("someorg/somemodel") and not hub_cached("someorg/othermodel")
    check_weight_source("base.model", "someorg/somemodel")  # no error
    check_weight_source("base.model", "someorg/somemodel/model_index.json")  # a file in a cached repo
    with pytest.raises(UserError, match="base.model: hub file 'someorg/somemodel/other.safetensors' is not in"):
        check_weight_source("base.model", "someorg/somemodel/other.safetensors")


# ------------------------------------------------------------------------------------------ item 6: CLI edges
def test_compare_help_prints(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["compare", "--help"])
    assert exc.value.code == 0 and "0.1%" in capsys.readouterr().out


def test_out_pointing_at_a_file_is_one_line(capsys, tmp_path):
    (tmp_path / "afile").write_text("x")
    code, _, err = cli(capsys, "run", *run_args(small_config(tmp_path), tmp_path / "afile"))
    assert code == 2 and len(err) == 1 and "is a file, not a run folder" in err[0]


def test_empty_methods_flag_is_refused(capsys, tmp_path):
    code, _, err = cli(capsys, "run", *run_args(small_config(tmp_path), tmp_path / "r", "--methods", ""))
    assert code == 2 and len(err) == 1 and "names no method" in err[0]


def test_evaluate_with_no_videos_exits_non_zero_and_writes_nothing(capsys, tmp_path):
    code, _, err = cli(capsys, "evaluate", *run_args(small_config(tmp_path), tmp_path / "r"))
    assert code == 2 and len(err) == 1 and "no finished videos" in err[0]
    assert not (tmp_path / "r" / "report.md").exists() and not (tmp_path / "r" / "run.json").exists()


def test_out_of_memory_says_what_to_lower_not_rerun(capsys, caplog, tmp_path, monkeypatch):
    from methods.per_frame import PerFrame

    def oom(self, requests):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 40.00 GiB")

    monkeypatch.setattr(PerFrame, "generate", oom)
    with caplog.at_level(logging.ERROR, logger="t2v_bench"):
        code, _, err = cli(capsys, "run", *run_args(small_config(tmp_path), tmp_path / "r"))
    assert code == 1 and len(err) == 1
    assert "lower --batch-size" in err[0] and "rerun" not in err[0]
    assert "lower --batch-size" in caplog.text


def test_bf16_on_cpu_warns(tmp_path, caplog):
    from bench.config import load_config
    from bench.runner import Runner

    with caplog.at_level(logging.WARNING, logger="t2v_bench"):
        Runner(load_config(str(small_config(tmp_path)), {"dtype": "bf16"}), tmp_path / "r", progress=False)
    assert "bf16 on CPU" in caplog.text


def test_a_malformed_flag_value_is_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--frames", "abc"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert exc.value.code == 2 and len(err) == 1 and "invalid int value: 'abc'" in err[0]
