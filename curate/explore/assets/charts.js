// SVG drawing for curate explore: histograms and the recording timeline. Plain DOM, no library.
"use strict";

const SVGNS = "http://www.w3.org/2000/svg";
const PALETTE = ["#1f6feb", "#2da44e", "#bf8700", "#8250df", "#cf222e", "#0a7ea4", "#d4a72c", "#57606a"];
const TRACK_COLORS = { speech: "#2da44e", music: "#bf8700", vocal_music: "#8250df", noise: "#57606a", overlap: "#cf222e", change: "#0a7ea4" };

function svg(tag, attrs, parent) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

function fmt(x, d = 2) { return x === null || x === undefined ? "–" : Number(x).toFixed(d); }

// A histogram {edges, counts} as a small bar chart; open-ended first/last bins are labelled < / ≥.
function histogramSvg(h, width = 220, height = 70) {
  const s = svg("svg", { width, height, class: "hist" });
  const max = Math.max(1, ...h.counts);
  const n = h.counts.length, bw = (width - 4) / n, base = height - 14;
  h.counts.forEach((c, i) => {
    const bh = (base - 2) * c / max;
    const r = svg("rect", { x: 2 + i * bw, y: base - bh, width: Math.max(1, bw - 1), height: bh, fill: "#1f6feb" }, s);
    const lo = h.edges[i], hi = h.edges[i + 1];
    svg("title", {}, r).textContent = `${lo === null ? "<" + hi : hi === null ? "≥" + lo : lo + "–" + hi}: ${c}`;
  });
  const first = h.edges.find((e) => e !== null), last = [...h.edges].reverse().find((e) => e !== null);
  svg("text", { x: 2, y: height - 2 }, s).textContent = first;
  svg("text", { x: width - 2, y: height - 2, "text-anchor": "end" }, s).textContent = last;
  return s;
}

