// The console: one page, a view per hash route, every figure from the JSON endpoints under
// /console/api (so that what it shows is what a script can read).
"use strict";
(() => {
  const API = "/console/api";
  const main = document.getElementById("main");
  let timer = null; // the current view's refresh, stopped when the view changes
  let generation = 0; // a view's work that finishes after the user moved on is dropped

  // -- helpers ---------------------------------------------------------------------------

  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(node.dataset, v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function askKey() {
    return new Promise((resolve) => {
      const dialog = document.getElementById("key-dialog");
      const input = document.getElementById("key-input");
      input.value = "";
      dialog.addEventListener("close", () => {
        sessionStorage.setItem("facta-api-key", input.value.trim());
        resolve();
      }, { once: true });
      dialog.showModal();
    });
  }

  async function api(path, options = {}) {
    for (let attempt = 0; attempt < 3; attempt++) {
      const headers = { ...(options.headers || {}) };
      const key = sessionStorage.getItem("facta-api-key");
      if (key) headers["X-API-Key"] = key;
      const response = await fetch(API + path, { ...options, headers });
      if (response.status === 401) {
        await askKey();
        continue;
      }
      const body = await response.json().catch(() => ({ message: response.statusText }));
      if (!response.ok) {
        const error = new Error(body.message || `HTTP ${response.status}`);
        error.status = response.status;
        throw error;
      }
      return body;
    }
    throw new Error("no valid API key");
  }

  function when(iso) {
    if (!iso) return "";
    return iso.replace("T", " ").replace("Z", "");
  }

  function json(value) {
    return h("pre", { class: "json" }, JSON.stringify(value, null, 2));
  }

  function failure(error) {
    return h("p", { class: "error", role: "alert" }, String(error.message || error));
  }

  function every(seconds, work) {
    const mine = generation;
    const run = async () => {
      if (mine !== generation) return;
      try { await work(); } catch (error) { console.warn(error); }
      if (mine === generation) timer = setTimeout(run, seconds * 1000);
    };
    run();
  }

  function query(hash) {
    const [path, search] = hash.split("?");
    return [path, new URLSearchParams(search || "")];
  }

  function go(hash) { location.hash = hash; }

  // -- overview --------------------------------------------------------------------------

  async function overview() {
    const cards = h("div", { class: "cards", id: "overview-cards" });
    const charts = h("div", { class: "charts" });
    const rate = h("div", { id: "chart-rate" }), lag = h("div", { id: "chart-lag" });
    charts.append(rate, lag);
    const relays = h("div", { id: "overview-relays" });
    main.replaceChildren(h("h1", {}, "Overview"), cards, charts, relays);
    every(2, async () => {
      const o = await api("/overview");
      const card = (label, value, cls, id) =>
        h("div", { class: "card", id }, h("div", { class: "label" }, label), h("div", { class: `value ${cls || ""}` }, value));
      if (!o.store.ok) {
        cards.replaceChildren(card("store", "down", "bad", "card-store"), failure(o.store));
        return;
      }
      const worstRelay = Math.max(0, ...o.relays.map((r) => r.lag_events));
      cards.replaceChildren(
        card("events", o.events.toLocaleString("en"), "", "card-events"),
        card("streams", o.streams.toLocaleString("en"), "", "card-streams"),
        card("head", o.head, "", "card-head"),
        card("store", `${o.store.engine} ok · ${o.store.latency_ms} ms`, "ok", "card-store"),
        card("relay lag", o.relays.length ? `${worstRelay} events` : "no relay", "", "card-relay"),
      );
      Charts.line(rate, "Events per second", o.series.at, [{ name: "events/s", values: o.series.events_per_second }]);
      Charts.line(lag, "Projection lag (events)", o.series.at,
        Object.entries(o.series.lags).map(([name, values]) => ({ name, values })));
      relays.replaceChildren(o.relays.length ? h("h2", {}, "Relays") : "", o.relays.length ? relayTable(o.relays) : "");
    });
  }

  // -- streams, a stream, an event -------------------------------------------------------

  async function streams(params) {
    const prefix = params.get("prefix") || "", category = params.get("category") || "";
    const after = params.get("after") || "";
    const form = h("form", { class: "filters", id: "stream-search" },
      h("label", {}, "Category", h("input", { name: "category", value: category, placeholder: "account" })),
      h("label", {}, "Id prefix", h("input", { name: "prefix", value: prefix, placeholder: "acc-00" })),
      h("button", { type: "submit" }, "Search"));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const q = new URLSearchParams();
      for (const name of ["category", "prefix"]) if (form[name].value.trim()) q.set(name, form[name].value.trim());
      go(`#/streams?${q}`);
    });
    const results = h("div", { id: "stream-results" }, "searching…");
    main.replaceChildren(h("h1", {}, "Streams"), form, results);
    const q = new URLSearchParams({ limit: "50" });
    if (prefix) q.set("prefix", prefix);
    if (category) q.set("category", category);
    if (after) q.set("after", after);
    try {
      const page = await api(`/streams?${q}`);
      const rows = page.streams.map((s) =>
        h("tr", { class: "clickable", dataset: { stream: s.stream_id }, onclick: () => go(`#/stream/${encodeURIComponent(s.stream_id)}`) },
          h("td", {}, h("a", { href: `#/stream/${encodeURIComponent(s.stream_id)}` }, s.stream_id)),
          h("td", { class: "num" }, s.version)));
      const pager = h("div", { class: "pager" });
      if (after) pager.append(h("button", { onclick: () => history.back() }, "← Previous"));
      if (page.next) {
        const next = new URLSearchParams(q); next.set("after", page.next); next.delete("limit");
        pager.append(h("button", { id: "streams-next", onclick: () => go(`#/streams?${next}`) }, "Next →"));
      }
      results.replaceChildren(
        rows.length ? h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "stream"), h("th", { class: "num" }, "version"))), h("tbody", {}, rows))
          : h("p", { class: "muted" }, "no streams match"),
        pager);
    } catch (error) { results.replaceChildren(failure(error)); }
  }

  async function stream(id, params) {
    const from = Number(params.get("from") || "1");
    const header = h("h1", {}, "Stream ", h("code", {}, id));
    const body = h("div", {}, "loading…");
    main.replaceChildren(header, body);
    try {
      const page = await api(`/streams/${encodeURIComponent(id)}/events?from_version=${from}&limit=50`);
      const rows = page.events.map((e) =>
        h("tr", { class: "clickable", dataset: { event: e.event_id, version: e.version }, onclick: () => go(`#/event/${e.event_id}`) },
          h("td", { class: "num" }, e.version), h("td", {}, e.type), h("td", {}, when(e.recorded_at)), h("td", { class: "num" }, e.position)));
      const pager = h("div", { class: "pager" });
      if (from > 1) pager.append(h("button", { onclick: () => go(`#/stream/${encodeURIComponent(id)}?from=${Math.max(1, from - 50)}`) }, "← Earlier"));
      if (page.next_version) pager.append(h("button", { onclick: () => go(`#/stream/${encodeURIComponent(id)}?from=${page.next_version}`) }, "Later →"));
      const table = h("table", { id: "stream-events" },
        h("thead", {}, h("tr", {}, h("th", { class: "num" }, "version"), h("th", {}, "type"), h("th", {}, "recorded at"), h("th", { class: "num" }, "position"))),
        h("tbody", {}, rows));
      const left = h("div", {}, h("p", { class: "muted" }, `${page.version} events`), table, pager);
      const right = h("div", { id: "time-travel" });
      body.replaceChildren(h("div", { class: "split" }, left, right));
      if (page.aggregate) timeTravel(right, id, page.version);
      else right.append(h("p", { class: "muted" }, "no aggregate registered for this category: no state to show"));
    } catch (error) { body.replaceChildren(failure(error)); }
  }

  function timeTravel(box, id, version) {
    const label = h("span", { id: "travel-version" }, String(version));
    const slider = h("input", { type: "range", min: "0", max: String(version), value: String(version), id: "travel-slider", "aria-label": "version" });
    const state = h("div", { id: "travel-state" });
    box.append(h("h2", {}, "State at version ", label), slider, state);
    let asked = 0;
    const load = async () => {
      const v = Number(slider.value), mine = ++asked;
      label.textContent = String(v);
      try {
        const found = await api(`/streams/${encodeURIComponent(id)}/state?version=${v}`);
        if (mine === asked) state.replaceChildren(json(found.state));
      } catch (error) { if (mine === asked) state.replaceChildren(failure(error)); }
    };
    slider.addEventListener("input", load);
    load();
  }

  async function event(id) {
    main.replaceChildren(h("h1", {}, "Event"), h("p", {}, "loading…"));
    try {
      const e = await api(`/events/${encodeURIComponent(id)}`);
      main.replaceChildren(
        h("h1", {}, e.type, " ", h("span", { class: "muted" }, `${e.stream_id} v${e.version}`)),
        h("p", {},
          h("a", { href: `#/stream/${encodeURIComponent(e.stream_id)}` }, "← stream"), " · ",
          h("a", { href: `#/causation/${encodeURIComponent(e.event_id)}`, id: "open-causation" }, "causation graph"), " · ",
          `position ${e.position} · recorded ${when(e.recorded_at)} · id `, h("code", {}, e.event_id)),
        h("div", { class: "split" },
          h("div", { id: "event-data" }, h("h2", {}, "Data"), json(e.data)),
          h("div", { id: "event-metadata" }, h("h2", {}, "Metadata"), json(e.metadata))));
    } catch (error) { main.replaceChildren(h("h1", {}, "Event"), failure(error)); }
  }

  // -- causation -------------------------------------------------------------------------

  async function causation(key) {
    const form = h("form", { class: "filters", id: "causation-form" },
      h("label", {}, "Event id, command id or correlation id", h("input", { name: "key", value: key || "", size: 40 })),
      h("button", { type: "submit" }, "Show"));
    form.addEventListener("submit", (e) => { e.preventDefault(); go(`#/causation/${encodeURIComponent(form.key.value.trim())}`); });
    const box = h("div", { class: "graph", id: "causation-graph" });
    const summary = h("p", { class: "muted", id: "causation-summary" });
    main.replaceChildren(h("h1", {}, "Causation"), form, summary, box);
    if (!key) return;
    try {
      const graph = await api(`/causation?key=${encodeURIComponent(key)}`);
      const events = graph.nodes.filter((n) => n.kind === "event");
      const streamsSeen = new Set(events.map((n) => n.stream_id));
      summary.textContent = graph.nodes.length
        ? `${events.length} events and ${graph.nodes.length - events.length} commands across ${streamsSeen.size} streams · correlation ${graph.correlation_id}${graph.truncated ? " (cut at 500 events)" : ""}`
        : "nothing found for this id";
      Graph.draw(box, graph, key, (id) => go(`#/event/${id}`));
    } catch (error) { box.replaceChildren(failure(error)); }
  }

  // -- live tail -------------------------------------------------------------------------

  async function tail(params) {
    const category = params.get("category") || "", type = params.get("type") || "";
    const form = h("form", { class: "filters", id: "tail-filters" },
      h("label", {}, "Category", h("input", { name: "category", value: category })),
      h("label", {}, "Type", h("input", { name: "type", value: type })),
      h("button", { type: "submit" }, "Filter"));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const q = new URLSearchParams();
      for (const name of ["category", "type"]) if (form[name].value.trim()) q.set(name, form[name].value.trim());
      go(`#/tail?${q}`);
    });
    const tbody = h("tbody", {});
    const status = h("p", { class: "muted", id: "tail-status" }, "following the log from now on…");
    main.replaceChildren(h("h1", {}, "Live tail"), form, status,
      h("table", { id: "tail-table" }, h("thead", {}, h("tr", {}, h("th", { class: "num" }, "position"), h("th", {}, "stream"), h("th", { class: "num" }, "version"), h("th", {}, "type"), h("th", {}, "recorded at"))), tbody));
    const filter = new URLSearchParams();
    if (category) filter.append("category", category);
    if (type) filter.append("type", type);
    let next = null, seen = 0;
    every(1, async () => {
      const q = new URLSearchParams(filter);
      if (next !== null) q.set("after", next);
      q.set("limit", "200");
      const page = await api(`/tail?${q}`);
      next = page.next;
      for (const e of page.events) {
        seen++;
        tbody.prepend(h("tr", { class: "clickable", dataset: { type: e.type }, onclick: () => go(`#/event/${e.event_id}`) },
          h("td", { class: "num" }, e.position), h("td", {}, e.stream_id), h("td", { class: "num" }, e.version), h("td", {}, e.type), h("td", {}, when(e.recorded_at))));
      }
      while (tbody.children.length > 500) tbody.lastChild.remove();
      status.textContent = `following the log · ${seen} events since this page opened · at ${next}`;
    });
  }

  // -- projections -----------------------------------------------------------------------

  function confirmAction(title, text, expected) {
    return new Promise((resolve) => {
      const dialog = document.getElementById("confirm-dialog");
      document.getElementById("confirm-title").textContent = title;
      document.getElementById("confirm-text").textContent = text;
      document.getElementById("confirm-expected").textContent = expected;
      const operator = document.getElementById("confirm-operator");
      const name = document.getElementById("confirm-name");
      operator.value = localStorage.getItem("facta-operator") || "";
      name.value = "";
      dialog.addEventListener("close", () => {
        if (dialog.returnValue !== "ok") return resolve(null);
        localStorage.setItem("facta-operator", operator.value.trim());
        resolve({ operator: operator.value.trim(), confirm: name.value.trim() });
      }, { once: true });
      dialog.showModal();
    });
  }

  async function act(path, title, text, name, notice) {
    const body = await confirmAction(title, text, name);
    if (!body) return;
    try {
      const result = await api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      notice.replaceChildren(h("div", { class: "notice", role: "status", id: "action-result" }, `${result.action} ${result.projection}${result.event_id ? ` (${result.event_id})` : ""}: ${result.result}`));
    } catch (error) { notice.replaceChildren(failure(error)); }
  }

  async function projections() {
    const notice = h("div", { id: "action-notice" });
    const table = h("div", { id: "projections-table" });
    const parked = h("div", { id: "parked" });
    const log = h("div", { id: "actions-log" });
    main.replaceChildren(h("h1", {}, "Projections"), notice, table, parked, log);
    every(2, async () => {
      const page = await api("/projections");
      const rows = page.projections.map((p) => {
        const name = p.name, code = page.rebuildable.includes(name);
        const base = `/projections/${encodeURIComponent(name)}`;
        const rebuild = page.rebuilds[name];
        const buttons = p.partition === 0 && p.active ? [
          p.state === "paused"
            ? h("button", { dataset: { action: "resume", projection: name }, onclick: () => act(`${base}/resume`, `Resume ${name}`, "Runners take it up again from its checkpoint.", name, notice) }, "Resume")
            : h("button", { dataset: { action: "pause", projection: name }, disabled: !["running", "stopped"].includes(p.state), onclick: () => act(`${base}/pause`, `Pause ${name}`, "Its runner lets go; nobody takes it up until it is resumed.", name, notice) }, "Pause"),
          h("button", { class: "danger", dataset: { action: "rebuild", projection: name }, disabled: !code || p.state === "inline" || (rebuild && rebuild.running), title: code ? "" : "a policy, or a projection whose code the console does not hold", onclick: () => act(`${base}/rebuild`, `Rebuild ${name}`, "Built anew from the start of the log beside the current version, then switched to (blue/green).", name, notice) }, "Rebuild"),
        ] : [];
        return h("tr", { dataset: { projection: name, slot: p.slot, partition: p.partition, active: p.active } },
          h("td", {}, name, p.partitions > 1 ? ` #${p.partition}/${p.partitions}` : ""),
          h("td", { class: "num" }, p.version), h("td", { class: "num" }, p.slot),
          h("td", {}, h("span", { class: `state ${p.state}`, dataset: { state: p.state } }, p.active ? p.state : `${p.state} (building)`)),
          h("td", { class: "num" }, p.position), h("td", { class: "num", dataset: { lag: p.lag_events } }, p.lag_events),
          h("td", { class: "num" }, p.lag_seconds.toFixed(1)), h("td", { class: "num", dataset: { handled: p.handled } }, p.handled),
          h("td", {}, p.owner || ""), h("td", { class: "num" }, p.parked),
          h("td", { class: "error" }, p.error ? `at ${p.error_position}: ${p.error}` : ""),
          h("td", {}, buttons, rebuild ? h("div", { class: "muted" }, rebuild.running ? `rebuilding: ${rebuild.events} events` : rebuild.error ? `rebuild failed: ${rebuild.error}` : `rebuilt (${rebuild.events} events)`) : ""));
      });
      table.replaceChildren(h("table", {},
        h("thead", {}, h("tr", {}, ...["projection", "version", "slot", "state", "position", "lag", "lag (s)", "handled", "owner", "parked", "last error", "actions"].map((c) => h("th", {}, c)))),
        h("tbody", {}, rows)));
      const letters = Object.entries(page.parked).flatMap(([name, list]) => list.map((d) => ({ name, ...d })));
      parked.replaceChildren(h("h2", {}, `Parked events (${letters.length})`), letters.length ? h("table", { id: "parked-table" },
        h("thead", {}, h("tr", {}, ...["projection", "position", "stream", "type", "parked at", "error", ""].map((c) => h("th", {}, c)))),
        h("tbody", {}, letters.map((d) => {
          const base = `/projections/${encodeURIComponent(d.name)}/parked/${encodeURIComponent(d.event_id)}`;
          return h("tr", { dataset: { event: d.event_id, projection: d.name } },
            h("td", {}, d.name), h("td", { class: "num" }, d.position),
            h("td", {}, h("a", { href: `#/event/${d.event_id}` }, d.stream_id)), h("td", {}, d.type),
            h("td", {}, when(d.parked_at)), h("td", { class: "error" }, d.error),
            h("td", {},
              h("button", { dataset: { action: "retry" }, disabled: !page.code.includes(d.name), onclick: () => act(`${base}/retry`, `Retry event in ${d.name}`, `Handle ${d.type} of ${d.stream_id} again now.`, d.name, notice) }, "Retry"),
              h("button", { class: "danger", dataset: { action: "skip" }, onclick: () => act(`${base}/skip`, `Skip event in ${d.name}`, `Forget ${d.type} of ${d.stream_id}: it is never handled.`, d.name, notice) }, "Skip")));
        }))) : h("p", { class: "muted" }, "none"));
      log.replaceChildren(h("h2", {}, "Recent actions"), page.actions.length ? h("table", { id: "actions-table" },
        h("thead", {}, h("tr", {}, ...["when", "who", "action", "projection", "event", "result"].map((c) => h("th", {}, c)))),
        h("tbody", {}, page.actions.map((a) => h("tr", {},
          h("td", {}, when(a.at)), h("td", {}, a.operator, a.key_id ? h("span", { class: "muted" }, ` (key ${a.key_id})`) : ""),
          h("td", {}, a.action), h("td", {}, a.projection), h("td", {}, a.event_id || ""), h("td", {}, a.result))))) : h("p", { class: "muted" }, "none yet"));
    });
  }

  // -- relay -----------------------------------------------------------------------------

  function relayTable(relays) {
    return h("table", { id: "relay-table" },
      h("thead", {}, h("tr", {}, ...["destination", "checkpoint", "lag (events)", "published", "last checkpoint", "held by", "last error"].map((c) => h("th", {}, c)))),
      h("tbody", {}, relays.map((r) => h("tr", { dataset: { relay: r.name } },
        h("td", {}, r.name), h("td", { class: "num" }, r.position), h("td", { class: "num" }, r.lag_events),
        h("td", { class: "num" }, r.published), h("td", {}, when(r.updated_at) || "never"),
        h("td", {}, r.holding ? r.owner : h("span", { class: "bad" }, "nobody (not running)")),
        h("td", { class: "relay-error" }, r.last_error ? [h("span", { class: "bad" }, r.last_error), ` (${when(r.last_error_at)})`] : "none")))));
  }

  async function relay() {
    const box = h("div", {});
    main.replaceChildren(h("h1", {}, "Relay"), box,
      h("p", { class: "muted" }, "A relay's last error stays shown after it recovered, until the next one."));
    every(2, async () => {
      const page = await api("/relays");
      box.replaceChildren(h("p", {}, `log head ${page.head}`), page.relays.length ? relayTable(page.relays) : h("p", { class: "muted" }, "no relay has run on this store"));
    });
  }

  // -- routing ---------------------------------------------------------------------------

  function route() {
    generation++;
    clearTimeout(timer);
    const [path, params] = query(location.hash.slice(1) || "/");
    const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
    const page = parts[0] || "overview";
    const active = { stream: "streams", event: "streams" }[page] || page;
    for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.page === active);
    document.body.dataset.page = page;
    const views = {
      overview, streams: () => streams(params), stream: () => stream(parts[1], params),
      event: () => event(parts[1]), causation: () => causation(parts[1]), tail: () => tail(params),
      projections, relay,
    };
    (views[page] || overview)();
  }

  window.addEventListener("hashchange", route);
  route();
})();
