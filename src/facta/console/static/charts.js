// Line charts as inline SVG, drawn here: no chart library, nothing fetched.
"use strict";
window.Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const COLOURS = ["#2f6fde", "#c0262d", "#1a7f37", "#b54708", "#7a5af8", "#0e9384", "#dd2590"];

  function el(name, attrs) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    return node;
  }

  function niceMax(value) {
    if (value <= 0) return 1;
    const step = Math.pow(10, Math.floor(Math.log10(value)));
    for (const m of [1, 2, 5, 10]) if (m * step >= value) return m * step;
    return 10 * step;
  }

  // series: [{name, values: [numbers]}], times: [unix seconds] (the x of each value)
  function line(container, title, times, series) {
    container.replaceChildren();
    const box = document.createElement("div");
    box.className = "chart";
    const heading = document.createElement("h2");
    heading.textContent = title;
    box.append(heading);
    const W = 600, H = 200, L = 48, R = 10, T = 10, B = 24;
    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title });
    const all = series.flatMap((s) => s.values);
    const top = niceMax(Math.max(0, ...all));
    const t0 = times.length ? times[0] : 0, t1 = times.length ? times[times.length - 1] : 1;
    const x = (t) => L + ((t - t0) / Math.max(t1 - t0, 1e-9)) * (W - L - R);
    const y = (v) => T + (1 - v / top) * (H - T - B);
    for (let i = 0; i <= 4; i++) {
      const v = (top * i) / 4;
      svg.append(el("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#e4e7ec" }));
      const label = el("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", "font-size": 11, fill: "#667085" });
      label.textContent = Number.isInteger(v) ? String(v) : v.toFixed(1);
      svg.append(label);
    }
    if (times.length) {
      const span = el("text", { x: W - R, y: H - 6, "text-anchor": "end", "font-size": 11, fill: "#667085" });
      span.textContent = `last ${Math.round(t1 - t0)} s`;
      svg.append(span);
    }
    const legend = document.createElement("div");
    legend.className = "legend";
    series.forEach((s, i) => {
      const colour = COLOURS[i % COLOURS.length];
      if (s.values.length) {
        const points = s.values.map((v, j) => `${x(times[j]).toFixed(1)},${y(v).toFixed(1)}`);
        const path = el("polyline", { points: points.join(" "), fill: "none", stroke: colour, "stroke-width": 2 });
        path.dataset.series = s.name;
        svg.append(path);
      }
      const key = document.createElement("span");
      key.style.setProperty("--c", colour);
      const last = s.values.length ? s.values[s.values.length - 1] : 0;
      key.textContent = `${s.name}: ${last}`;
      key.dataset.series = s.name;
      key.dataset.last = String(last);
      legend.append(key);
    });
    if (!times.length) {
      const wait = el("text", { x: W / 2, y: H / 2, "text-anchor": "middle", fill: "#98a2b3" });
      wait.textContent = "collecting samples…";
      svg.append(wait);
    }
    box.append(svg, legend);
    container.append(box);
  }

  return { line };
})();
