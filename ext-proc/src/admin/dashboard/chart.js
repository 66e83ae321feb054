// Self-drawn SVG charts: a sparkline and a stacked bar chart. No dependencies; every element
// is built with the DOM API (no markup strings), colours are SVG attributes, so the page's
// strict CSP (no inline style) holds.

const SVG = "http://www.w3.org/2000/svg";

export const PALETTE = [
  "#2f6fdf", "#e0752d", "#2a9d6a", "#c2417b", "#7d5bd0",
  "#c9a227", "#1f9bb3", "#8f5d3b", "#5f6b7a", "#d3463a",
];

export function color(i) {
  return PALETTE[i % PALETTE.length];
}

function el(name, attrs = {}, ...children) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== undefined && v !== null) e.setAttribute(k, String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(typeof c === "string" ? document.createTextNode(c) : c);
  }
  return e;
}

/** A small line with its area under it. `values`: numbers, oldest first. */
export function sparkline(values, { width = 160, height = 36, title = "" } = {}) {
  const svg = el("svg", {
    class: "spark", viewBox: `0 0 ${width} ${height}`, width, height,
    role: "img", "aria-label": title || "trend", preserveAspectRatio: "none",
  });
  if (title) svg.append(el("title", {}, title));
  const n = values.length;
  if (n === 0) return svg;
  const max = Math.max(...values, 0);
  const pad = 3;
  const x = (i) => (n === 1 ? width / 2 : pad + (i * (width - 2 * pad)) / (n - 1));
  const y = (v) => (max > 0 ? height - pad - (v / max) * (height - 2 * pad) : height - pad);
  const pts = values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`);
  const area = `${x(0).toFixed(1)},${height - pad} ${pts.join(" ")} ${x(n - 1).toFixed(1)},${height - pad}`;
  svg.append(
    el("polygon", { points: area, class: "spark-area" }),
    el("polyline", { points: pts.join(" "), class: "spark-line", fill: "none" }),
  );
  const last = values[n - 1];
  svg.append(el("circle", { cx: x(n - 1).toFixed(1), cy: y(last).toFixed(1), r: 2.2, class: "spark-dot" }));
  return svg;
}

/** Round up to 1, 2 or 5 times a power of ten. */
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/**
 * Stacked bars, one stack per bucket.
 *   buckets: [{ label, title }]           x axis, oldest first
 *   series:  [{ key, label, values: [number], titles: [string] }]
 *   tick(v): y axis label for a value
 * Returns an <svg>; each bar has a <title> with the exact value for hover.
 */
export function stackedBars({ buckets, series, tick, width = 960, height = 280, label = "chart" }) {
  const m = { top: 12, right: 12, bottom: 28, left: 72 };
  const w = width - m.left - m.right;
  const h = height - m.top - m.bottom;
  const n = buckets.length;
  const totals = buckets.map((_, i) => series.reduce((s, se) => s + (se.values[i] || 0), 0));
  const max = niceMax(Math.max(0, ...totals));
  const svg = el("svg", {
    class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label,
    "data-buckets": n, "data-series": series.length,
  });
  const g = el("g", { transform: `translate(${m.left},${m.top})` });
  svg.append(g);

  const ticks = 4;
  for (let t = 0; t <= ticks; t++) {
    const v = (max * t) / ticks;
    const y = h - (h * t) / ticks;
    g.append(
      el("line", { x1: 0, x2: w, y1: y, y2: y, class: t === 0 ? "axis" : "gridline" }),
      el("text", { x: -8, y: y + 4, class: "tick", "text-anchor": "end" }, tick(v)),
    );
  }
  if (n === 0) return svg;
  const step = w / n;
  const bw = Math.max(1, Math.min(48, step * 0.72));
  // As many labels as fit side by side (about 6.5 px per character at 11 px).
  const labelWidth = Math.max(...buckets.map((b) => b.label.length)) * 6.5 + 16;
  const every = Math.max(1, Math.ceil(n / Math.max(1, Math.floor(w / labelWidth))));
  for (let i = 0; i < n; i++) {
    const x = i * step + (step - bw) / 2;
    let base = h;
    const stack = el("g", { class: "stack", "data-bucket": i });
    stack.append(el("title", {}, buckets[i].title));
    for (let s = 0; s < series.length; s++) {
      const v = series[s].values[i] || 0;
      if (v <= 0) continue;
      const bh = Math.max(1, (v / max) * h);
      base -= bh;
      const r = el("rect", {
        x: x.toFixed(2), y: base.toFixed(2), width: bw.toFixed(2), height: bh.toFixed(2),
        fill: color(s), class: "bar", "data-series": s,
      });
      r.append(el("title", {}, `${buckets[i].title}\n${series[s].label}: ${series[s].titles[i]}`));
      stack.append(r);
    }
    g.append(stack);
    if (i % every === 0) {
      g.append(el("text", { x: (i * step + step / 2).toFixed(1), y: h + 18, class: "tick", "text-anchor": "middle" },
        buckets[i].label));
    }
  }
  return svg;
}
