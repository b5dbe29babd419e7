// The dashboard's script: reads the JSON routes of docs/contracts.md with the key the user
// entered and draws what they answer.
//
// Safety rules this file keeps (the page's Content-Security-Policy backs them up):
// - the key lives in this tab's sessionStorage only and travels in the Authorization
//   header; it is never put in a URL, a cookie or the page;
// - every value from the API is shown through textContent (never innerHTML): account ids,
//   references, models and payloads are user data.
"use strict";

(function () {
  const REFRESH_MS = 5000;
  const PAGE_SIZE = 25;
  const DAYS = 30;
  const HOURS = 48;
  const DAY_MS = 86400000;
  const HOUR_MS = 3600000;
  const STORED_KEY = "ledger.dashboard.key";
  const STORED_ACCOUNT = "ledger.dashboard.account";

  const numbers = new Intl.NumberFormat();
  const percent = new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 1 });
  const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  const dayLabel = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", timeZone: "UTC" });
  const hourLabel = new Intl.DateTimeFormat(undefined, {
    hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: "UTC",
  });
  const fullTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });

  const state = {
    key: null,
    account: null,
    admin: false,
    cursors: [null], // cursors[i] opens page i of the entries; null is the newest page
    page: 0,
    nextCursor: null,
    charts: {},
    busy: false,
    again: false,
    timer: null,
    refreshedAt: null,
  };

  const $ = (id) => document.getElementById(id);

  // --- formatting -----------------------------------------------------------------------

  // Credits are integers up to 2^63 - 1; past 2^53 a JavaScript number is not exact, so
  // such a number is read as a BigInt (below) and formatted as one.
  function count(value) {
    return typeof value === "number" || typeof value === "bigint" ? numbers.format(value) : "—";
  }

  function signed(value) {
    return value > 0 ? "+" + numbers.format(value) : numbers.format(value);
  }

  // For arithmetic (sums, shares, chart bars), where the last digits do not show.
  const approx = (value) => Number(value);

  function exactIntegers(key, value, context) {
    if (typeof value === "number" && !Number.isSafeInteger(value) && context && context.source
        && /^-?\d+$/.test(context.source)) {
      return BigInt(context.source);
    }
    return value;
  }

  function ago(iso) {
    const seconds = Math.round((Date.parse(iso) - Date.now()) / 1000);
    const units = [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400],
      ["hour", 3600], ["minute", 60], ["second", 1]];
    for (const [unit, size] of units) {
      if (Math.abs(seconds) >= size || unit === "second") {
        return relative.format(Math.round(seconds / size), unit);
      }
    }
    return "";
  }

  // --- building the page from data (text nodes only) ------------------------------------

  function node(tag, text, className) {
    const element = document.createElement(tag);
    if (text !== undefined && text !== null) element.textContent = String(text);
    if (className) element.className = className;
    return element;
  }

  const SHOWN_CHARS = 160;

  // Long text (payloads, errors) is cut for the table; the whole of it is the cell's title.
  function longText(text, className) {
    const value = String(text === null || text === undefined ? "" : text);
    const cell = node("td", value.length > SHOWN_CHARS ? value.slice(0, SHOWN_CHARS) + "…" : value, className);
    cell.title = value;
    return cell;
  }

  function timeCell(iso) {
    const cell = node("td", ago(iso));
    cell.title = fullTime.format(new Date(iso));
    return cell;
  }

  function fillTable(id, rows, makeRow, emptyText) {
    const table = $(id);
    const empty = table.parentElement.querySelector(".empty");
    table.tBodies[0].replaceChildren(...rows.map(makeRow));
    table.hidden = rows.length === 0;
    if (empty) {
      if (emptyText) empty.textContent = emptyText;
      empty.hidden = rows.length !== 0;
    }
  }

  function setText(id, text) {
    $(id).textContent = text;
  }

  function showError(text) {
    const box = $("error");
    box.textContent = text || "";
    box.hidden = !text;
  }

  // --- the API --------------------------------------------------------------------------

  class ApiAnswer {
    constructor(status, body) {
      this.status = status;
      this.body = body;
    }
    get ok() { return this.status >= 200 && this.status < 300; }
    get code() { return this.body && this.body.error; }
  }

  async function api(path, params) {
    const query = params ? "?" + new URLSearchParams(params).toString() : "";
    const response = await fetch(path + query, {
      headers: { Authorization: "Bearer " + state.key, Accept: "application/json" },
      cache: "no-store",
      credentials: "omit",
      referrerPolicy: "no-referrer",
    });
    let body = null;
    try {
      body = JSON.parse(await response.text(), exactIntegers);
    } catch (error) {
      body = null;
    }
    return new ApiAnswer(response.status, body);
  }

  function accountPath(route) {
    return "v1/accounts/" + encodeURIComponent(state.account) + "/" + route;
  }

  function problem(answer, what) {
    const detail = answer.body && answer.body.detail ? ": " + answer.body.detail : "";
    return what + " answered " + answer.status + (answer.code ? " " + answer.code : "") + detail;
  }

  // --- charts ---------------------------------------------------------------------------

  function burnChart(id, labels, values) {
    const existing = state.charts[id];
    if (existing) {
      existing.data.labels = labels;
      existing.data.datasets[0].data = values;
      existing.update("none");
      return;
    }
    state.charts[id] = new window.Chart($(id), {
      type: "bar",
      data: { labels, datasets: [{ label: "credits", data: values, backgroundColor: "#3456d1" }] },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        plugins: {
          legend: { display: false },
          tooltip: { callbacks: { label: (item) => count(item.parsed.y) + " credits" } },
        },
        scales: {
          x: { grid: { display: false }, ticks: { maxRotation: 0, autoSkip: true } },
          y: { beginAtZero: true, ticks: { precision: 0, callback: (value) => count(value) } },
        },
      },
    });
  }

  function chartNote(id, text) {
    const note = $(id + "-note");
    note.textContent = text || "";
    note.hidden = !text;
    $(id).parentElement.hidden = Boolean(text);
  }

  // Buckets with no usage are absent from the answer: they are drawn as zero.
  function series(rows, keys) {
    const credits = new Map(rows.map((row) => [row.key, approx(row.credits)]));
    return keys.map((key) => credits.get(key) || 0);
  }

  function lastDays(now) {
    const today = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
    return Array.from({ length: DAYS }, (_, i) => new Date(today - (DAYS - 1 - i) * DAY_MS));
  }

  function lastHours(now) {
    const hour = Math.floor(now.getTime() / HOUR_MS) * HOUR_MS;
    return Array.from({ length: HOURS }, (_, i) => new Date(hour - (HOURS - 1 - i) * HOUR_MS));
  }

  const dayKey = (date) => date.toISOString().slice(0, 10);
  const hourKey = (date) => date.toISOString().slice(0, 13) + ":00:00Z";

  async function loadBurn() {
    const now = new Date();
    const days = lastDays(now);
    const hours = lastHours(now);
    const [daily, hourly] = await Promise.all([
      api(accountPath("usage"), { group_by: "day", from: dayKey(days[0]) }),
      api(accountPath("usage"), { group_by: "hour", from: hourKey(hours[0]) }),
    ]);
    drawBurn("burn-daily", daily, days, dayKey, dayLabel);
    drawBurn("burn-hourly", hourly, hours, hourKey, hourLabel);
  }

  function drawBurn(id, answer, buckets, key, label) {
    if (answer.status === 404 && answer.code === "account_not_found") {
      answer = new ApiAnswer(200, { rows: [] });
    }
    if (!answer.ok) {
      chartNote(id, "Not available (" + problem(answer, "the API") + ").");
      return;
    }
    chartNote(id, null);
    burnChart(id, buckets.map((b) => label.format(b)), series(answer.body.rows, buckets.map(key)));
  }

  // --- the account view -----------------------------------------------------------------

  async function loadBalance() {
    const answer = await api(accountPath("balance"));
    const missing = answer.status === 404 && answer.code === "account_not_found";
    $("account-missing").hidden = !missing;
    if (missing) {
      $("account-missing").textContent = "No entries for this account yet.";
    } else if (!answer.ok) {
      throw new Error(problem(answer, "the balance"));
    }
    const b = missing ? {} : answer.body;
    setText("balance", count(b.balance));
    // Older APIs answer no holds figures: then nothing is held.
    setText("held", count(b.held));
    setText("available", count(b.available !== undefined ? b.available : b.balance));
    setText("purchased", count(b.purchased));
    setText("spent", count(b.spent));
    setText("entry-count", count(b.entries));
    setText("updated", b.updated_at ? ago(b.updated_at) : "—");
    $("updated").title = b.updated_at ? fullTime.format(new Date(b.updated_at)) : "";
    const status = $("status");
    status.textContent = b.status || "";
    status.className = "badge " + (b.status === "active" ? "active" : b.status ? "exhausted" : "");
    status.hidden = !b.status;
  }

  async function loadModels() {
    const from = dayKey(lastDays(new Date())[0]);
    const answer = await api(accountPath("usage"), { group_by: "model", from });
    const rows = answer.ok ? answer.body.rows.slice() : [];
    if (!answer.ok && answer.code !== "account_not_found") {
      throw new Error(problem(answer, "usage by model"));
    }
    rows.sort((a, b) => approx(b.credits) - approx(a.credits) || a.key.localeCompare(b.key));
    const total = rows.reduce((sum, row) => sum + approx(row.credits), 0);
    fillTable("models", rows, (row) => {
      const tr = node("tr");
      tr.append(node("td", row.key, "mono"), node("td", count(row.requests), "num"),
        node("td", count(row.tokens), "num"), node("td", count(row.credits), "num"),
        node("td", total > 0 ? percent.format(approx(row.credits) / total) : "—", "num"));
      return tr;
    });
  }

  async function loadHolds() {
    const answer = await api(accountPath("holds"), { status: "active", limit: "100" });
    let rows = [];
    let empty = "No active holds.";
    if (answer.ok) {
      rows = answer.body.holds || [];
    } else if (answer.status === 404 && answer.code !== "account_not_found") {
      empty = "Holds are not available on this API.";
    } else if (answer.code !== "account_not_found") {
      empty = "Holds not available (" + problem(answer, "the API") + ").";
    }
    fillTable("holds", rows, (hold) => {
      const tr = node("tr");
      tr.append(node("td", hold.hold_id, "mono"), node("td", count(hold.credits), "num"),
        timeCell(hold.expires_at), timeCell(hold.created_at));
      return tr;
    }, empty);
  }

  function entryRow(entry) {
    const tr = node("tr");
    const credits = node("td", signed(entry.credits), "num");
    credits.classList.add(entry.credits < 0 ? "negative" : entry.credits > 0 ? "positive" : "muted");
    const id = node("td", String(entry.entry_id).slice(0, 8), "mono");
    id.title = entry.entry_id;
    tr.append(timeCell(entry.occurred_at), node("td", entry.type.replace("credits.", "")), credits,
      node("td", entry.model, "mono"), node("td", entry.billable_tokens === null ? "" : count(entry.billable_tokens), "num"),
      node("td", entry.reason, "text"), node("td", entry.reference, "text"), id);
    return tr;
  }

  async function loadEntries() {
    const params = { limit: String(PAGE_SIZE) };
    const cursor = state.cursors[state.page];
    if (cursor) params.cursor = cursor;
    const answer = await api(accountPath("entries"), params);
    if (!answer.ok && answer.code !== "account_not_found") {
      throw new Error(problem(answer, "the entries"));
    }
    const body = answer.ok ? answer.body : { entries: [], next_cursor: null };
    state.nextCursor = body.next_cursor;
    fillTable("entries", body.entries, entryRow);
    $("newer").disabled = state.page === 0;
    $("older").disabled = !state.nextCursor;
    setText("page-number", "page " + (state.page + 1));
  }

  async function loadAccount() {
    await Promise.all([loadBalance(), loadBurn(), loadModels(), loadHolds(), loadEntries()]);
  }

  // --- the admin view -------------------------------------------------------------------

  function accountButton(accountId) {
    const button = node("button", accountId, "link");
    button.type = "button";
    button.addEventListener("click", () => openAccount(accountId));
    return button;
  }

  function drawOverview(o) {
    setText("ov-accounts", count(o.accounts.total));
    setText("ov-exhausted", count(o.accounts.exhausted));
    setText("ov-today-credits", count(o.today.credits));
    setText("ov-today-requests", count(o.today.requests));
    setText("ov-pricing-lag", count(o.lag.pricing.behind));
    setText("ov-projector-lag", count(o.lag.projector.behind));
    const rejected = o.rejected_usage;
    setText("ov-rejected-usage", (rejected.exact || rejected.count === null ? "" : "≤ ") + count(rejected.count));
    setText("ov-rejected-entries", count(o.counters.rejected || 0));
    setText("ov-conflicts", count(o.counters.conflicts || 0));
    $("ov-lag-detail").textContent = o.lag.detail || "";
    $("ov-lag-detail").hidden = !o.lag.detail;
    fillTable("top-accounts", o.top_accounts, (a) => {
      const tr = node("tr");
      const who = node("td");
      who.append(accountButton(a.account_id));
      tr.append(who, node("td", count(a.credits), "num"), node("td", count(a.requests), "num"),
        node("td", count(a.tokens), "num"), node("td", count(a.balance), "num"),
        node("td", a.status, a.status === "active" ? "positive" : "negative"));
      return tr;
    });
    fillTable("rejected-usage", rejected.latest, (r) => {
      const tr = node("tr");
      tr.append(timeCell(r.rejected_at), node("td", r.error, "mono"), longText(r.detail, "text"),
        longText(r.payload, "text mono"));
      return tr;
    });
    fillTable("rejected", o.rejected_entries, (r) => {
      const tr = node("tr");
      tr.append(timeCell(r.rejected_at), node("td", "p" + r.partition + " @" + r.offset, "mono nowrap"),
        longText(r.error, "text"), longText(r.payload, "text mono"));
      return tr;
    });
    fillTable("conflicts", o.conflicts, (c) => {
      const tr = node("tr");
      const who = node("td");
      who.append(accountButton(c.account_id));
      tr.append(timeCell(c.detected_at), who, node("td", c.entry_id, "mono"),
        node("td", "p" + c.partition + " @" + c.offset, "mono nowrap"));
      return tr;
    });
  }

  async function loadOverview() {
    const answer = await api("v1/admin/overview");
    if (answer.status === 403) {
      state.admin = false;
    } else if (!answer.ok) {
      throw Object.assign(new Error(problem(answer, "the overview")), { status: answer.status });
    } else {
      state.admin = true;
      drawOverview(answer.body);
    }
    $("admin").hidden = !state.admin;
  }

  // --- refreshing -----------------------------------------------------------------------

  async function refresh() {
    if (!state.key) return;
    if (state.busy) {
      state.again = true; // e.g. another account was chosen meanwhile
      return;
    }
    state.busy = true;
    try {
      const loads = [loadOverview()];
      if (state.account) loads.push(loadAccount());
      const results = await Promise.allSettled(loads);
      const failed = results.filter((r) => r.status === "rejected").map((r) => r.reason);
      if (failed.some((e) => e && /answered 401/.test(e.message))) {
        forget("This key was not accepted (401 unauthorized). Enter another one.");
        return;
      }
      showError(failed.map((e) => (e && e.message) || String(e)).join("; "));
      if (!state.admin && !state.account) {
        showError("This key is not an admin key: enter the account to show.");
      }
      state.refreshedAt = Date.now();
      tick();
    } finally {
      state.busy = false;
      if (state.again) {
        state.again = false;
        refresh();
      }
    }
  }

  function tick() {
    if (state.refreshedAt) {
      const seconds = Math.round((Date.now() - state.refreshedAt) / 1000);
      setText("refreshed", "updated " + relative.format(-seconds, "second"));
    }
  }

  function showViews() {
    const connected = Boolean(state.key);
    $("connect").hidden = connected;
    $("forget").hidden = !connected;
    $("switch").hidden = !connected;
    $("account-view").hidden = !(connected && state.account);
    if (state.account) setText("account-id", state.account);
    setText("who", connected && state.account ? state.account : "");
    $("account-switch").value = state.account || "";
  }

  function start() {
    showViews();
    refresh();
    if (!state.timer) {
      state.timer = window.setInterval(() => {
        if (!document.hidden) refresh();
      }, REFRESH_MS);
      window.setInterval(tick, 1000);
    }
  }

  function chooseAccount(accountId) {
    state.account = accountId || null;
    state.cursors = [null];
    state.page = 0;
    if (state.account) sessionStorage.setItem(STORED_ACCOUNT, state.account);
    else sessionStorage.removeItem(STORED_ACCOUNT);
  }

  function openAccount(accountId) {
    chooseAccount(accountId);
    showViews();
    refresh();
  }

  function forget(message) {
    sessionStorage.removeItem(STORED_KEY);
    sessionStorage.removeItem(STORED_ACCOUNT);
    state.key = null;
    state.account = null;
    state.admin = false;
    for (const chart of Object.values(state.charts)) chart.destroy();
    state.charts = {};
    $("admin").hidden = true;
    $("key").value = "";
    setText("refreshed", "");
    showViews();
    showError(message || "");
  }

  function page(step) {
    if (step > 0 && state.nextCursor) {
      state.cursors = state.cursors.slice(0, state.page + 1).concat([state.nextCursor]);
      state.page += 1;
    } else if (step < 0 && state.page > 0) {
      state.page -= 1;
    }
    loadEntries().catch((error) => showError(error.message));
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      state.key = $("key").value.trim();
      $("key").value = "";
      sessionStorage.setItem(STORED_KEY, state.key);
      showError("");
      chooseAccount($("account").value.trim());
      start();
    });
    $("account-form").addEventListener("submit", (event) => {
      event.preventDefault();
      openAccount($("account-switch").value.trim());
    });
    $("forget").addEventListener("click", () => forget(""));
    $("older").addEventListener("click", () => page(1));
    $("newer").addEventListener("click", () => page(-1));
    state.key = sessionStorage.getItem(STORED_KEY);
    state.account = sessionStorage.getItem(STORED_ACCOUNT);
    if (state.key) start();
    else showViews();
  });
})();
