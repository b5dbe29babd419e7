/**
 * A typed client of the ledger's HTTP API (docs/contracts.md, HTTP API; docs/openapi.json).
 * It speaks the routes a gateway uses (holds, usage, quotes, balances) and the admin grant.
 * The `*_FIELDS` records name every field of each request and answer type: the compiler
 * holds each record to its type's keys, and test/contract.test.ts holds the records to
 * docs/openapi.json, so the client and the API cannot drift apart unnoticed.
 */
import { apiError, type ErrorBody, type UsageRejectionCode } from "./errors.js";

/** `usage.recorded` (docs/contracts.md, Events); `event_id` is the gateway's idempotency key. */
export interface UsageRecorded {
  type: "usage.recorded";
  schema_version: 1;
  event_id: string;
  account_id: string;
  model: string;
  input_tokens: number;
  cached_input_tokens: number;
  output_tokens: number;
  occurred_at: string;
  gateway_id: string;
  request_id?: string;
  hold_id?: string;
}

/** A hold priced like a quote, with output = max_output_tokens. */
export interface HoldByModel {
  model: string;
  input_tokens: number;
  max_output_tokens: number;
  cached_input_tokens?: number;
  ttl_seconds?: number;
}

/** A hold of a fixed number of credits. */
export interface HoldByCredits {
  credits: number;
  ttl_seconds?: number;
}

export type HoldRequest = HoldByModel | HoldByCredits;

/** The 201 (placed) or 200 (the same key again: the hold as it is now, with `status`). */
export interface Hold {
  hold_id: string;
  account_id: string;
  credits: number;
  expires_at: string;
  available: number;
  status?: HoldStatus;
}

export type HoldStatus = "active" | "settled" | "released" | "expired";

export interface HoldRow {
  hold_id: string;
  credits: number;
  status: HoldStatus;
  settled_credits: number;
  expires_at: string;
  created_at: string;
}

export interface Released {
  hold_id: string;
  status: "released";
}

export interface RejectedItem {
  index: number;
  error: UsageRejectionCode;
  detail: string;
}

export interface UsageAccepted {
  accepted: number;
  rejected: RejectedItem[];
}

export interface Balance {
  account_id: string;
  balance: number;
  purchased: number;
  adjusted: number;
  spent: number;
  held: number;
  available: number;
  entries: number;
  status: "active" | "exhausted";
  updated_at: string;
}

export interface QuoteRequest {
  model: string;
  input_tokens: number;
  output_tokens: number;
  cached_input_tokens?: number;
}

export interface Quote {
  credits: number;
  multiplier: string;
  tier: string;
  price_version: string;
}

export interface GrantRequest {
  credits: number;
  reason: "purchase" | "grant" | "refund";
  reference: string;
}

export interface GrantAccepted {
  entry_id: string;
  status: "accepted";
}

type Fields<T> = { readonly [K in keyof Required<T>]: true };

// Each record must name exactly its type's keys (the compiler checks), and each name must
// be a property of the named OpenAPI schema (test/contract.test.ts checks).
export const HOLD_BY_MODEL_FIELDS: Fields<HoldByModel> = {
  model: true, input_tokens: true, max_output_tokens: true, cached_input_tokens: true,
  ttl_seconds: true,
};
export const HOLD_BY_CREDITS_FIELDS: Fields<HoldByCredits> = { credits: true, ttl_seconds: true };
export const BALANCE_FIELDS: Fields<Balance> = {
  account_id: true, balance: true, purchased: true, adjusted: true, spent: true, held: true,
  available: true, entries: true, status: true, updated_at: true,
};
export const USAGE_ACCEPTED_FIELDS: Fields<UsageAccepted> = { accepted: true, rejected: true };
export const REJECTED_ITEM_FIELDS: Fields<RejectedItem> = { index: true, error: true, detail: true };
export const QUOTE_REQUEST_FIELDS: Fields<QuoteRequest> = {
  model: true, input_tokens: true, output_tokens: true, cached_input_tokens: true,
};
export const QUOTE_FIELDS: Fields<Quote> = {
  credits: true, multiplier: true, tier: true, price_version: true,
};
export const GRANT_REQUEST_FIELDS: Fields<GrantRequest> = {
  credits: true, reason: true, reference: true,
};
export const GRANT_ACCEPTED_FIELDS: Fields<GrantAccepted> = { entry_id: true, status: true };
export const USAGE_RECORDED_FIELDS: Fields<UsageRecorded> = {
  type: true, schema_version: true, event_id: true, account_id: true, model: true,
  input_tokens: true, cached_input_tokens: true, output_tokens: true, occurred_at: true,
  gateway_id: true, request_id: true, hold_id: true,
};

