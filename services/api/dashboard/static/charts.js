// The burn charts: credits per UTC day for 30 days and per UTC hour for 48 hours, drawn
// with chart.js (chart.umd.js, loaded before this module, defines window.Chart).

import { ApiAnswer, accountPath, api } from "./api.js";
import { $ } from "./dom.js";
import { approx, count, dayLabel, hourLabel } from "./format.js";

const DAYS = 30;
const HOURS = 48;
const DAY_MS = 86400000;
const HOUR_MS = 3600000;
const BAR_COLOUR = "#3456d1";

const charts = {};

export function lastDays(now) {
  const today = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
  return Array.from({ length: DAYS }, (_, i) => new Date(today - (DAYS - 1 - i) * DAY_MS));
}

function lastHours(now) {
  const hour = Math.floor(now.getTime() / HOUR_MS) * HOUR_MS;
  return Array.from({ length: HOURS }, (_, i) => new Date(hour - (HOURS - 1 - i) * HOUR_MS));
}

// The keys of GET .../usage rows: "2026-11-27" by day, "2026-11-27T19:00:00Z" by hour.
export const dayKey = (date) => date.toISOString().slice(0, 10);
const hourKey = (date) => date.toISOString().slice(0, 13) + ":00:00Z";

// Buckets with no usage are absent from the answer: they are drawn as zero.
function series(rows, keys) {
  const credits = new Map(rows.map((r) => [r.key, approx(r.credits)]));
  return keys.map((key) => credits.get(key) || 0);
}

function draw(id, labels, values) {
  const existing = charts[id];
  if (existing) {
    existing.data.labels = labels;
    existing.data.datasets[0].data = values;
    existing.update("none");
    return;
  }
  charts[id] = new window.Chart($(id), {
    type: "bar",
    data: { labels, datasets: [{ label: "credits", data: values, backgroundColor: BAR_COLOUR }] },
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

function note(id, text) {
  const element = $(id + "-note");
  element.textContent = text || "";
  element.hidden = !text;
  $(id).parentElement.hidden = Boolean(text);
}

function show(id, answer, buckets, key, label) {
  if (answer.accountMissing) answer = new ApiAnswer(200, { rows: [] });
  if (!answer.ok) {
    const why = answer.status + (answer.code ? " " + answer.code : "");
    note(id, "Not available (the API answered " + why + ").");
    return;
  }
  note(id, null);
  draw(id, buckets.map((b) => label.format(b)), series(answer.body.rows, buckets.map(key)));
}

export async function loadBurn(account) {
  const now = new Date();
  const days = lastDays(now);
  const hours = lastHours(now);
  const [daily, hourly] = await Promise.all([
    api(accountPath(account, "usage"), { group_by: "day", from: dayKey(days[0]) }),
    api(accountPath(account, "usage"), { group_by: "hour", from: hourKey(hours[0]) }),
  ]);
  show("burn-daily", daily, days, dayKey, dayLabel);
  show("burn-hourly", hourly, hours, hourKey, hourLabel);
}

export function forgetCharts() {
  for (const [id, chart] of Object.entries(charts)) {
    chart.destroy();
    delete charts[id];
  }
}