// The recording timeline: waveform, one lane per variant, the cuts, then score tracks, over [t0, t1].
// `view` = {recording, lanes, cuts, tracks}; `wave` = {min, max} peaks or null; onPick(t, seg) on a click.
function timelineSvg(view, wave, t0, t1, width, onPick, extraLanes) {
  const laneH = 22, trackH = 34, waveH = 70, left = 130;
  const lanes = Object.entries(view.lanes).concat(extraLanes || []);
  const tracks = Object.entries(view.tracks);
  const height = waveH + (lanes.length + 1) * laneH + tracks.length * trackH + 30;
  const s = svg("svg", { width, height, id: "timeline" });
  const X = (t) => left + (width - left - 8) * (t - t0) / (t1 - t0);
  const T = (x) => t0 + (x - left) * (t1 - t0) / (width - left - 8);
  let y = 4;
  svg("text", { x: 4, y: y + waveH / 2 }, s).textContent = "waveform";
  if (wave && wave.max.length) {
    const n = wave.max.length, mid = y + waveH / 2, k = (waveH / 2 - 2);
    const xs = (i) => X(wave.start_s + (wave.end_s - wave.start_s) * i / n);
    let d = "";
    for (let i = 0; i < n; i++) d += `M${xs(i).toFixed(1)},${(mid - wave.max[i] * k).toFixed(1)}V${(mid - wave.min[i] * k).toFixed(1)}`;
    svg("path", { d, stroke: "#57606a", "stroke-width": 1, class: "wave" }, s);
  } else {
    svg("text", { x: left, y: y + waveH / 2, class: "note" }, s).textContent = "zoom in to ≤ 15 min to see the waveform";
  }
  y += waveH;
  const speakers = {};
  const laneRow = (name, items, cls, color) => {
    svg("text", { x: 4, y: y + 15 }, s).textContent = name;
    svg("line", { x1: left, x2: width - 8, y1: y + laneH - 1, y2: y + laneH - 1, stroke: "#eef1f3" }, s);
    for (const it of items) {
      if (it.end < t0 || it.start > t1) continue;
      const x = X(Math.max(it.start, t0)), w = Math.max(1, X(Math.min(it.end, t1)) - x);
      const r = svg("rect", { x, y: y + 3, width: w, height: laneH - 6, rx: 2, fill: color(it), class: cls, "data-start": it.start, "data-end": it.end }, s);
      svg("title", {}, r).textContent = it.title;
      r.addEventListener("click", (ev) => { ev.stopPropagation(); onPick(it.start, it); });
    }
    y += laneH;
  };
  for (const [name, segs] of lanes) {
    const items = segs.map((g) => ({ start: g[0], end: g[1], title: `${fmt(g[0])}–${fmt(g[1])} s ${g[2] || ""} ${g[3] || ""}`, speaker: g[2], id: g[4] }));
    laneRow(name, items, "seg", (it) => {
      if (!(it.speaker in speakers)) speakers[it.speaker] = PALETTE[Object.keys(speakers).length % PALETTE.length];
      return speakers[it.speaker];
    });
  }
  const cuts = view.cuts.map((c) => ({ start: c.start_s, end: c.end_s, title: `${c.stage}: ${c.reason}${c.score != null ? " (score " + fmt(c.score) + ")" : ""} [${c.variant}] ${fmt(c.start_s)}–${fmt(c.end_s)} s` }));
  laneRow("cuts", cuts, "cut", () => "#d1242f");
  for (const [name, pts] of tracks) {
    svg("text", { x: 4, y: y + trackH / 2 + 4 }, s).textContent = name;
    const key = name.split(".")[1];
    let d = "";
    for (const [t, v] of pts) if (t >= t0 && t <= t1) d += (d ? "L" : "M") + X(t).toFixed(1) + "," + (y + trackH - 3 - (trackH - 6) * v).toFixed(1);
    svg("path", { d, fill: "none", stroke: TRACK_COLORS[key] || "#57606a", "stroke-width": 1.2, class: "track" }, s);
    svg("line", { x1: left, x2: width - 8, y1: y + trackH - 2, y2: y + trackH - 2, stroke: "#eef1f3" }, s);
    y += trackH;
  }
  // time axis
  const step = niceStep((t1 - t0) / 8);
  for (let t = Math.ceil(t0 / step) * step; t <= t1; t += step) {
    svg("line", { x1: X(t), x2: X(t), y1: y, y2: y + 5, stroke: "#6b7780" }, s);
    svg("text", { x: X(t), y: y + 17, "text-anchor": "middle" }, s).textContent = clock(t);
  }
  const cursor = svg("line", { x1: -10, x2: -10, y1: 0, y2: height, stroke: "#cf222e", "stroke-width": 1.5, id: "cursor" }, s);
  s.addEventListener("click", (ev) => {
    const x = ev.clientX - s.getBoundingClientRect().left;
    if (x >= left) onPick(T(x), null);
  });
  s.moveCursor = (t) => { const x = t >= t0 && t <= t1 ? X(t) : -10; cursor.setAttribute("x1", x); cursor.setAttribute("x2", x); };
  return s;
}

function niceStep(raw) {
  const p = Math.pow(10, Math.floor(Math.log10(Math.max(raw, 1e-3))));
  return [1, 2, 5, 10].map((m) => m * p).find((v) => v >= raw) || 10 * p;
}

function clock(t) {
  const m = Math.floor(t / 60), s = t - 60 * m;
  return m ? `${m}:${s.toFixed(0).padStart(2, "0")}` : `${s.toFixed(1)} s`;
}

// Intervals of `a` not covered by `b` (both [[start, end, …]] sorted by start): what one variant keeps alone.
function only(a, b) {
  const out = [];
  for (const [s0, e0] of a) {
    let s = s0;
    for (const [bs, be] of b) {
      if (be <= s || bs >= e0) continue;
      if (bs > s) out.push([s, bs, "", "only here", ""]);
      s = Math.max(s, be);
    }
    if (s < e0) out.push([s, e0, "", "only here", ""]);
  }
  return out;
}
