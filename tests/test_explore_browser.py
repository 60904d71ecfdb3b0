"""``curate explore`` in a real headless browser: Debian's Chromium driven by Playwright (its Python package
only; ``playwright install`` is never run). Skipped with a message where Chromium or Playwright is missing
(``scripts/setup.sh`` installs Chromium like ffmpeg). Screenshots go to the test's temporary folder, or to
``$CURATE_EXPLORE_SCREENSHOTS`` (``docs/img`` for the pictures in docs/explore.md)."""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
from pathlib import Path

import pytest

from curate.explore.explorer import Explorer
from curate.explore.server import Server
from curate.testing.explore import make_explore_run

CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
REC = "prog/000"


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        if exe := shutil.which(name):
            return exe
    pytest.skip("Chromium not found: `apt-get install chromium` (scripts/setup.sh installs it)")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright: pip install playwright")
    exe = chromium()
    with sync_api.sync_playwright() as p:
        profile = tmp_path_factory.mktemp("chromium-profile")  # a fresh profile every session
        ctx = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=exe,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 800},
        )
        yield ctx
        ctx.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    run_dir = make_explore_run(tmp_path_factory.mktemp("explore-run"), duration_s=60.0)
    explorer = Explorer(run_dir)
    server = Server(explorer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, explorer
    server.shutdown()


@pytest.fixture
def page(browser, served):
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    page.close()
    assert not errors, errors


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    out = os.environ.get("CURATE_EXPLORE_SCREENSHOTS")
    return Path(out) if out else tmp_path_factory.mktemp("screenshots")


def open_view(page, server: Server, hash_: str, ready: str) -> None:
    page.goto(server.url + hash_)
    page.wait_for_selector(f"body[data-ready='{ready}']", timeout=30_000)


def test_overview_shows_the_variants_and_the_cuts(page, served, shots):
    server, _ = served
    open_view(page, server, "#/", "overview")
    assert page.locator("#variants tr[data-variant]").evaluate_all("rs => rs.map(r => r.dataset.variant)") == [
        "big",
        "small",
    ]
    assert page.locator("#multiples svg rect").count() > 10  # a histogram per variant
    reasons = page.locator("#rejections td:nth-child(2)").all_inner_texts()
    assert sorted(reasons) == ["music", "noise", "too_short"]
    page.screenshot(path=str(shots / "explore-overview.png"), full_page=True)


def total(page) -> int:
    return int(re.match(r"(\d+) segments", page.inner_text("#total")).group(1))


def test_a_music_ratio_filter_narrows_the_table(page, served, shots):
    server, explorer = served
    open_view(page, server, "#/segments/small", "segments")
    everything = total(page)
    assert everything == len(explorer.variant("small"))
    box = page.locator("input[data-column='music_ratio']")
    box.fill("<0.01")
    box.press("Enter")
    page.wait_for_function(f"() => !document.querySelector('#total').textContent.startsWith('{everything} ')")
    narrowed = total(page)
    df = explorer.variant("small").to_table().to_pandas()
    assert 0 < narrowed == (df.music_ratio < 0.01).sum() < everything
    col = page.locator("#segments th").all_inner_texts().index("music_ratio") + 0
    shown = page.locator(f"#segments tr[data-segment] td:nth-child({col + 1})").all_inner_texts()
    assert shown and all(float(x) < 0.01 for x in shown)
    # the download link carries the same filters (the selection YAML round trip is tested over HTTP)
    href = page.get_attribute("#download-selection", "href")
    assert "music_ratio" in href and "selection.yaml" in href
    page.screenshot(path=str(shots / "explore-segments.png"))


def test_a_segments_audio_loads_with_the_segments_duration(page, served):
    server, _ = served
    open_view(page, server, "#/segments/small", "segments")
    first = page.locator("#segments tr[data-segment]").first
    seg_id = first.get_attribute("data-segment")
    with page.expect_response(lambda r: "clip.wav" in r.url) as resp:
        first.locator("button.play").click()
    assert resp.value.status in (200, 206)
    page.wait_for_function("() => document.querySelector('#player').readyState >= 1", timeout=30_000)
    duration = page.evaluate("() => document.querySelector('#player').duration")
    want = json.loads(
        page.evaluate(
            f"() => fetch('api/segments?variant=small&filters={json.dumps([['segment_id', '==', seg_id]])}')"
            ".then(r => r.text())"
        )
    )["rows"][0]["duration_s"]
    assert duration == pytest.approx(want, abs=0.002)


def test_the_recording_view_shows_lanes_cuts_and_tracks(page, served, shots):
    server, explorer = served
    view = explorer.recording_view(REC)
    open_view(page, server, "#/recording/prog%2F000", "recording")
    page.wait_for_selector("#timeline")
    lanes = len(view["lanes"]["small"]) + len(view["lanes"]["big"])
    assert page.locator("#timeline rect.seg").count() == lanes > 0
    assert page.locator("#timeline rect.cut").count() == len(view["cuts"]) > 0
    assert page.locator("#timeline path.track").count() == len(view["tracks"]) >= 5
    assert page.locator("#timeline path.wave").count() == 1
    titles = page.locator("#timeline rect.cut title").evaluate_all("ts => ts.map(t => t.textContent)")
    assert any("clean_trim: music" in t for t in titles)
    # a click on the timeline plays from that point: the clip starts there
    box = page.locator("#timeline").bounding_box()
    with page.expect_response(lambda r: "clip.wav" in r.url) as resp:
        page.mouse.click(box["x"] + box["width"] * 0.6, box["y"] + 30)
    start = float(re.search(r"start=([\d.]+)", resp.value.url).group(1))
    assert 25 < start < 45
    page.screenshot(path=str(shots / "explore-recording.png"), full_page=True)


def test_compare_two_variants_on_a_recording(page, served, shots):
    server, _ = served
    open_view(page, server, "#/compare/prog%2F000?a=small&b=big", "compare")
    summary = page.inner_text("#compare-summary")
    assert "only in small" in summary and "only in big" in summary
    page.screenshot(path=str(shots / "explore-compare.png"), full_page=True)


def test_a_path_outside_the_run_is_refused_in_the_browser(page, served):
    server, _ = served
    open_view(page, server, "#/", "overview")
    statuses = page.evaluate(
        """() => Promise.all(['assets/..%2F..%2Frun.json', 'api/clip.wav?rec=%2Fetc%2Fpasswd&start=0&end=1',
                              'api/segments?variant=..%2Frejected'].map(u => fetch(u).then(r => r.status)))"""
    )
    assert statuses == [404, 404, 404]


def test_the_static_report_opens_from_disk(browser, served, tmp_path):
    from curate.explore.report import write_report

    _, explorer = served
    index = write_report(explorer, tmp_path / "report", sample=3)
    page = browser.new_page()
    try:
        page.goto(index.as_uri() + "#/segments/big")
        page.wait_for_selector("body[data-ready='segments']")
        assert total(page) == 3
        page.locator("#segments button.play").first.click()
        page.wait_for_function("() => document.querySelector('#player').readyState >= 1", timeout=30_000)
        assert page.evaluate("() => document.querySelector('#player').duration") > 0.5
    finally:
        page.close()


def test_a_server_with_a_token_works_from_its_printed_url_only(page, served):
    _, explorer = served
    s = Server(explorer, host="0.0.0.0")
    threading.Thread(target=s.serve_forever, daemon=True).start()
    try:
        page.goto(s.url + "#/segments/big")
        page.wait_for_selector("body[data-ready='segments']")
        assert total(page) == len(explorer.variant("big"))
        page.goto(s.url.split("?")[0] + "#/")
        page.wait_for_function("() => document.querySelector('#error').textContent.includes('token')")
    finally:
        s.shutdown()
