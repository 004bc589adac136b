"""HTML gallery: a self-contained folder, checked in a real headless Chromium.

The browser test needs a Chromium binary (Debian: `apt-get install chromium`; `.ci/run` installs it) and skips with
that reason when none is found. The page records in each clip's `data-media` what it shows ("video:<file>" once
the browser has decoded the clip's metadata, "gif" after falling back), which `--dump-dom` lets us read; the
layout tests append a script that records the page's and each table's extent the same way.
"""
import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bench.report.build import write_report
from bench.store import write_mp4

DATA = Path(__file__).parent / "data" / "reports"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    return os.environ.get("T2V_BENCH_CHROMIUM") or next(filter(None, map(shutil.which, BROWSERS)), None)


needs_chromium = pytest.mark.skipif(find_chromium() is None,
                                    reason="no chromium binary on PATH (apt-get install chromium, or set "
                                           "T2V_BENCH_CHROMIUM); .ci/run installs it")


@pytest.fixture(scope="module")
def gallery(tmp_path_factory) -> Path:
    """run_a with synthetic media (moving gradients: .npy frames + H.264 .mp4), rendered to a gallery folder."""
    root = tmp_path_factory.mktemp("gallery")
    run = root / "run_a"
    shutil.copytree(DATA / "run_a", run)
    for i, row in enumerate(json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()):
        yy, xx = np.mgrid[0:64, 0:64]
        frames = np.stack([np.stack([xx * 3 + 10 * f, yy * 2 + 20 * i, np.full_like(xx, 30 * f)], -1)
                           for f in range(8)]) % 256
        frames = frames.astype(np.uint8)
        (run / row["frames"]).parent.mkdir(parents=True, exist_ok=True)
        np.save(run / row["frames"], frames)
        write_mp4(run / row["video"], frames, fps=8)
    write_report([str(run)], root / "report", ["html", "plots"])
    return root / "report"


def test_gallery_is_self_contained(gallery):
    html = (gallery / "index.html").read_text()
    videos = re.findall(r"<video autoplay loop muted playsinline", html)
    assert len(videos) == 12  # 3 methods x 2 prompts x 2 samples
    refs = re.findall(r'(?:src|data-gif)="([^"]+)"', html)
    assert refs and all(not r.startswith(("/", "file:", "http")) for r in refs)
    assert all((gallery / r).is_file() and (gallery / r).stat().st_size > 0 for r in refs)
    assert {Path(r).suffix for r in refs} == {".mp4", ".webm", ".gif", ".png"}
    for method in ("per_frame", "animatediff", "t2v_zero"):
        assert f">{method}</th>" in html
    assert "temporal_flickering <b>" in html and "seed 1000" in html


