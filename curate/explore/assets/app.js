// curate explore: the page. Views: overview, segments table, recording timeline, compare. Plain JS, no build.
// A live page asks the server (/api/…) for everything; a static report (window.CURATE_STATIC) answers from the
// samples embedded in data.js, with the same views minus the recording timeline.
"use strict";

const STATIC = window.CURATE_STATIC || null;
const TOKEN = new URLSearchParams(location.search).get("token");
const $ = (sel, root = document) => root.querySelector(sel);
const main = $("#main"), player = $("#player");
const FIRST_HISTOGRAM = "duration_s"; // the first of curate.explore.explorer.HISTOGRAMS, drawn when the page opens
const state = { overview: null, hist: {}, sort: {}, filters: {}, offset: {}, recCache: {}, clipStart: 0 };
const PAGE = 50;

function h(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined && v !== false) e.setAttribute(k, v);
  }
  for (const k of kids.flat()) e.append(k instanceof Node ? k : document.createTextNode(k ?? ""));
  return e;
}

function url(path, params) {
  const q = new URLSearchParams(params || {});
  if (TOKEN) q.set("token", TOKEN);
  return `${path}?${q}`;
}

async function api(path, params) {
  if (STATIC) return staticApi(path, params || {});
  const r = await fetch(url(`api/${path}`, params));
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function showError(e) { $("#error").textContent = e ? String(e.message || e) : ""; }

// -- audio ------------------------------------------------------------------------------------------------
function play(src, start, label) {
  state.clipStart = start;
  player.src = src;
  $("#now-playing").textContent = label;
  player.play().catch(() => {});
}

function playSpan(rec, start, end, label) {
  play(url("api/clip.wav", { rec, start: start.toFixed(3), end: end.toFixed(3) }), start, label);
}

function playRow(row) {
  const label = `${row.recording_id} ${row.start_s.toFixed(2)}–${row.end_s.toFixed(2)} s`;
  if (row._clip) play(row._clip, row.start_s, label);
  else playSpan(row.recording_id, row.start_s, row.end_s, label);
}

// -- filters: what a user types in a column's box → [column, op, value] -------------------------------------
function parseFilter(col, kind, text) {
  const t = text.trim();
  if (!t) return [];
  if (/^(is )?null$/i.test(t)) return [[col, "is null"]];
  if (/^(!|not )null$/i.test(t)) return [[col, "not null"]];
  if (kind === "number") {
    const range = t.match(/^(-?[\d.]+)\s*\.\.\s*(-?[\d.]+)$/);
    if (range) return [[col, ">=", +range[1]], [col, "<=", +range[2]]];
    const m = t.match(/^(<=|>=|!=|==|=|<|>)\s*(-?[\d.eE+-]+)$/);
    if (m) return [[col, m[1] === "=" ? "==" : m[1], +m[2]]];
    if (!isNaN(+t)) return [[col, "==", +t]];
    throw new Error(`${col}: type <0.1, >=3, 1..5, null or !null`);
  }
  if (kind === "bool") return [[col, "==", /^(true|yes|1)$/i.test(t)]];
  const m = t.match(/^(==|=|!=)\s*(.+)$/);
  if (m) return [[col, m[1] === "=" ? "==" : m[1], m[2]]];
  const set = t.match(/^(not in|in)\s+(.+)$/i);
  if (set) return [[col, set[1].toLowerCase(), set[2].split(",").map((x) => x.trim())]];
  return [[col, "contains", t]];
}

function filtersOf(variant, columns) {
  const boxes = state.filters[variant] || {};
  const kinds = Object.fromEntries(columns.map((c) => [c.name, c.kind]));
  return Object.entries(boxes).flatMap(([col, text]) => parseFilter(col, kinds[col] || "text", text));
}

// -- overview ---------------------------------------------------------------------------------------------
async function viewOverview() {
  const ov = state.overview;
  const quality = (v, c) => (v.quality && v.quality[c] ? fmt(v.quality[c].mean, 3) : "–");
  const rows = ov.variants.map((v) =>
    h("tr", { "data-variant": v.name },
      h("td", {}, h("a", { href: `#/segments/${encodeURIComponent(v.name)}` }, v.name)),
      ...[v.segments, fmt(v.hours, 3), fmt(v.discarded_pct), fmt(v.avg_s), fmt(v.min_s), fmt(v.max_s)].map((x) => h("td", { class: "num" }, String(x))),
      ...["music_ratio", "vocal_music_ratio", "noise_ratio", "overlap_ratio"].map((c) => h("td", { class: "num" }, quality(v, c)))));
  const head = ["variant", "segments", "hours", "discarded %", "avg s", "min s", "max s", "music", "sung", "noise", "overlap"];
  const pick = h("select", { id: "hist-column", onchange: () => drawMultiples(pick.value).catch(showError) },
    ov.histograms.map((c) => h("option", { value: c }, c)));
  const maxH = Math.max(1e-9, ...ov.rejections.map((r) => r.hours));
  const rej = ov.rejections.map((r) =>
    h("tr", {}, h("td", {}, r.stage), h("td", {}, r.reason), h("td", { class: "num" }, String(r.cuts)),
      h("td", { class: "num" }, fmt(r.hours, 4)), h("td", {}, h("span", { class: "bar", style: `width:${(160 * r.hours / maxH).toFixed(0)}px` })),
      h("td", {}, (r.samples || []).map((c) => h("button", { class: "play", title: `${c.recording_id} ${fmt(c.start_s)} s`, onclick: () => play(c._clip, c.start_s, `${r.reason}: ${c.recording_id}`) }, "▶")))));
  main.replaceChildren(
    h("p", {}, `${ov.recordings} recordings, ${fmt(ov.input_hours, 3)} h kept input, ${ov.variants.length} variants`),
    h("h2", {}, "Variants"),
    h("div", { class: "table-wrap" }, h("table", { id: "variants" }, h("tr", {}, head.map((x, i) => h("th", { class: i ? "num" : "" }, x))), rows)),
    h("h2", {}, "Distributions per variant ", pick),
    h("div", { class: "multiples", id: "multiples" }),
    h("h2", {}, "Hours cut per rejection reason"),
    rej.length ? h("table", { id: "rejections" }, h("tr", {}, ["stage", "reason", "cuts", "hours", "", STATIC ? "samples" : ""].map((x) => h("th", {}, x))), rej)
      : h("p", { class: "note" }, "no rejected segments in this run"));
  await drawMultiples(pick.value);
}

async function drawMultiples(col) {
  const box = $("#multiples");
  const hists = state.hist[col] || (state.hist[col] = await api("histogram", { column: col }));
  box.replaceChildren(...state.overview.variants.map((v) => {
    const hist = hists[v.name];
    return h("figure", {}, h("figcaption", {}, `${v.name} · ${hist.measured} measured`), histogramSvg(hist));
  }));
}

// -- segments table ---------------------------------------------------------------------------------------
async function viewSegments(variant) {
  const names = state.overview.variants.map((v) => v.name);
  variant = variant || names[0];
  const sort = state.sort[variant] || {};
  const offset = state.offset[variant] || 0;
  let columns = state.columns || [];
  let filters = [];
  try { filters = filtersOf(variant, columns); showError(null); } catch (e) { showError(e); }
  const params = { variant, filters: JSON.stringify(filters), offset, limit: PAGE };
  if (sort.column) Object.assign(params, { sort: sort.column, desc: sort.desc ? 1 : 0 });
  const page = await api("segments", params);
  state.columns = columns = page.columns;
  const pick = h("select", { id: "variant", onchange: () => { location.hash = `#/segments/${encodeURIComponent(pick.value)}`; } },
    names.map((n) => h("option", { value: n, selected: n === variant }, n)));
  const go = (o) => { state.offset[variant] = Math.max(0, o); viewSegments(variant); };
  const sel = STATIC ? "" : h("a", { id: "download-selection", href: url("api/selection.yaml", { variant, filters: JSON.stringify(filters) }), download: `selection-${variant}.yaml` }, "download selection YAML");
  const header = h("tr", {}, h("th", {}, ""), columns.map((c) => h("th", {
    class: `sortable ${c.kind === "number" ? "num" : ""}`, "data-column": c.name,
    onclick: () => { state.sort[variant] = { column: c.name, desc: sort.column === c.name ? !sort.desc : false }; state.offset[variant] = 0; viewSegments(variant); },
  }, c.name + (sort.column === c.name ? (sort.desc ? " ▼" : " ▲") : ""))));
  const boxes = state.filters[variant] || (state.filters[variant] = {});
  const filterRow = h("tr", { class: "filters" }, h("td", {}, ""), columns.map((c) => h("td", {}, h("input", {
    "data-column": c.name, value: boxes[c.name] || "", placeholder: c.kind === "number" ? "<0.1" : c.kind === "bool" ? "true" : "contains",
    onchange: (ev) => { boxes[c.name] = ev.target.value; state.offset[variant] = 0; viewSegments(variant); },
  }))));
  const body = page.rows.map((r) => h("tr", { "data-segment": r.segment_id },
    h("td", {}, h("button", { class: "play", title: "play this segment", onclick: () => playRow(r) }, "▶"), " ",
      STATIC ? "" : h("a", { href: `#/recording/${encodeURIComponent(r.recording_id)}?t=${r.start_s}`, title: "open the recording at this segment" }, "rec")),
    columns.map((c) => h("td", { class: c.kind === "number" ? "num" : c.name === "text" ? "text" : "" },
      c.kind === "number" && r[c.name] !== null ? fmt(r[c.name], 3) : String(r[c.name] ?? "")))));
  main.replaceChildren(
    h("div", { class: "controls" }, "variant ", pick,
      h("span", { id: "total" }, `${page.total} segments, ${fmt(page.hours, 3)} h`),
      h("button", { onclick: () => go(offset - PAGE), disabled: offset === 0 }, "◀"),
      h("span", { id: "range" }, page.total ? `${page.offset + 1}–${page.offset + page.rows.length}` : "0"),
      h("button", { onclick: () => go(offset + PAGE), disabled: offset + PAGE >= page.total }, "▶"),
      sel, h("span", { class: "note" }, "filters: <0.1 · >=3 · 1..5 · =nl · in a,b · null · !null · text: contains")),
    h("div", { class: "table-wrap" }, h("table", { id: "segments" }, header, filterRow, body)));
  if (document.activeElement === document.body) $("#segments input")?.blur();
}

// -- recording view and compare --------------------------------------------------------------------------
async function viewRecording(rec, query, compare) {
  const recs = state.recordings || (state.recordings = await api("recordings"));
  rec = rec || recs[0]?.recording_id;
  const names = state.overview.variants.map((v) => v.name);
  const a = query.get("a") || names[0], b = query.get("b") || names[1] || names[0];
  const key = compare ? `${rec}|${a}|${b}` : rec;
  const view = state.recCache[key] || (state.recCache[key] = await api("recording", compare ? { rec, variants: `${a},${b}` } : { rec }));
  const dur = view.recording.duration_s;
  const t = +(query.get("t") || 0);
  let t0 = +(query.get("t0") ?? Math.max(0, t - 30)), t1 = +(query.get("t1") || Math.min(dur, t0 + Math.min(dur, 300)));
  if (!query.get("t0")) { t0 = dur <= 300 ? 0 : t0; t1 = dur <= 300 ? dur : t1; }
  const setWin = (n0, n1) => {
    const span = Math.min(dur, Math.max(1, n1 - n0));
    n0 = Math.max(0, Math.min(dur - span, n0));
    query.set("t0", n0.toFixed(2)); query.set("t1", (n0 + span).toFixed(2));
    location.hash = `#/${compare ? "compare" : "recording"}/${encodeURIComponent(rec)}?${query}`;
  };
  const span = t1 - t0;
  const recPick = h("select", { id: "recording", onchange: () => { location.hash = `#/${compare ? "compare" : "recording"}/${encodeURIComponent(recPick.value)}?${compare ? `a=${a}&b=${b}` : ""}`; } },
    recs.map((r) => h("option", { value: r.recording_id, selected: r.recording_id === rec }, `${r.recording_id} ${r.title || ""} (${clock(r.duration_s)})`)));
  const varPick = (id, cur, other) => h("select", { id, onchange: (ev) => { query.set(other, other === "a" ? a : b); query.set(id.slice(-1), ev.target.value); location.hash = `#/compare/${encodeURIComponent(rec)}?${query}`; } },
    names.map((n) => h("option", { value: n, selected: n === cur }, n)));
  let wave = null;
  if (span <= 900 && !STATIC) wave = await api("waveform", { rec, start: t0.toFixed(2), end: t1.toFixed(2), n: 1200 }).catch(() => null);
  const pickTime = (time, seg) => {
    if (seg) playSpan(rec, seg.start, seg.end, `${rec} ${fmt(seg.start)}–${fmt(seg.end)} s`);
    else playSpan(rec, time, Math.min(dur, time + 60), `${rec} from ${clock(time)}`);
  };
  let extra = [];
  let summary = "";
  if (compare) {
    const la = view.lanes[a] || [], lb = view.lanes[b] || [];
    extra = [[`only ${a}`, only(la, lb)], [`only ${b}`, only(lb, la)]];
    const secs = (xs) => xs.reduce((s, x) => s + x[1] - x[0], 0);
    summary = h("p", { id: "compare-summary" }, `${a}: ${la.length} segments, ${fmt(secs(la), 1)} s · ${b}: ${lb.length} segments, ${fmt(secs(lb), 1)} s · only in ${a}: ${fmt(secs(extra[0][1]), 1)} s · only in ${b}: ${fmt(secs(extra[1][1]), 1)} s`);
  }
  const width = Math.max(700, main.clientWidth - 20);
  const tl = timelineSvg(view, wave, t0, t1, width, pickTime, extra);
  state.timeline = tl;
  main.replaceChildren(
    h("div", { class: "controls" }, "recording ", recPick, compare ? ["A ", varPick("compare-a", a, "b"), "B ", varPick("compare-b", b, "a")] : "",
      h("button", { onclick: () => setWin(t0 - span / 2, t1 - span / 2) }, "◀"),
      h("button", { onclick: () => setWin(t0 + span / 4, t1 - span / 4), title: "zoom in" }, "+"),
      h("button", { onclick: () => setWin(t0 - span / 2, t1 + span / 2), title: "zoom out" }, "−"),
      h("button", { onclick: () => setWin(t0 + span / 2, t1 + span / 2) }, "▶"),
      h("button", { onclick: () => setWin(0, dur) }, "whole"),
      h("span", { class: "note" }, `${clock(t0)} – ${clock(t1)} of ${clock(dur)} · click to play from there, click a segment to play it`)),
    summary, tl,
    h("p", { class: "note" }, `${view.cuts.length} cuts on this recording; score tracks: ${Object.keys(view.tracks).join(", ") || "none saved"}`));
}

player.addEventListener("timeupdate", () => state.timeline?.moveCursor?.(state.clipStart + player.currentTime));

// -- a static report: the same questions answered from the embedded samples ---------------------------------
function staticApi(path, params) {
  if (path === "overview") return STATIC.overview;
  if (path === "histogram") return STATIC.histograms[params.column];
  if (path !== "segments") throw new Error(`a static report has no ${path}`);
  const test = (x, op, v) => {
    if (op === "is null") return x === null;
    if (op === "not null") return x !== null;
    if (x === null) return false;
    if (op === "contains") return String(x).toLowerCase().includes(String(v).toLowerCase());
    if (op === "in") return v.map(String).includes(String(x));
    if (op === "not in") return !v.map(String).includes(String(x));
    return { "==": x == v, "!=": x != v, "<": x < v, "<=": x <= v, ">": x > v, ">=": x >= v }[op];
  };
  let rows = STATIC.samples[params.variant] || [];
  for (const [col, op, v] of JSON.parse(params.filters || "[]")) rows = rows.filter((r) => test(r[col], op, v));
  if (params.sort) {
    const k = params.sort, sign = +params.desc ? -1 : 1;
    rows = [...rows].sort((a, b) => (a[k] === null) - (b[k] === null) || sign * (a[k] < b[k] ? -1 : a[k] > b[k] ? 1 : 0));
  }
  const offset = +params.offset || 0;
  const hours = rows.reduce((s, r) => s + r.duration_s, 0) / 3600;
  return { variant: params.variant, columns: STATIC.columns, total: rows.length, hours, offset, rows: rows.slice(offset, offset + PAGE) };
}

// -- routing ----------------------------------------------------------------------------------------------
async function render() {
  const [path, q] = location.hash.slice(2).split("?");
  const [view, arg] = path.split("/").map(decodeURIComponent);
  const query = new URLSearchParams(q || "");
  document.querySelectorAll("header nav a").forEach((a) => a.classList.toggle("on", a.dataset.view === (view || "overview")));
  try {
    if (!state.overview) {
      // the overview's first histogram is asked with it, not after it: the server answers both at once
      const first = !view || view === "overview" ? api("histogram", { column: FIRST_HISTOGRAM }) : null;
      if (first) first.catch(() => {}); // not unhandled when the overview fails first: that error is shown
      state.overview = await api("overview");
      if (first) state.hist[FIRST_HISTOGRAM] = await first;
    }
    $("#run-name").textContent = state.overview.run;
    if (view === "segments") await viewSegments(arg);
    else if (view === "recording" || view === "compare") await viewRecording(arg, query, view === "compare");
    else await viewOverview();
    document.body.dataset.ready = view || "overview";
  } catch (e) {
    showError(e);
  }
}

if (STATIC) document.querySelectorAll("header nav a.live").forEach((a) => a.remove());
window.addEventListener("hashchange", render);
render();
