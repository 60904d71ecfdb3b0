"""``curate explore``: the server-side queries, the selection round trip, the access rules over real HTTP, the
static report and the command. (The page itself is driven in a browser in test_explore_browser.py.)"""

from __future__ import annotations

import http.client
import json
import threading
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from curate import manifest
from curate.explore.explorer import Explorer, NotFound, reason_class
from curate.explore.server import Server, create_app
from curate.explore.table import Filter, QueryError, parse_filter
from curate.testing.explore import make_explore_run

REC = "prog/000"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return make_explore_run(tmp_path_factory.mktemp("explore"))


@pytest.fixture(scope="module")
def explorer(run_dir) -> Explorer:
    return Explorer(run_dir)


@pytest.fixture(scope="module")
def client(explorer):
    return create_app(explorer).test_client()


def segments(client, variant="small", filters=(), **kw):
    r = client.get("/api/segments", query_string={"variant": variant, "filters": json.dumps(list(filters)), **kw})
    assert r.status_code == 200, r.json
    return r.json


def test_overview_has_every_variant_histograms_and_hours_cut_per_reason(client, run_dir):
    ov = client.get("/api/overview").json
    assert [v["name"] for v in ov["variants"]] == ["big", "small"]
    stats = json.loads((run_dir / "stats.json").read_text())["variants"]
    lengths = client.get("/api/histogram", query_string={"column": "duration_s"}).json
    music = client.get("/api/histogram", query_string={"column": "music_ratio"}).json
    for v in ov["variants"]:
        assert v["segments"] == stats[v["name"]]["segments"]
        assert sum(lengths[v["name"]]["counts"]) == music[v["name"]]["measured"] == v["segments"]
    assert client.get("/api/histogram", query_string={"column": "text"}).status_code == 404
    rejected = manifest.read_table(run_dir / "rejected" / "clean_trim", "rejected").to_pandas()
    music_h = rejected.loc[rejected["reason"].str.startswith("music"), "duration_s"].sum() / 3600
    got = {(r["stage"], r["reason"]): r["hours"] for r in ov["rejections"]}
    assert set(got) == {("clean_trim", "music"), ("clean_trim", "noise"), ("min_duration", "too_short")}
    assert got[("clean_trim", "music")] == pytest.approx(music_h)


@pytest.mark.parametrize(
    ("reason", "cls"),
    [
        ("music (mean score 0.81)", "music"),
        ("last partial window (2.34 s)", "last partial window"),
        ("repeated excerpt, first heard in rec7", "repeated excerpt"),
        ("non-speech phrase 'muziek'", "non-speech phrase"),
        ("shorter than 1.0 s after cutting a repeated excerpt", "shorter than"),
        ("too_short", "too_short"),  # a closed-set reason stays what it is
        (None, "unknown"),
    ],
)
def test_reason_class(reason, cls):
    assert reason_class(reason) == cls


def test_filter_sort_and_page_match_pandas(client, run_dir):
    df = manifest.read_table(run_dir / "variants" / "small", "segments").to_pandas()
    page = segments(client, filters=[["music_ratio", "<", 0.01], ["duration_s", ">=", 2]], sort="snr_db", desc=1)
    want = df[(df.music_ratio < 0.01) & (df.duration_s >= 2)].sort_values("snr_db", ascending=False)
    assert page["total"] == len(want) and 0 < len(want) < len(df)
    assert [r["segment_id"] for r in page["rows"]] == want["segment_id"].tolist()
    assert page["hours"] == pytest.approx(want["duration_s"].sum() / 3600)
    second = segments(client, sort="start_s", offset=5, limit=5)
    assert [r["segment_id"] for r in second["rows"]] == df.sort_values("start_s")["segment_id"].tolist()[5:10]
    text = segments(client, filters=[["text", "contains", "NIEUWS"]])
    assert text["total"] == df["text"].str.contains("nieuws").sum() > 0
    # language: an unlabelled segment takes its recording's, as `curate select` does
    assert segments(client, filters=[["language", "==", "nl"]])["total"] == len(df)
    assert segments(client, filters=[["speaker_change", "==", True]])["total"] == df.speaker_change.sum()


