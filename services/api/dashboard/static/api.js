// The JSON routes of docs/contracts.md, called with the key the user entered. The key
// lives in this tab's sessionStorage only and travels in the Authorization header: never
// in a URL, a cookie or the page.

import { exactIntegers } from "./format.js";

const STORED_KEY = "ledger.dashboard.key";
const STORED_ACCOUNT = "ledger.dashboard.account";

export const session = {
  get key() { return sessionStorage.getItem(STORED_KEY); },
  set key(value) { remember(STORED_KEY, value); },
  get account() { return sessionStorage.getItem(STORED_ACCOUNT); },
  set account(value) { remember(STORED_ACCOUNT, value); },
  forget() {
    sessionStorage.removeItem(STORED_KEY);
    sessionStorage.removeItem(STORED_ACCOUNT);
  },
};

function remember(name, value) {
  if (value) sessionStorage.setItem(name, value);
  else sessionStorage.removeItem(name);
}

export class ApiAnswer {
  constructor(status, body) {
    this.status = status;
    this.body = body;
  }
  get ok() { return this.status >= 200 && this.status < 300; }
  get code() { return this.body && this.body.error; }
  get accountMissing() { return this.status === 404 && this.code === "account_not_found"; }
}

export class ApiRefusal extends Error {
  constructor(answer, what) {
    const detail = answer.body && answer.body.detail ? ": " + answer.body.detail : "";
    super(what + " answered " + answer.status + (answer.code ? " " + answer.code : "") + detail);
    this.status = answer.status;
  }
}

export async function api(path, params) {
  const query = params ? "?" + new URLSearchParams(params).toString() : "";
  const response = await fetch(path + query, {
    headers: { Authorization: "Bearer " + session.key, Accept: "application/json" },
    cache: "no-store",
    credentials: "omit",
    referrerPolicy: "no-referrer",
  });
  let body = null;
  try {
    body = JSON.parse(await response.text(), exactIntegers);
  } catch (error) {
    body = null; // not JSON: the status tells what happened
  }
  return new ApiAnswer(response.status, body);
}

export function accountPath(account, route) {
  return "v1/accounts/" + encodeURIComponent(account) + "/" + route;
}
