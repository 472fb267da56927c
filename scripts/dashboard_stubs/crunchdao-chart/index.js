"use client";
// A stand-in for @crunchdao/chart: an SVG line or bar chart of a widget's rows.
import React from "react";

const h = React.createElement;
const W = 560;
const H = 180;
const COLORS = ["#e8703a", "#3aa0e8", "#5fd35f", "#d35fd3", "#e8d23a", "#aaaaaa"];

export function normalizeYAxisConfig(yAxis) {
  return yAxis ?? { series: [] };
}

// The real line chart appends "Z" to every x value before new Date(): so does this one.
function parseX(value) {
  return new Date(String(value) + "Z").getTime();
}

function applyFilters(rows, filters) {
  let out = rows;
  const chosen = [];
  for (const f of filters ?? []) {
    const values = [...new Set(out.map((r) => r[f.property]).filter((v) => v !== undefined && v !== null))];
    if (f.autoSelectFirst && values.length) {
      out = out.filter((r) => r[f.property] === values[0]);
      chosen.push(`${f.label}: ${values[0]}`);
    }
  }
  return [out, chosen];
}

function LineChart({ rows, config, idProperty, label }) {
  const series = config.yAxis?.series ?? [];
  const groupBy = config.groupByProperty;
  const lines = [];
  let invalid = 0;
  for (const s of series) {
    const byGroup = new Map();
    for (const r of rows) {
      const y = r[s.name];
      if (typeof y !== "number") continue;
      const x = parseX(r[config.xAxis?.name]);
      if (Number.isNaN(x)) { invalid++; continue; }
      const key = [label(r[idProperty]), groupBy ? r[groupBy] : null, s.label ?? s.name].filter(Boolean).join(" · ");
      if (!byGroup.has(key)) byGroup.set(key, []);
      byGroup.get(key).push([x, y]);
    }
    for (const [key, points] of byGroup) lines.push({ key, points: points.sort((a, b) => a[0] - b[0]) });
  }
  const all = lines.flatMap((l) => l.points);
  if (!all.length) {
    return h("p", { "data-points": 0 }, invalid ? `no points: ${invalid} x values are not dates` : "no points to plot");
  }
  const [x0, x1] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  const [y0, y1] = [Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))];
  const sx = (x) => 40 + ((x - x0) / (x1 - x0 || 1)) * (W - 50);
  const sy = (y) => H - 20 - ((y - y0) / (y1 - y0 || 1)) * (H - 30);
  return h("div", { "data-points": all.length },
    h("svg", { width: W, height: H, style: { background: "#111" } },
      h("text", { x: 2, y: 12, fill: "#aaa", fontSize: 10 }, y1.toPrecision(3)),
      h("text", { x: 2, y: H - 22, fill: "#aaa", fontSize: 10 }, y0.toPrecision(3)),
      h("text", { x: 40, y: H - 4, fill: "#aaa", fontSize: 10 }, new Date(x0).toISOString().slice(0, 16)),
      h("text", { x: W - 110, y: H - 4, fill: "#aaa", fontSize: 10 }, new Date(x1).toISOString().slice(0, 16)),
      lines.map((l, i) => h("polyline", {
        key: l.key, fill: "none", stroke: COLORS[i % COLORS.length], strokeWidth: 1.5,
        points: l.points.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" "),
      })),
      // A series of a single point has no line: mark it.
      lines.filter((l) => l.points.length === 1).map((l) => h("circle", {
        key: `dot-${l.key}`, cx: sx(l.points[0][0]), cy: sy(l.points[0][1]), r: 3, fill: COLORS[lines.indexOf(l) % COLORS.length],
      }))),
    h("div", { style: { fontSize: 11 } }, `${all.length} points · `,
      lines.slice(0, 8).map((l, i) => h("span", { key: l.key, style: { color: COLORS[i % COLORS.length], marginRight: 8 } }, l.key))));
}

function BarChart({ rows, config, label }) {
  const series = config.yAxis?.series ?? [];
  const xName = config.xAxis?.name;
  const bars = [];
  for (const r of rows) for (const s of series) {
    if (typeof r[s.name] === "number") bars.push({ x: xName === "model_id" ? label(r[xName]) : String(r[xName] ?? ""), name: s.label ?? s.name, y: r[s.name], group: config.groupByProperty ? r[config.groupByProperty] : null });
  }
  if (!bars.length) return h("p", { "data-points": 0 }, "no points to plot");
  const max = Math.max(...bars.map((b) => Math.abs(b.y))) || 1;
  return h("div", { "data-points": bars.length }, bars.slice(0, 24).map((b, i) =>
    h("div", { key: i, style: { display: "flex", alignItems: "center", fontSize: 11, gap: 6 } },
      h("span", { style: { width: 220, overflow: "hidden", whiteSpace: "nowrap" } }, [b.x, b.group, b.name].filter(Boolean).join(" · ")),
      h("span", { style: { display: "inline-block", height: 10, width: Math.max(1, (Math.abs(b.y) / max) * 260), background: COLORS[series.findIndex((s) => (s.label ?? s.name) === b.name) % COLORS.length] } }),
      h("span", null, b.y.toFixed(4)))));
}

export function MetricWidget({ widget, getModelLabel }) {
  const label = (id) => (getModelLabel ? getModelLabel(String(id)) : String(id));
  const definition = widget.definitions?.[0] ?? {};
  const config = definition.nativeConfiguration ?? {};
  const [rows, chosen] = applyFilters(widget.data ?? [], config.filterConfig);
  const body = widget.type === "IFRAME"
    ? h("p", null, `iframe: ${config.url}`)
    : config.type === "bar"
      ? h(BarChart, { rows, config, label })
      : h(LineChart, { rows, config, label, idProperty: widget.projectIdProperty ?? "model_id" });
  return h("section", { "data-widget": widget.name, style: { border: "1px solid #555", borderRadius: 6, padding: 8, margin: "8px 0" } },
    h("h4", { style: { margin: "2px 0" } }, `${widget.name} (${(widget.data ?? []).length} rows${chosen.length ? "; " + chosen.join(", ") : ""})`),
    body);
}

export function Gauge({ data }) {
  return h("span", null, Object.entries(data ?? {}).map(([k, v]) => `${k}: ${Number(v).toFixed(2)}`).join(" "));
}