def test_the_page_asks_the_first_histogram_with_the_overview():
    from curate.explore.explorer import HISTOGRAMS
    from curate.explore.server import asset

    assert f'const FIRST_HISTOGRAM = "{next(iter(HISTOGRAMS))}";' in asset("app.js").decode()


def test_the_first_page_reads_no_column_and_equals_the_whole_table(run_dir):
    """An unfiltered, unsorted page equals the whole table's rows; its hours are stats.json's."""
    direct = Explorer(run_dir).page("small", offset=3, limit=5)
    vt = Explorer(run_dir).variant("small")
    whole = vt.to_table().drop_columns(["_rec"]).slice(3, 5).to_pylist()
    assert direct["rows"] == whole and direct["total"] == len(vt)
    assert direct["hours"] == pytest.approx(vt.to_table().column("duration_s").to_numpy().sum() / 3600)


def _variant(path: Path, recordings):
    from curate.explore.columns import ByteLRU, VariantColumns
    from curate.explore.table import VariantTable

    return VariantTable(VariantColumns("odd", path, recordings, ByteLRU()))


@pytest.fixture(scope="module")
def odd_dir(run_dir, tmp_path_factory) -> Path:
    """The small variant ten times over (140 rows) in row groups of 7 rows, with an ``snr_db`` full of ties, NaNs
    and nulls."""
    import pyarrow as pa

    from curate.rundir import RunDir

    t = pa.concat_tables([manifest.read_table(RunDir(run_dir).variant_dir("small"), "segments")] * 10)
    rng = np.random.default_rng(0)
    snr = rng.choice([1.0, 2.0, 2.0, 3.0, np.nan, -np.inf], t.num_rows)
    snr = pa.array(snr, mask=rng.uniform(size=t.num_rows) < 0.2)
    t = t.set_column(t.schema.get_field_index("snr_db"), "snr_db", snr)
    out = tmp_path_factory.mktemp("odd") / "v"
    with manifest.writer(out / "part-00000.parquet", "segments", row_group_rows=7) as w:
        w.write(t)
    return out


@pytest.fixture(scope="module")
def odd_variant(odd_dir, explorer):
    return _variant(odd_dir, explorer.recordings)