def render(page: Path, tmp_path: Path, width: int = 1400) -> tuple[str, list[str]]:
    """(DOM after scripts ran, console lines) of a page in headless Chromium, in a window `width` px wide."""
    cmd = [find_chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--mute-audio",
           f"--window-size={width},1000",
           f"--user-data-dir={tmp_path / 'profile'}", "--autoplay-policy=no-user-gesture-required",
           "--virtual-time-budget=5000", "--enable-logging=stderr", "--v=0", "--dump-dom", page.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    return proc.stdout, console


def media_states(dom: str) -> list[str]:
    return re.findall(r'<figure class="clip" data-media="([^"]*)"', dom)


@needs_chromium
def test_gallery_plays_in_chromium(gallery, tmp_path):
    dom, console = render(gallery / "index.html", tmp_path)
    assert console == [], console
    states = media_states(dom)
    assert len(states) == 12 and 'data-media-ready="12/12"' in dom
    assert all(s.startswith("video:") for s in states), states  # every clip decoded by the browser itself
    for method in ("per_frame", "animatediff", "t2v_zero"):
        assert re.search(rf'<th [^>]*class="row_heading[^"]*"[^>]*>{method}</th>', dom)


@needs_chromium
def test_fallbacks_webm_then_gif(gallery, tmp_path):
    """Without the MP4s the browser plays the VP9 WebM; with broken videos too, the page shows the GIFs."""
    copy = tmp_path / "copy"
    shutil.copytree(gallery, copy)
    for mp4 in copy.rglob("*.mp4"):
        mp4.unlink()
    states = media_states(render(copy / "index.html", tmp_path)[0])
    assert states and all(s.startswith("video:") and s.endswith(".webm") for s in states), states
    for webm in copy.rglob("*.webm"):
        webm.write_bytes(b"not a video")
    states = media_states(render(copy / "index.html", tmp_path)[0])
    assert states and all(s == "gif" for s in states), states


# Appended to a copy of a page: records in <body data-layout> how wide the page is and where each table ends
# relative to its container, so --dump-dom can tell whether anything lies beyond the window.
PROBE = """<script>
window.addEventListener("load", function () {
  var out = {inner: window.innerWidth, page: document.documentElement.scrollWidth, tables: []};
  document.querySelectorAll("table.results, table.gallery").forEach(function (t) {
    var box = t.getBoundingClientRect(), p = t.parentElement, pb = p.getBoundingClientRect();
    out.tables.push({cls: t.className, right: box.right, parentRight: pb.right,
                     overflowX: getComputedStyle(p).overflowX, scrollWidth: p.scrollWidth, clientWidth: p.clientWidth});
  });
  document.body.setAttribute("data-layout", JSON.stringify(out));
});
</script>"""


def layout(page: Path, tmp_path: Path, width: int, tables: str = "table.results, table.gallery") -> dict:
    probe = page.with_name("probe.html")
    script = PROBE.replace("table.results, table.gallery", tables)
    probe.write_text(page.read_text().replace("</body>", script + "</body>"))
    dom, console = render(probe, tmp_path, width)
    assert console == [], console
    found = re.search(r'data-layout="([^"]*)"', dom)
    assert found, "the probe did not run"
    return json.loads(html.unescape(found.group(1)))


@pytest.fixture(scope="module")
def toy_page(tmp_path_factory) -> Path:
    """The default run's report page (the committed toy baseline: 7 methods, 20 columns)."""
    out = tmp_path_factory.mktemp("toy_page")
    write_report([str(Path(__file__).parent.parent / "results" / "baselines" / "toy.json")], out, ["html"])
    return out / "index.html"


def assert_nothing_cut_off(info: dict, width: int) -> list[str]:
    """The page never scrolls sideways; a table either lies inside its box or its box scrolls to show the rest.
    Returns the classes of the tables that need scrolling."""
    assert info["inner"] == width and info["page"] <= width, info
    scrolled = []
    for t in info["tables"]:
        if t["right"] > t["parentRight"] + 0.5:
            assert t["overflowX"] in ("auto", "scroll") and t["scrollWidth"] > t["clientWidth"], t
            scrolled.append(t["cls"])
    return scrolled


@needs_chromium
def test_results_table_fits_1400px(toy_page, gallery, tmp_path):
    """At 1400 px nothing is cut off: a report of a few metrics is shown whole (its heads wrap); the default run's
    results table (20 columns since the VBench-style dimensions) scrolls inside its own box, never the page."""
    for page, may_scroll in ((toy_page, {"results"}), (gallery / "index.html", set())):
        info = layout(page, tmp_path, 1400)
        assert {t["cls"] for t in info["tables"]} == {"results", "gallery"}
        assert set(assert_nothing_cut_off(info, 1400)) <= may_scroll, info


@needs_chromium
def test_narrow_window_scrolls_the_tables_not_the_page(toy_page, gallery, tmp_path):
    assert assert_nothing_cut_off(layout(toy_page, tmp_path, 700), 700) == ["results", "gallery"]
    assert "gallery" in assert_nothing_cut_off(layout(gallery / "index.html", tmp_path, 500), 500)


@needs_chromium
def test_tag_tables_scroll_in_their_boxes(toy_page, tmp_path):
    """The default run's page has a table per metric by prompt tag (7 tags, 7 methods); in a narrow window each
    lies inside its box or scrolls there, and the page itself never scrolls sideways."""
    record = json.loads((Path(__file__).parent.parent / "results" / "baselines" / "toy.json").read_text())
    tagged = {name for e in record["methods"].values() for name, m in e["metrics"].items() if m.get("by_tag")}
    text = toy_page.read_text()
    assert len(tagged) >= 10 and text.count('<table id="T_tags') == len(tagged)
    assert "No best is marked" in text and "font-weight" not in text[text.index("By prompt tag"):]
    info = layout(toy_page, tmp_path, 700, "table.tags")
    assert len(info["tables"]) == len(tagged)
    # seven columns of value ± interval are wider than 700 px: most scroll in their boxes
    assert len(assert_nothing_cut_off(info, 700)) >= len(tagged) // 2
