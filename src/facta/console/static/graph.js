// The causation graph as inline SVG: nodes in rows by how far they are from the request
// that began the chain (top down, as chains are long and narrow), edges as arrows.
"use strict";
window.Graph = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const NODE_W = 210, NODE_H = 40, GAP_X = 24, GAP_Y = 22;

  function el(name, attrs) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    return node;
  }

  function layers(nodes, edges) {
    const incoming = new Map(nodes.map((n) => [n.id, []]));
    for (const e of edges) if (incoming.has(e.target)) incoming.get(e.target).push(e.source);
    const depth = new Map();
    const visit = (id, seen) => {
      if (depth.has(id)) return depth.get(id);
      if (seen.has(id)) return 0; // a cycle cannot happen, but never loop on one
      seen.add(id);
      const parents = incoming.get(id) || [];
      const d = parents.length ? 1 + Math.max(...parents.map((p) => visit(p, seen))) : 0;
      depth.set(id, d);
      return d;
    };
    nodes.forEach((n) => visit(n.id, new Set()));
    return depth;
  }

  function draw(container, graph, focus, onOpen) {
    container.replaceChildren();
    const depth = layers(graph.nodes, graph.edges);
    const levels = new Map();
    for (const n of graph.nodes) {
      const d = depth.get(n.id) || 0;
      if (!levels.has(d)) levels.set(d, []);
      levels.get(d).push(n);
    }
    const place = new Map();
    let widest = 0;
    for (const [d, list] of levels) {
      list.forEach((n, i) => place.set(n.id, { x: 10 + i * (NODE_W + GAP_X), y: 10 + d * (NODE_H + GAP_Y) }));
      widest = Math.max(widest, list.length);
    }
    const width = 20 + widest * (NODE_W + GAP_X);
    const height = 20 + levels.size * (NODE_H + GAP_Y);
    const svg = el("svg", { width, height, viewBox: `0 0 ${width} ${height}`, id: "causation-svg" });
    const defs = el("defs");
    const marker = el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 8, markerHeight: 8, orient: "auto" });
    marker.append(el("path", { d: "M0,0 L10,5 L0,10 z", fill: "#98a2b3" }));
    defs.append(marker);
    svg.append(defs);
    for (const e of graph.edges) {
      const a = place.get(e.source), b = place.get(e.target);
      if (!a || !b) continue;
      const x1 = a.x + NODE_W / 2, y1 = a.y + NODE_H, x2 = b.x + NODE_W / 2, y2 = b.y;
      const mid = (y1 + y2) / 2;
      svg.append(el("path", { class: "edge", d: `M${x1},${y1} C${x1},${mid} ${x2},${mid} ${x2},${y2}` }));
    }
    for (const n of graph.nodes) {
      const p = place.get(n.id);
      const g = el("g", { class: `node ${n.kind}${n.id === focus ? " focus" : ""}`, transform: `translate(${p.x},${p.y})` });
      g.dataset.id = n.id;
      g.dataset.kind = n.kind;
      g.dataset.stream = n.stream_id;
      g.append(el("rect", { width: NODE_W, height: NODE_H, rx: 6 }));
      const title = el("text", { x: 8, y: 16, "font-weight": 600 });
      title.textContent = n.kind === "event" ? n.label : `⚙ ${n.label}`;
      const sub = el("text", { x: 8, y: 32, fill: "#475467" });
      sub.textContent = n.kind === "event" ? `${n.stream_id} v${n.version}` : `→ ${n.stream_id}`;
      g.append(title, sub);
      if (n.kind === "event") {
        g.style.cursor = "pointer";
        g.addEventListener("click", () => onOpen(n.id));
      }
      svg.append(g);
    }
    container.append(svg);
  }

  return { draw };
})();