/** Every route the client calls, as docs/openapi.json names it. */
export const ROUTES = {
  placeHold: ["post", "/v1/accounts/{account_id}/holds"],
  releaseHold: ["delete", "/v1/accounts/{account_id}/holds/{hold_id}"],
  listHolds: ["get", "/v1/accounts/{account_id}/holds"],
  postUsage: ["post", "/v1/usage"],
  balance: ["get", "/v1/accounts/{account_id}/balance"],
  quote: ["post", "/v1/quote"],
  grant: ["post", "/v1/accounts/{account_id}/credits"],
} as const;

/** An answer the client returns as it came: the status decides (placeHold's 201 vs 200). */
export interface Answer<T> {
  status: number;
  body: T;
}

export interface LedgerClientOptions {
  /** The API's base URL, e.g. http://127.0.0.1:8000 (`LEDGER_API_URL`). */
  url: string;
  /** A bearer token: a `gateway` key for the middleware (`LEDGER_API_KEY`). */
  apiKey: string;
  /** Per request, in milliseconds (default 10 000). */
  timeoutMs?: number;
  /** A fetch to use instead of the global one. */
  fetch?: typeof fetch;
}

const path = (account: string) => `/v1/accounts/${encodeURIComponent(account)}`;

export class LedgerClient {
  readonly url: string;
  private readonly apiKey: string;
  private readonly timeoutMs: number;
  private readonly fetch: typeof fetch;

  constructor(options: LedgerClientOptions) {
    this.url = options.url.replace(/\/+$/, "");
    this.apiKey = options.apiKey;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.fetch = options.fetch ?? globalThis.fetch;
  }

  /**
   * POST /v1/accounts/{id}/holds. 201: placed; 200: the same key again, with `status`.
   * Throws InsufficientCreditsError / BudgetExceededError on 402, LedgerApiError otherwise.
   */
  placeHold(account: string, idempotencyKey: string, body: HoldRequest): Promise<Answer<Hold>> {
    return this.send("POST", `${path(account)}/holds`, body, { "Idempotency-Key": idempotencyKey });
  }

  /** DELETE /v1/accounts/{id}/holds/{hold_id}: 200 released (again 200); 409 `hold_settled`. */
  async releaseHold(account: string, holdId: string): Promise<Released> {
    const url = `${path(account)}/holds/${encodeURIComponent(holdId)}`;
    return (await this.send<Released>("DELETE", url)).body;
  }

  async listHolds(account: string, status?: HoldStatus): Promise<HoldRow[]> {
    const query = status ? `?status=${status}` : "";
    const answer = await this.send<{ holds: HoldRow[] }>("GET", `${path(account)}/holds${query}`);
    return answer.body.holds;
  }

  /** POST /v1/usage: 202 once Kafka holds the accepted events; `rejected` lists the others. */
  async postUsage(events: UsageRecorded[]): Promise<UsageAccepted> {
    return (await this.send<UsageAccepted>("POST", "/v1/usage", { events })).body;
  }

  async balance(account: string): Promise<Balance> {
    return (await this.send<Balance>("GET", `${path(account)}/balance`)).body;
  }

  async quote(body: QuoteRequest): Promise<Quote> {
    return (await this.send<Quote>("POST", "/v1/quote", body)).body;
  }

  /** POST /v1/accounts/{id}/credits (an `admin` key). */
  async grant(account: string, idempotencyKey: string, body: GrantRequest): Promise<GrantAccepted> {
    const headers = { "Idempotency-Key": idempotencyKey };
    return (await this.send<GrantAccepted>("POST", `${path(account)}/credits`, body, headers)).body;
  }

  private async send<T>(
    method: string,
    route: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<Answer<T>> {
    const response = await this.fetch(this.url + route, {
      method,
      headers: {
        Authorization: `Bearer ${this.apiKey}`,
        Accept: "application/json",
        ...(body === undefined ? {} : { "Content-Type": "application/json" }),
        ...headers,
      },
      body: body === undefined ? null : JSON.stringify(body),
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = { error: "bad_request", detail: `HTTP ${response.status}: ${text.slice(0, 200)}` };
    }
    if (!response.ok) throw apiError(response.status, parsed as ErrorBody);
    return { status: response.status, body: parsed as T };
  }
}
