// A small SVG chart: grouped bars per label, and optionally one line on a 0..1 scale (right axis).

const NS = "http://www.w3.org/2000/svg";

function node(tag, attrs = {}, text) {
  const n = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
  if (text !== undefined) n.textContent = text;
  return n;
}

// bars: [{name, color, values}], line: {name, color, values (0..1 or null)} | null
export function drawChart(svg, labels, bars, line = null) {
  const W = 900, H = 260, left = 40, right = 40, top = 10, bottom = 40;
  const plotW = W - left - right, plotH = H - top - bottom;
  svg.replaceChildren();
  const max = Math.max(1, ...bars.flatMap((b) => b.values));
  const n = Math.max(1, labels.length);
  const slot = plotW / n;
  const barW = Math.max(1, (slot * 0.8) / Math.max(1, bars.length));
  const y = (v) => top + plotH - (v / max) * plotH;
  svg.append(node("line", { x1: left, y1: top + plotH, x2: left + plotW, y2: top + plotH, class: "axis" }));
  for (const t of [0, 0.5, 1]) {
    const v = Math.round(max * t);
    svg.append(node("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end", class: "tick" }, String(v)));
    if (line) svg.append(node("text", { x: left + plotW + 6, y: top + plotH - t * plotH + 4, class: "tick" }, `${t * 100}%`));
  }
  bars.forEach((b, j) => {
    b.values.forEach((v, i) => {
      if (!v) return;
      const x = left + i * slot + slot * 0.1 + j * barW;
      const rect = node("rect", { x, y: y(v), width: barW, height: top + plotH - y(v), fill: b.color, class: "bar", "data-series": b.name });
      rect.append(node("title", {}, `${labels[i]} · ${b.name}: ${v}`));
      svg.append(rect);
    });
  });
  if (line) {
    const pts = line.values.map((v, i) => (v === null || v === undefined ? null
      : `${left + i * slot + slot / 2},${top + plotH - v * plotH}`)).filter(Boolean);
    if (pts.length) svg.append(node("polyline", { points: pts.join(" "), fill: "none", stroke: line.color, "stroke-width": 2, class: "line" }));
  }
  const every = Math.ceil(n / 12);
  labels.forEach((l, i) => {
    if (i % every) return;
    svg.append(node("text", { x: left + i * slot + slot / 2, y: H - bottom + 16, "text-anchor": "middle", class: "tick" }, l));
  });
}
