"""Layouts, decoding, the conform rule and suite loaders of `t2v-bench score`, on folders made here (no models)."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from bench.layouts import detect, match, scan, suite_from_found, vbench_stem
from bench.prompts import load_suite
from bench.store import encode_video
from bench.video_io import Decoded, DecodeError, conform, decode, encode_lossless

TEXTS = ['a red ball, bouncing "high"', "l'été à Paris — 東京", "it's 3 o'clock; tea, please", "countdown 3-2-1"]


def frames(n: int = 5, h: int = 16, w: int = 24, seed: int = 0, binary: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if binary:  # 0/255 only: survives GIF's rgb8 palette exactly
        return (rng.integers(0, 2, (n, h, w, 3)) * 255).astype(np.uint8)
    return rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def write(path, array, kind: str) -> None:
    if kind == "mp4":
        encode_lossless(array, path, 8)
    elif kind == "webm":
        encode_video(array, path, 8, "libvpx-vp9", pix_fmt="gbrp", options={"lossless": "1"})
    elif kind == "avi":
        encode_video(array, path, 8, "ffv1", pix_fmt="bgr0")
    elif kind == "gif":
        encode_video(array, path, 8, "gif", pix_fmt="rgb8")
    elif kind == "frames":
        import imageio.v3 as iio
        path.mkdir()
        for i, f in enumerate(array):  # 1.png ... 10.png: natural order, not 1, 10, 2
            iio.imwrite(path / f"{i + 1}.png", f)


@pytest.mark.parametrize("kind", ["mp4", "webm", "avi", "gif", "frames"])
def test_every_container_decodes_exactly(tmp_path, kind):
    array = frames(n=11 if kind == "frames" else 5, binary=kind == "gif")
    path = tmp_path / (f"clip.{kind}" if kind != "frames" else "clip")
    write(path, array, kind)
    out = decode(path)
    if kind == "gif":  # a palette format (rgb8 with swscale's dithering: 255 reads 252 or 216); 8 fps reads 8.33
        err = np.abs(out.frames.astype(int) - array)
        assert out.frames.shape == array.shape and err.max() <= 40 and err.mean() < 5
    else:
        assert np.array_equal(out.frames, array)
    assert out.fps == (None if kind == "frames" else pytest.approx(8, abs=0.5))


def test_conform_rule_fps_length_and_size():
    src = frames(n=24, h=32, w=48)
    idx = np.arange(24)
    src[:, 0, 0, 0] = idx  # frame number in a pixel
    out, note = conform(Decoded(src, 24.0), num_frames=4, height=32, width=48, fps=8)
    assert out[:, 0, 0, 0].tolist() == [0, 3, 6, 9] and "resized" not in note  # round(k * 24 / 8)
    assert note["resampled_fps"] and note["trimmed"]  # 8 frames at 8 fps, the first 4 kept
    with pytest.raises(DecodeError, match="has 3 frames"):
        conform(Decoded(src[:3], 8.0), num_frames=4, height=32, width=48, fps=8)
    with pytest.raises(DecodeError, match="--resize fit"):
        conform(Decoded(src, 8.0), num_frames=4, height=16, width=16, fps=8, resize="refuse")
    # Centre crop to the target aspect, then resize: a 32x48 frame to 16x16 keeps columns 8..39.
    flat = np.zeros((4, 32, 48, 3), np.uint8)
    flat[:, :, 8:40] = 200
    out, note = conform(Decoded(flat, None), num_frames=4, height=16, width=16, fps=8)
    assert note["resized"] and out.shape == (4, 16, 16, 3) and (out == 200).all()


def test_vbench_layout_detected_and_matched(tmp_path):
    folder = tmp_path / "theirs"
    folder.mkdir()
    for i, text in enumerate(TEXTS):
        write(folder / f"{vbench_stem(text)}-{i % 2}.mp4", frames(seed=i), "mp4")
    write(folder / f"{TEXTS[0]}-3", frames(seed=9), "frames")  # a frame folder is a video too
    write(folder / f"{TEXTS[2]}.gif", frames(binary=True), "gif")  # no index: index 0, as VBench reads it
    assert detect(folder, None) == "vbench"
    layout, found, problems = scan(folder, "auto", None)
    suite = suite_from_found(found, layout)  # no --prompts: VBench's custom_input reading of the names
    assert sorted(p.text for p in suite.prompts) == sorted(TEXTS)
    matched, problems, missing, rejected = match(found, suite)
    got = sorted((m.prompt.text, m.sample, m.found.rel) for m in matched)
    assert (TEXTS[0], 3, f"{TEXTS[0]}-3") in got and (TEXTS[3], 1, "countdown 3-2-1-1.mp4") in got
    assert len(got) == 4 and not missing  # two files claim TEXTS[2] sample 0: neither is kept
    assert rejected == {f"{TEXTS[2]}-0.mp4": "duplicate", f"{TEXTS[2]}.gif": "duplicate"}
    assert len(problems) == 1 and problems[0].startswith(f"{TEXTS[2]}-0.mp4, {TEXTS[2]}.gif: 2 files claim sample 0")


def test_vbench_names_truncated_like_vbench2_and_matched_back():
    long = "a " * 200 + "cat"
    stem = vbench_stem(long)
    assert stem == long[:180] and vbench_stem("a/b") == "a_b" and vbench_stem(TEXTS[1]) == TEXTS[1]
    from bench.layouts import Found
    from bench.prompts import Prompt, PromptSuite
    suite = PromptSuite("s", "1", (Prompt("long", long), Prompt("slash", "a/b")), "0", "mem")
    matched, problems, missing, rejected = match([Found(None, "x", text=stem, sample=0),
                                           Found(None, "y", text="a_b", sample=2)], suite)
    assert [(m.prompt.id, m.sample) for m in matched] == [("long", 0), ("slash", 2)] and not problems and not rejected


def test_t2v_bench_and_csv_layouts(tmp_path):
    run = tmp_path / "run"
    method = run / "videos" / "m"
    method.mkdir(parents=True)
    for i, text in enumerate(TEXTS[:2]):
        np.save(method / f"p{i}-s0.npy", frames(seed=i))
        encode_lossless(frames(seed=i), method / f"p{i}-s0.mp4", 8)
        (method / f"p{i}-s0.json").write_text(json.dumps({"request": {"prompt": text}}))
    assert detect(run, None) == "t2v-bench"
    layout, found, _ = scan(run, "auto", None)
    assert [(f.prompt_id, f.text, f.path.suffix) for f in found] == [("p0", TEXTS[0], ".npy"), ("p1", TEXTS[1], ".npy")]
    # A CSV map for numbered files (EvalCrafter style); quotes and commas survive CSV quoting.
    other = tmp_path / "numbered"
    other.mkdir()
    for i in range(3):
        write(other / f"{i:04d}.mp4", frames(seed=i), "mp4")
    with open(tmp_path / "map.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "prompt"])
        w.writerows([["0000.mp4", TEXTS[0]], ["0001.mp4", TEXTS[0]], ["0002.mp4", TEXTS[2]], ["gone.mp4", TEXTS[3]]])
    layout, found, problems = scan(other, "auto", str(tmp_path / "map.csv"))
    assert layout == "csv" and problems == ["map.csv:5: gone.mp4: no such file"]
    assert [(f.text, f.sample) for f in found] == [(TEXTS[0], 0), (TEXTS[0], 1), (TEXTS[2], 0)]
    (tmp_path / "map.jsonl").write_text("".join(json.dumps({"path": f"{i:04d}.mp4", "prompt_id": "p", "sample": i})
                                                + "\n" for i in range(3)))
    _, found, _ = scan(other, "csv", str(tmp_path / "map.jsonl"))
    assert [(f.prompt_id, f.sample) for f in found] == [("p", 0), ("p", 1), ("p", 2)]


def test_suite_loaders_vbench_text_and_msrvtt(tmp_path):
    info = [{"prompt_en": "a cat", "dimension": ["subject_consistency", "dynamic_degree"]},
            {"prompt_en": "a dog, running", "dimension": ["human_action"]},
            {"prompt_en": "a cat", "dimension": ["aesthetic_quality"]}]  # VBench lists some prompts twice
    (tmp_path / "VBench_full_info.json").write_text(json.dumps(info))
    s = load_suite(str(tmp_path / "VBench_full_info.json"))
    assert [(p.text, p.tags) for p in s.prompts] == [
        ("a cat", ("subject_consistency", "dynamic_degree", "aesthetic_quality")), ("a dog, running", ("human_action",))]
    (tmp_path / "prompts.txt").write_text("a cat\n\n" + TEXTS[1] + "\n", encoding="utf-8")
    t = load_suite(str(tmp_path / "prompts.txt"))
    assert [p.text for p in t.prompts] == ["a cat", TEXTS[1]] and t.prompts[0].id == s.prompts[0].id
    assert all(" " not in p.id and "/" not in p.id for p in t.prompts)
    (tmp_path / "MSRVTT_test.csv").write_text("key,vid_key,video_id,sentence\nret0,msr7020,video7020,"
                                              "a woman creating a fondant baby\nret1,msr7021,video7021,"
                                              "\"a man, talking\"\n")
    m = load_suite(str(tmp_path / "MSRVTT_test.csv"))
    assert [p.text for p in m.prompts] == ["a woman creating a fondant baby", "a man, talking"]
    assert m.meta["caption_column"] == "sentence" and m.meta["videos"] == 2


def test_lossless_export_is_bit_exact_through_decord(tmp_path):
    """VBench reads mp4 with decord; skipped where decord is not installed (it is not a dependency)."""
    decord = pytest.importorskip("decord")
    array = frames(n=5, h=32, w=64)
    encode_lossless(array, tmp_path / "a-0.mp4", 8)
    decord.bridge.set_bridge("native")
    reader = decord.VideoReader(str(tmp_path / "a-0.mp4"), num_threads=1)
    assert np.array_equal(reader.get_batch(range(len(reader))).asnumpy(), array)
