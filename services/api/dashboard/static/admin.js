// The operator view (an admin key): GET /v1/admin/overview.

import { ApiRefusal, api } from "./api.js";
import { $, fillTable, longText, node, row, setText, timeCell } from "./dom.js";
import { count } from "./format.js";

function accountCell(accountId, open) {
  const button = node("button", accountId, "link");
  button.type = "button";
  button.addEventListener("click", () => open(accountId));
  const cell = node("td");
  cell.append(button);
  return cell;
}

const where = (item) => node("td", "p" + item.partition + " @" + item.offset, "mono nowrap");

function drawFigures(o) {
  setText("ov-accounts", count(o.accounts.total));
  setText("ov-exhausted", count(o.accounts.exhausted));
  setText("ov-today-credits", count(o.today.credits));
  setText("ov-today-requests", count(o.today.requests));
  setText("ov-pricing-lag", count(o.lag.pricing.behind));
  setText("ov-projector-lag", count(o.lag.projector.behind));
  const rejected = o.rejected_usage;
  const bound = rejected.exact || rejected.count === null ? "" : "≤ ";
  setText("ov-rejected-usage", bound + count(rejected.count));
  setText("ov-rejected-entries", count(o.counters.rejected || 0));
  setText("ov-conflicts", count(o.counters.conflicts || 0));
  $("ov-lag-detail").textContent = o.lag.detail || "";
  $("ov-lag-detail").hidden = !o.lag.detail;
}

function drawTables(o, open) {
  fillTable("top-accounts", o.top_accounts, (a) => row(
    accountCell(a.account_id, open), node("td", count(a.credits), "num"),
    node("td", count(a.requests), "num"), node("td", count(a.tokens), "num"),
    node("td", count(a.balance), "num"),
    node("td", a.status, a.status === "active" ? "positive" : "negative")));
  fillTable("rejected-usage", o.rejected_usage.latest, (r) => row(
    timeCell(r.rejected_at), node("td", r.error, "mono"), longText(r.detail, "text"),
    longText(r.payload, "text mono")));
  fillTable("rejected", o.rejected_entries, (r) => row(
    timeCell(r.rejected_at), where(r), node("td", r.reason, "mono"), longText(r.error, "text"),
    longText(r.payload, "text mono")));
  fillTable("conflicts", o.conflicts, (c) => row(
    timeCell(c.detected_at), accountCell(c.account_id, open), node("td", c.entry_id, "mono"),
    where(c)));
}

// Whether the key is an admin's: only then is the operator view shown. `open` shows an
// account chosen from a table.
export async function loadOverview(open) {
  const answer = await api("v1/admin/overview");
  if (answer.status === 403) {
    $("admin").hidden = true;
    return false;
  }
  if (!answer.ok) throw new ApiRefusal(answer, "the overview");
  drawFigures(answer.body);
  drawTables(answer.body, open);
  $("admin").hidden = false;
  return true;
}
