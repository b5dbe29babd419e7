// The account view: balance, burn charts, usage by model, active holds and the entries,
// paged by the API's cursor.

import { ApiRefusal, accountPath, api } from "./api.js";
import { loadBurn, lastDays, dayKey } from "./charts.js";
import { $, fillTable, longText, node, row, setText, timeCell } from "./dom.js";
import { ago, approx, count, exactTime, share, signed } from "./format.js";

const PAGE_SIZE = 25;

// cursors[i] opens page i of the entries (null: the latest page).
const paging = { account: null, cursors: [null], page: 0, next: null };

async function loadBalance(account) {
  const answer = await api(accountPath(account, "balance"));
  if (!answer.ok && !answer.accountMissing) throw new ApiRefusal(answer, "the balance");
  const missing = $("account-missing");
  missing.hidden = !answer.accountMissing;
  missing.textContent = answer.accountMissing ? "No entries for this account yet." : "";
  const b = answer.ok ? answer.body : {};
  setText("balance", count(b.balance));
  // An API without holds answers no held or available: nothing is held then.
  setText("held", count(b.held));
  setText("available", count(b.available !== undefined ? b.available : b.balance));
  setText("purchased", count(b.purchased));
  setText("spent", count(b.spent));
  setText("entry-count", count(b.entries));
  setText("updated", b.updated_at ? ago(b.updated_at) : "—");
  $("updated").title = b.updated_at ? exactTime(b.updated_at) : "";
  const status = $("status");
  status.textContent = b.status || "";
  status.className = "badge " + (b.status === "active" ? "active" : "exhausted");
  status.hidden = !b.status;
}

async function loadModels(account) {
  const from = dayKey(lastDays(new Date())[0]);
  const answer = await api(accountPath(account, "usage"), { group_by: "model", from });
  if (!answer.ok && !answer.accountMissing) throw new ApiRefusal(answer, "usage by model");
  const rows = answer.ok ? answer.body.rows.slice() : [];
  rows.sort((a, b) => approx(b.credits) - approx(a.credits) || a.key.localeCompare(b.key));
  const total = rows.reduce((sum, r) => sum + approx(r.credits), 0);
  fillTable("models", rows, (r) => row(
    node("td", r.key, "mono"), node("td", count(r.requests), "num"),
    node("td", count(r.tokens), "num"), node("td", count(r.credits), "num"),
    node("td", share(approx(r.credits), total), "num")));
}

async function loadHolds(account) {
  const answer = await api(accountPath(account, "holds"), { status: "active", limit: "100" });
  let empty = "No active holds.";
  if (answer.status === 404 && !answer.accountMissing) {
    empty = "Holds are not available on this API.";
  } else if (!answer.ok && !answer.accountMissing) {
    empty = "Holds not available (the API answered " + answer.status + ").";
  }
  const holds = answer.ok ? answer.body.holds || [] : [];
  fillTable("holds", holds, (h) => row(
    node("td", h.hold_id, "mono"), node("td", count(h.credits), "num"),
    timeCell(h.expires_at), timeCell(h.created_at)), empty);
}

function entryRow(entry) {
  const credits = node("td", signed(entry.credits), "num");
  credits.classList.add(entry.credits < 0 ? "negative" : entry.credits > 0 ? "positive" : "muted");
  const id = node("td", String(entry.entry_id).slice(0, 8), "mono");
  id.title = entry.entry_id;
  const tokens = entry.billable_tokens === null ? "" : count(entry.billable_tokens);
  return row(timeCell(entry.occurred_at), node("td", entry.type.replace("credits.", "")),
    credits, node("td", entry.model, "mono"), node("td", tokens, "num"),
    longText(entry.reason, "text"), longText(entry.reference, "text"), id);
}

export async function loadEntries() {
  const account = paging.account;
  const params = { limit: String(PAGE_SIZE) };
  const cursor = paging.cursors[paging.page];
  if (cursor) params.cursor = cursor;
  const answer = await api(accountPath(account, "entries"), params);
  if (!answer.ok && !answer.accountMissing) throw new ApiRefusal(answer, "the entries");
  if (account !== paging.account) return; // another account was chosen meanwhile
  const body = answer.ok ? answer.body : { entries: [], next_cursor: null };
  paging.next = body.next_cursor;
  fillTable("entries", body.entries, entryRow);
  $("newer").disabled = paging.page === 0;
  $("older").disabled = !paging.next;
  setText("page-number", "page " + (paging.page + 1));
}

// step 1: the next older page (by the last answer's cursor); -1: back to the newer one.
export function turnPage(step) {
  if (step > 0 && paging.next) {
    paging.cursors = paging.cursors.slice(0, paging.page + 1).concat([paging.next]);
    paging.page += 1;
  } else if (step < 0 && paging.page > 0) {
    paging.page -= 1;
  } else {
    return Promise.resolve();
  }
  return loadEntries();
}

export async function loadAccount(account) {
  if (account !== paging.account) Object.assign(paging, { account, cursors: [null], page: 0 });
  await Promise.all([loadBalance(account), loadBurn(account), loadModels(account),
    loadHolds(account), loadEntries()]);
}
