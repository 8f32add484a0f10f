/* chatload's additions to Locust's web UI. The page loads this file (harness/live/webui.py adds the
 * tags), with uPlot beside it; nothing is built and nothing comes from a CDN.
 *
 * 1. The start form speaks arrival rates: Locust's users, ramp-up and host fields are hidden (the
 *    scenario's arrival rate decides the load, chatload sizes the user pool itself) and a one-line
 *    note says so; chatload's scenario, rate multiplier, arrivals and target come first as plain
 *    fields, its other options behind a "Custom parameters" toggle.
 * 2. The Throttling tab gets live charts above its table, from ./chatload/live every second:
 *    StartChatContact offered and accepted per second, the refused arrivals stacked beneath
 *    (throttled TPS, throttled concurrency, dropped, other), and active chats against the
 *    concurrent chats quota; each stage is a band named where it starts.
 *
 * Locust's page is a React app: this script never moves or removes its elements. It marks them
 * (data-chatload attributes, styled by chatload-live.css), adds its own elements beside them, and
 * opens the "Custom parameters" panel with a click, as a person would.
 * The charts' data is also on window.chatloadChart (for tests and the curious).
 */
(function () {
  "use strict";

  const LIVE_URL = "./chatload/live";
  const POLL_MS = 1000; // while the charts are on screen
  const IDLE_POLL_MS = 5000; // otherwise (the server keeps 60 s, so nothing is missed)
  const MAX_POINTS = 3600; // the charts keep the last hour this page has seen
  const TABLE_MARK = "Share of offered"; // a column title of the Throttling table (webui.COLUMNS)
  const FIRST = ["scenario", "rateMultiplier", "arrivals", "target"]; // webui.FORM_FIRST, as the form names them
  const NOTE =
    "The load is the scenario's arrival rate (chats per second), not a number of users: " +
    "chatload sizes Locust's users itself.";
  const SERIES = ["offered", "accepted", "throttled_tps", "throttled_concurrency", "dropped", "other",
    "active_chats", "stage", "target_rate"];
  const COLORS = {
    offered: "#74a9dd", accepted: "#2e9e44",
    throttled_tps: "#f08c00", throttled_concurrency: "#d6336c", dropped: "#7048e8", other: "#868e96",
    active: "#1f6fb4", quota: "#e03131",
  };

  // ------------------------------------------------------------------ the start form

  function enhanceForms() {
    for (const form of document.querySelectorAll("form:not([data-chatload])")) {
      const users = form.querySelector('input[name="userCount"]');
      if (!users) continue;
      form.dataset.chatload = "form";
      const fields = users.closest("form > div"); // Locust's column of fields
      if (!fields) continue;
      const scenario = form.querySelector('input[name="scenario"]');
      if (scenario) splitParameters(fields, scenario);
      const note = document.createElement("p");
      note.dataset.chatload = "note";
      note.textContent = NOTE;
      fields.prepend(note);
    }
  }

  function splitParameters(fields, scenario) {
    // Locust's "Custom parameters" panel, opened once and its header hidden: its first fields
    // (FIRST) show as plain fields, and a "Custom parameters" toggle of ours shows or hides the rest.
    let params = scenario;
    while (params.parentElement && params.parentElement !== fields) params = params.parentElement;
    params.dataset.chatload = "params";
    const header = params.querySelector('[aria-expanded="false"]');
    if (header) header.click();
    let list = scenario.parentElement; // the column of fields: the first ancestor with another field
    while (list && list !== params && list.querySelectorAll("[name]").length < 2) list = list.parentElement;
    const items = list && list !== params ? [...list.children] : [];
    const last = items.filter((item) => FIRST.some((name) => item.querySelector(`[name="${name}"]`))).pop();
    if (!last || last === items[items.length - 1]) return;
    const more = document.createElement("button");
    more.type = "button";
    more.dataset.chatload = "more";
    more.setAttribute("aria-expanded", "false");
    more.textContent = "Custom parameters";
    more.addEventListener("click", () => {
      const open = more.getAttribute("aria-expanded") !== "true";
      more.setAttribute("aria-expanded", String(open));
      params.classList.toggle("chatload-open", open);
    });
    last.after(more);
  }

  // ------------------------------------------------------------------ the data

  const store = { startedAt: undefined, points: new Map(), quota: null, polls: 0 };

  function merge(payload) {
    if (payload.started_at !== store.startedAt) {
      store.startedAt = payload.started_at; // a new run: its own charts
      store.points.clear();
    }
    const c = payload.chart;
    c.t.forEach((t, i) => {
      if (store.points.has(t)) return; // a second's figures never change once in the chart
      const point = {};
      for (const key of SERIES) point[key] = c[key][i];
      store.points.set(t, point);
    });
    const times = [...store.points.keys()].sort((a, b) => a - b);
    for (const t of times.slice(0, Math.max(0, times.length - MAX_POINTS))) store.points.delete(t);
    store.quota = c.quota_concurrent_chats;
    store.polls += 1;
  }

  function columns() {
    const t = [...store.points.keys()].sort((a, b) => a - b);
    const data = { t, quota_concurrent_chats: store.quota, polls: store.polls };
    for (const key of SERIES) data[key] = t.map((s) => store.points.get(s)[key]);
    return data;
  }

  // ------------------------------------------------------------------ the charts

  let section = null; // our charts, kept while the tab is closed
  let plots = null; // {rates, refused, active, color}
  let data = null;

  function throttlingTable() {
    for (const table of document.querySelectorAll("table")) {
      for (const th of table.querySelectorAll("th")) {
        if (th.textContent.trim() === TABLE_MARK) return table;
      }
    }
    return null;
  }

  function buildSection() {
    section = document.createElement("section");
    section.className = "chatload-charts";
    section.dataset.chatload = "charts";
    section.innerHTML =
      '<p class="chatload-empty">The charts start with the first complete second of a run.</p>' +
      '<h3>StartChatContact per second: offered and accepted</h3><div data-plot="rates"></div>' +
      '<h3>Refused per second (stacked): throttled TPS, throttled concurrency, dropped, other</h3>' +
      '<div data-plot="refused"></div>' +
      '<h3>Active chats and the concurrent chats quota</h3><div data-plot="active"></div>';
  }

  function placeCharts() {
    const table = throttlingTable();
    if (!table) {
      if (section && section.isConnected) section.remove();
      return;
    }
    if (!section) buildSection();
    const anchor = table.closest(".MuiTableContainer-root, .MuiPaper-root") || table;
    if (section.nextElementSibling !== anchor) {
      anchor.before(section);
      resize();
      render();
      pollSoon();
    }
  }

  function stageBands(isFirst) {
    // Stages as alternately shaded bands, named where they start (on the first chart).
    function runs(u) {
      const t = u.data[0];
      const out = [];
      for (let i = 0, start = 0; i <= t.length; i++) {
        if (i === t.length || data.stage[i] !== data.stage[start]) {
          if (start < t.length) out.push({ stage: data.stage[start], from: t[start], to: t[i - 1] + 1 });
          start = i;
        }
      }
      return out;
    }
    function x(u, t) {
      return Math.min(u.bbox.left + u.bbox.width, Math.max(u.bbox.left, u.valToPos(t, "x", true)));
    }
    return {
      hooks: {
        drawClear: (u) => {
          if (!data) return;
          runs(u).filter((run) => run.stage != null).forEach((run, n) => {
            if (n % 2) return;
            u.ctx.fillStyle = "rgba(128, 128, 128, 0.12)";
            u.ctx.fillRect(x(u, run.from), u.bbox.top, x(u, run.to) - x(u, run.from), u.bbox.height);
          });
        },
        draw: (u) => {
          if (!data || !isFirst) return;
          const ctx = u.ctx;
          ctx.save();
          ctx.fillStyle = plots.color;
          ctx.font = `600 ${Math.round(12 * devicePixelRatio)}px sans-serif`;
          ctx.textBaseline = "top";
          for (const run of runs(u)) {
            if (run.stage == null) continue;
            const left = x(u, run.from);
            if (x(u, run.to) - left > 20 * devicePixelRatio) {
              ctx.fillText(run.stage, left + 4 * devicePixelRatio, u.bbox.top + 4 * devicePixelRatio);
            }
          }
          ctx.restore();
        },
      },
    };
  }

  function stacked(d) {
    // Cumulative sums for a stacked area chart; the legend shows each series' own value.
    const keys = ["throttled_tps", "throttled_concurrency", "dropped", "other"];
    const sum = d.t.map(() => 0);
    return keys.map((k) => d[k].map((v, i) => (sum[i] += v || 0)));
  }

  function clock(t) {
    return t == null ? "--" : new Date(t * 1000).toLocaleTimeString([], { hour12: false });
  }

  function options(color, width, height, series, first, extra) {
    const axis = { stroke: color, grid: { stroke: "rgba(128, 128, 128, 0.2)" }, ticks: { stroke: "rgba(128, 128, 128, 0.4)" } };
    const time = Object.assign({}, axis, {
      incrs: [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600], // whole seconds
      values: (u, splits) => splits.map(clock),
      space: 60,
    });
    return Object.assign({
      width, height,
      cursor: { sync: { key: "chatload" } },
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, Math.ceil((max || 0) * 1.15))] } },
      axes: [time, Object.assign({ size: 50 }, axis)],
      series: [{ label: "time", value: (u, t) => clock(t) }].concat(series),
      plugins: [stageBands(first)],
    }, extra || {});
  }

  function createPlots() {
    const color = getComputedStyle(section).color;
    const width = Math.max(300, section.clientWidth);
    const rawValue = (key) => (u, v, si, i) => (i == null || data[key][i] == null ? "--" : data[key][i]);
    plots = { color };
    plots.rates = new uPlot(options(color, width, 220, [
      { label: "offered /s", stroke: COLORS.offered, width: 4, points: { show: false } },
      { label: "accepted /s", stroke: COLORS.accepted, width: 2, points: { show: false } },
    ], true), [[], [], []], section.querySelector('[data-plot="rates"]'));
    const refusedSeries = ["throttled_tps", "throttled_concurrency", "dropped", "other"].map((key) => ({
      label: key.replace("_", " ") + " /s", stroke: COLORS[key], fill: COLORS[key] + "99", width: 1,
      value: rawValue(key), points: { show: false },
    }));
    plots.refused = new uPlot(options(color, width, 170, refusedSeries, false, {
      bands: [{ series: [2, 1] }, { series: [3, 2] }, { series: [4, 3] }],
    }), [[], [], [], [], []], section.querySelector('[data-plot="refused"]'));
    plots.active = new uPlot(options(color, width, 170, [
      { label: "active chats", stroke: COLORS.active, width: 2, points: { show: false } },
      { label: "concurrent chats quota", stroke: COLORS.quota, width: 1, dash: [6, 4], points: { show: false } },
    ], false), [[], [], []], section.querySelector('[data-plot="active"]'));
  }

  function destroyPlots() {
    if (!plots) return;
    for (const key of ["rates", "refused", "active"]) plots[key].destroy();
    plots = null;
  }

  function resize() {
    if (!plots || !section.isConnected) return;
    const width = Math.max(300, section.clientWidth);
    for (const key of ["rates", "refused", "active"]) {
      plots[key].setSize({ width, height: plots[key].height });
    }
  }

  function render() {
    if (!data) return;
    if (!section || !section.isConnected) return;
    section.classList.toggle("chatload-waiting", data.t.length === 0);
    if (plots && plots.color !== getComputedStyle(section).color) destroyPlots(); // light/dark theme
    if (!plots) createPlots();
    const t = data.t;
    const quota = t.map(() => data.quota_concurrent_chats);
    plots.rates.setData([t, data.offered, data.accepted]);
    plots.refused.setData([t].concat(stacked(data)));
    plots.active.setData([t, data.active_chats, quota]);
    for (const key of ["rates", "refused", "active"]) {
      const u = plots[key];
      if (t.length && u.cursor.left < 0) u.setLegend({ idx: t.length - 1 }); // the latest values
    }
    section.dataset.points = String(t.length);
    section.dataset.lastT = t.length ? String(t[t.length - 1]) : "";
  }

  let timer = null;
  let polling = false;
  function pollSoon() {
    if (polling) return; // its answer is on its way
    clearTimeout(timer);
    timer = setTimeout(poll, 0);
  }

  async function poll() {
    polling = true;
    try {
      const response = await fetch(LIVE_URL, { cache: "no-store" });
      if (response.ok) {
        merge(await response.json());
        data = columns();
        window.chatloadChart = data;
        render();
      }
    } catch (error) {
      // the web UI is gone or restarting: try again later
    } finally {
      polling = false;
      timer = setTimeout(poll, section && section.isConnected ? POLL_MS : IDLE_POLL_MS);
    }
  }

  // ------------------------------------------------------------------ wiring

  let scheduled = false;
  function sync() {
    scheduled = false;
    enhanceForms();
    placeCharts();
  }
  const observer = new MutationObserver((mutations) => {
    if (scheduled) return;
    if (section && mutations.every((m) => section.contains(m.target))) return; // our own drawing
    scheduled = true;
    requestAnimationFrame(sync);
  });
  observer.observe(document.body, { childList: true, subtree: true });
  window.addEventListener("resize", resize);
  sync();
  poll();
})();
