// The page is built from data with text nodes only: every value from the API (account ids,
// references, models, payloads) is user data and goes through textContent, never markup.

import { ago, exactTime } from "./format.js";

const SHOWN_CHARS = 160;

export const $ = (id) => document.getElementById(id);

export function node(tag, text, className) {
  const element = document.createElement(tag);
  if (text !== undefined && text !== null) element.textContent = String(text);
  if (className) element.className = className;
  return element;
}

export function row(...cells) {
  const tr = node("tr");
  tr.append(...cells);
  return tr;
}

// Long text (payloads, errors) is cut for the table; the whole of it is the cell's title.
export function longText(text, className) {
  const value = String(text === null || text === undefined ? "" : text);
  const shown = value.length > SHOWN_CHARS ? value.slice(0, SHOWN_CHARS) + "…" : value;
  const cell = node("td", shown, className);
  cell.title = value;
  return cell;
}

export function timeCell(iso) {
  const cell = node("td", ago(iso));
  cell.title = exactTime(iso);
  return cell;
}

// Fills a table's body; its card's ".empty" note shows (with `emptyText`) when no rows.
export function fillTable(id, items, makeRow, emptyText) {
  const table = $(id);
  const empty = table.parentElement.querySelector(".empty");
  table.tBodies[0].replaceChildren(...items.map(makeRow));
  table.hidden = items.length === 0;
  if (empty) {
    if (emptyText) empty.textContent = emptyText;
    empty.hidden = items.length !== 0;
  }
}

export function setText(id, text) {
  $(id).textContent = text;
}

export function showError(text) {
  const box = $("error");
  box.textContent = text || "";
  box.hidden = !text;
}
