// The dashboard's entry: the key form, the views and the refresh every few seconds.
// What each view shows: account.js and admin.js; how the key is kept and sent: api.js.

import { loadAccount, turnPage } from "./account.js";
import { loadOverview } from "./admin.js";
import { session } from "./api.js";
import { forgetCharts } from "./charts.js";
import { $, setText, showError } from "./dom.js";
import { secondsAgo } from "./format.js";

const REFRESH_MS = 5000;

const state = { admin: false, busy: false, again: false, refreshedAt: null, timer: null };

async function refresh() {
  if (!session.key) return;
  if (state.busy) {
    state.again = true; // e.g. another account was chosen meanwhile
    return;
  }
  state.busy = true;
  try {
    const account = session.account;
    const loads = [loadOverview(openAccount), account ? loadAccount(account) : null];
    const [overview, shown] = await Promise.allSettled(loads);
    const failed = [overview, shown].filter((r) => r.status === "rejected").map((r) => r.reason);
    if (failed.some((error) => error.status === 401)) {
      forget("This key was not accepted (401 unauthorized). Enter another one.");
      return;
    }
    state.admin = overview.status === "fulfilled" && overview.value;
    const problems = failed.map((error) => error.message || String(error));
    if (!state.admin && !account && overview.status === "fulfilled") {
      problems.push("This key is not an admin key: enter the account to show.");
    }
    showError(problems.join("; "));
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
    setText("refreshed", "updated " + secondsAgo(Math.round((Date.now() - state.refreshedAt) / 1000)));
  }
}

function showViews() {
  const connected = Boolean(session.key);
  const account = session.account;
  $("connect").hidden = connected;
  $("forget").hidden = !connected;
  $("switch").hidden = !connected;
  $("account-view").hidden = !(connected && account);
  setText("account-id", account || "");
  setText("who", connected && account ? account : "");
  $("account-switch").value = account || "";
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

function openAccount(account) {
  session.account = account;
  showViews();
  refresh();
}

function forget(message) {
  session.forget();
  forgetCharts();
  state.admin = false;
  state.refreshedAt = null;
  $("admin").hidden = true;
  $("key").value = "";
  setText("refreshed", "");
  showViews();
  showError(message || "");
}

function page(step) {
  turnPage(step).catch((error) => showError(error.message));
}

function connect(event) {
  event.preventDefault(); // the form is never submitted: the key goes nowhere but here
  session.key = $("key").value.trim();
  session.account = $("account").value.trim();
  $("key").value = "";
  showError("");
  start();
}

$("key-form").addEventListener("submit", connect);
$("account-form").addEventListener("submit", (event) => {
  event.preventDefault();
  openAccount($("account-switch").value.trim());
});
$("forget").addEventListener("click", () => forget(""));
$("older").addEventListener("click", () => page(1));
$("newer").addEventListener("click", () => page(-1));
if (session.key) start();
else showViews();