@pytest.mark.parametrize("descending", [False, True])
def test_a_partial_sort_finds_the_rows_of_the_full_order(odd_dir, odd_variant, descending):
    """The first pages of a number sort (np.partition, then an exact sort of the candidates) are exactly the
    first rows of the whole column's stable order, ties, NaNs and empty cells included."""
    n = len(odd_variant)
    m = np.random.default_rng(1).uniform(size=n) < 0.6
    full = odd_variant.order("snr_db", descending)
    vt = _variant(odd_dir, odd_variant.columns.recordings)  # no full order kept: the partial sort answers
    for k in (1, 4, 13, n // 2, n + 5):
        assert vt._first("snr_db", descending, None, k).tolist() == full[:k].tolist()
        assert vt._first("snr_db", descending, m, k).tolist() == full[m[full]][:k].tolist()
    assert vt.cache.peek(("odd", "order", "snr_db", descending)) is None


def test_rows_from_row_groups_equal_the_whole_columns_and_the_cache_is_bounded(odd_dir, explorer, monkeypatch):
    from pandas.testing import assert_frame_equal

    from curate.explore import columns
    from curate.explore.columns import ByteLRU

    vt = _variant(odd_dir, explorer.recordings)
    idx = np.array([len(vt) - 1, 0, 8, 8, 15])  # a few rows: from their row groups, in the order asked
    page = vt.take(idx)
    ids = ["prog/000", "prog/001", "nope"]
    by_stats = [vt.columns.rows_of(r).tolist() for r in ids]  # row groups whose min/max can hold it
    assert vt.cache.used == 0  # no column read, none kept
    monkeypatch.setattr(columns, "WHOLE_MIN", 0)  # as in a big variant: most row groups → whole columns, kept
    whole = vt.to_table()
    rec = whole.column("recording_id").to_numpy(zero_copy_only=False)
    assert by_stats == [np.flatnonzero(rec == r).tolist() for r in ids] and by_stats[0] and not by_stats[2]
    assert [vt.columns.rows_of(r).tolist() for r in ids] == by_stats  # now from the kept column
    assert vt.cache.used > 0
    assert_frame_equal(page.to_pandas(), whole.take(idx).to_pandas())  # NaN == NaN here
    vt.mask((Filter("music_ratio", "<", 0.1),))  # a filter keeps its column: a page now takes it from there
    assert_frame_equal(vt.take(idx).to_pandas(), page.to_pandas())
    lru = ByteLRU(budget=1000)
    for i in range(5):
        lru.get(i, lambda: np.zeros(100))  # 800 bytes each
    assert lru.used <= 1000 and lru.peek(4) is not None and lru.peek(0) is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (["nope", "<", 1], "no column 'nope'"),
        (["music_ratio", "~", 1], "unknown operator"),
        (["music_ratio", "<", "abc"], "is not a double"),
        (["music_ratio", "contains", "x"], "needs a text column"),
        (["speaker", "in", "A"], "needs a list"),
    ],
)
def test_bad_filters_say_what_is_wrong(explorer, client, spec, message):
    with pytest.raises(QueryError, match=message):
        parse_filter(spec, explorer.variant("small").schema)
    r = client.get("/api/segments", query_string={"variant": "small", "filters": json.dumps([spec])})
    assert r.status_code == 400 and message in r.json["error"]


def test_selection_yaml_round_trips_through_curate_select(client, run_dir, tmp_path):
    """The filters set in the table, downloaded as YAML, select the same segments in `curate select`."""
    from curate.export.select import load_selection, select

    filters = [
        ["music_ratio", "<", 0.05],
        ["duration_s", ">=", 2],
        ["language", "in", ["nl"]],
        ["speaker", "!=", "SPEAKER_01"],
        ["genre", "==", "news"],
    ]
    shown = segments(client, filters=filters, limit=500)
    assert 0 < shown["total"] < segments(client)["total"]
    r = client.get("/api/selection.yaml", query_string={"variant": "small", "filters": json.dumps(filters)})
    assert r.status_code == 200 and "attachment" in r.headers["Content-Disposition"]
    path = tmp_path / "sel.yaml"
    path.write_bytes(r.data)
    df, _ = select(run_dir, "small", load_selection(path))
    assert sorted(df["segment_id"]) == sorted(row["segment_id"] for row in shown["rows"])
    only_text = client.get(
        "/api/selection.yaml", query_string={"variant": "small", "filters": json.dumps([["text", "contains", "x"]])}
    )
    assert "not expressible" in only_text.data.decode()


def test_recording_view_lanes_cuts_and_score_tracks(client, explorer):
    view = client.get("/api/recording", query_string={"rec": REC}).json
    small = explorer.variant("small").to_table().to_pandas()
    assert [s[4] for s in view["lanes"]["small"]] == small[small.recording_id == REC].sort_values("start_s")[
        "segment_id"
    ].tolist()
    assert set(view["lanes"]) == {"big", "small"} and view["lanes"]["big"]
    assert view["cuts"] and all(c["recording_id"] == REC and c["reason"] for c in view["cuts"])
    assert {"tags.music", "speakers.overlap", "speakers.change"} <= set(view["tracks"])
    only = client.get("/api/recording", query_string={"rec": REC, "variants": "small"}).json
    assert list(only["lanes"]) == ["small"]


def test_clip_is_the_span_as_wav_and_bounded(client, explorer):
    import io

    import soundfile as sf

    from curate import audio

    r = client.get("/api/clip.wav", query_string={"rec": REC, "start": 2.5, "end": 4.0})
    assert r.status_code == 200 and r.mimetype == "audio/wav" and r.headers["Accept-Ranges"] == "bytes"
    x, sr = sf.read(io.BytesIO(r.data), dtype="float32")
    want = audio.load(explorer.recording(REC)["audio_path"], 2.5, 4.0)
    assert sr == 16_000 and len(x) == len(want) == 24_000
    assert np.abs(x - want).max() < 1e-3
    ranged = client.get(
        "/api/clip.wav", query_string={"rec": REC, "start": 2.5, "end": 4.0}, headers={"Range": "bytes=0-99"}
    )
    assert ranged.status_code == 206 and ranged.data == r.data[:100]
    whole = client.get("/api/clip.wav", query_string={"rec": REC, "start": -5, "end": 1e9})  # clamped to the file
    assert sf.info(io.BytesIO(whole.data)).duration == pytest.approx(40.0, abs=1e-3)
    wave = client.get("/api/waveform", query_string={"rec": REC, "start": 0, "end": 40, "n": 200}).json
    assert len(wave["max"]) == 200 and max(wave["max"]) > 0.2 > -0.2 > min(wave["min"])


@pytest.fixture(scope="module")
def server(explorer):
    s = Server(explorer)
    t = threading.Thread(target=s.serve_forever, daemon=True)
    t.start()
    yield s
    s.shutdown()


def raw_get(server: Server, path: str, host: str | None = None) -> tuple[int, bytes]:
    """A GET with the path sent exactly as written (no client-side normalisation of ``..``)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.putrequest("GET", path, skip_host=True)
    conn.putheader("Host", host or f"127.0.0.1:{server.port}")
    conn.endheaders()
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, body


def test_binds_loopback_on_a_free_port_without_a_token(server):
    assert server.host == "127.0.0.1" and server.port > 0 and server.token is None
    assert server.url == f"http://127.0.0.1:{server.port}/"
    assert raw_get(server, "/api/overview")[0] == 200
    assert raw_get(server, "/")[1].startswith(b"<!doctype html>")


@pytest.mark.parametrize(
    "path",
    [
        "/assets/../run.json",
        "/assets/..%2Frun.json",
        "/assets/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/assets/server.py",
        "/../../etc/passwd",
        "/api/segments?variant=..%2Frejected%2Fclean_trim",
        "/api/segments?variant=%2Fetc",
        "/api/clip.wav?rec=%2Fetc%2Fpasswd&start=0&end=1",
        "/api/clip.wav?rec=..%2F..%2Frun.json&start=0&end=1",
        "/api/waveform?rec=%2Fetc%2Fpasswd&start=0&end=1",
        "/api/recording?rec=..%2Fstats.json",
        "/run.json",
        "/recordings.parquet",
    ],
)
def test_a_path_outside_the_run_is_refused(server, path):
    status, body = raw_get(server, path)
    assert status in (400, 404), (path, status)
    assert b"root:" not in body and b"pipeline_name" not in body and b"PAR1" not in body


def test_a_foreign_host_name_is_refused(server):
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1 gets nothing."""
    status, body = raw_get(server, "/api/overview", host=f"evil.example:{server.port}")
    assert status == 403 and b"not served here" in body
    assert raw_get(server, "/api/overview", host=f"localhost:{server.port}")[0] == 200


def test_another_interface_requires_a_token(explorer):
    s = Server(explorer, host="0.0.0.0")
    t = threading.Thread(target=s.serve_forever, daemon=True)
    t.start()
    try:
        assert s.token and len(s.token) >= 24 and s.url.endswith(f"?token={s.token}")
        assert raw_get(s, "/api/overview")[0] == 403
        assert raw_get(s, "/api/overview?token=wrong")[0] == 403
        assert raw_get(s, f"/api/clip.wav?rec=prog%2F000&start=0&end=1&token={s.token[:-1]}")[0] == 403
        assert raw_get(s, f"/api/overview?token={s.token}")[0] == 200
        assert raw_get(s, f"/?token={s.token}", host=f"my-box.lan:{s.port}")[0] == 200
        assert raw_get(s, "/assets/app.js")[0] == 200  # the page's code: no run data, no token needed
    finally:
        s.shutdown()


def test_not_a_run_is_a_clear_error(tmp_path):
    with pytest.raises(NotFound, match=r"no recordings\.parquet"):
        Explorer(tmp_path)


def test_static_report_is_self_contained(run_dir, tmp_path):
    from curate.cli.app import app

    res = CliRunner().invoke(app, ["explore", str(run_dir), "--static", str(tmp_path / "rep"), "--sample", "2"])
    assert res.exit_code == 0, res.output
    html = (tmp_path / "rep" / "index.html").read_text()
    assert '<script src="data.js">' in html and "http" not in html.replace("http://www.w3.org", "")
    data = json.loads((tmp_path / "rep" / "data.js").read_text().removeprefix("window.CURATE_STATIC = ").rstrip(";\n"))
    assert {v: len(rows) for v, rows in data["samples"].items()} == {"big": 2, "small": 2}
    clips = [r["_clip"] for rows in data["samples"].values() for r in rows]
    clips += [c["_clip"] for r in data["overview"]["rejections"] for c in r["samples"]]
    assert len(clips) == 4 + 2 * 3 and all((tmp_path / "rep" / c).stat().st_size > 1000 for c in clips)
    assert all(c.startswith("clips/") and c.endswith(".ogg") for c in clips)


def test_the_command_prints_its_url(run_dir, monkeypatch):
    from curate.cli.app import app
    from curate.explore import server

    def stop(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(server.Server, "serve_forever", stop)
    res = CliRunner().invoke(app, ["explore", str(run_dir)])
    assert res.exit_code == 0 and "http://127.0.0.1:" in res.output
    bad = CliRunner().invoke(app, ["explore", str(run_dir.parent)])
    assert bad.exit_code == 2 and "not a curate run directory" in bad.output


def test_a_run_on_object_storage_is_explored_through_its_staging_copy(run_dir, s3, tmp_path, monkeypatch):
    """``curate explore s3://…`` reads the run through the read-only staging copy `curate stats` uses."""
    from curate.cli.app import app

    monkeypatch.setenv("CURATE_STAGING", str(tmp_path / "staging"))
    s3.put(str(run_dir), "curate-test/explore-run", recursive=True)
    res = CliRunner().invoke(
        app, ["explore", "s3://curate-test/explore-run", "--static", str(tmp_path / "rep"), "--sample", "1"]
    )
    assert res.exit_code == 0, res.output
    data = (tmp_path / "rep" / "data.js").read_text()
    assert '"run": "s3://curate-test/explore-run"' in data and '"big"' in data


def test_concurrent_pages_equal_the_same_pages_asked_alone(run_dir):
    """The server is threaded: pages asked at once (each read with its own Parquet reader) are the pages asked
    one by one."""

    def ask(e: Explorer, k: int) -> str:
        f = (parse_filter(["music_ratio", "<", 0.05 + 0.1 * (k % 3)], e.variant("small").schema),)
        sort = ["snr_db", "avg_logprob", "duration_s", "speaker"][k % 4]
        return json.dumps(e.page("small", f, sort, descending=bool(k % 2), offset=k, limit=5), default=str)

    alone = [ask(Explorer(run_dir), k) for k in range(8)]
    shared, got = Explorer(run_dir), [""] * 8
    threads = [threading.Thread(target=lambda k=k: got.__setitem__(k, ask(shared, k))) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == alone
