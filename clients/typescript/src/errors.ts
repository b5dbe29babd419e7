/**
 * The ledger's error codes (docs/contracts.md, HTTP API and Pricing) as types, and the
 * errors the kit throws. An app catches `InsufficientCreditsError` (or the base
 * `LedgerError`) around generateText/streamText: it is thrown before the model is called.
 */

/**
 * Every `error` code of an HTTP error body `{"error", "detail"}` that docs/contracts.md
 * names (test/contract.test.ts holds the two together).
 */
export type ApiErrorCode =
  | "bad_request"
  | "invalid_json"
  | "validation_error"
  | "invalid_idempotency_key"
  | "missing_idempotency_key"
  | "invalid_cursor"
  | "invalid_period"
  | "invalid_webhook_url"
  | "payload_too_large"
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "method_not_allowed"
  | "account_not_found"
  | "key_not_found"
  | "hold_not_found"
  | "hold_settled"
  | "idempotency_conflict"
  | "insufficient_credits"
  | "budget_exceeded"
  | "balance_limit"
  | "unknown_model"
  | "exceeds_context"
  | "database_unavailable"
  | "kafka_unavailable"
  | "projection_unavailable"
  | "ledger_unavailable";

/** The codes of `rejected[].error` in a POST /v1/usage answer (pricing's codes). */
export type UsageRejectionCode =
  | "invalid_json"
  | "invalid_event"
  | "unknown_model"
  | "exceeds_context";

/** The error body of every non-2xx answer; some codes carry more fields. */
export interface ErrorBody {
  error: ApiErrorCode;
  detail: string;
  [extra: string]: unknown;
}

/** The base of every error the kit throws. */
export class LedgerError extends Error {
  override name = "LedgerError";
}

/** The API answered an error (`status`, `code`, `detail`, the whole `body`). */
export class LedgerApiError extends LedgerError {
  override name = "LedgerApiError";
  constructor(
    readonly status: number,
    readonly code: ApiErrorCode,
    readonly detail: string,
    readonly body: ErrorBody,
  ) {
    super(`${status} ${code}: ${detail}`);
  }
}

/** 402 `insufficient_credits`: the account's available credits do not cover the hold. */
export class InsufficientCreditsError extends LedgerApiError {
  override name = "InsufficientCreditsError";
  readonly available: number;
  readonly requested: number;
  constructor(body: ErrorBody) {
    super(402, "insufficient_credits", body.detail, body);
    this.available = Number(body.available);
    this.requested = Number(body.requested);
  }
}

/** 402 `budget_exceeded`: the account covers the hold but the budget it counts against does not. */
export class BudgetExceededError extends LedgerApiError {
  override name = "BudgetExceededError";
  readonly budget: string;
  readonly remaining: number;
  readonly requested: number;
  constructor(body: ErrorBody) {
    super(402, "budget_exceeded", body.detail, body);
    this.budget = String(body.budget);
    this.remaining = Number(body.remaining);
    this.requested = Number(body.requested);
  }
}

/** The ledger did not decide a hold in time (unreachable, or 503 throughout): not served. */
export class LedgerUnavailableError extends LedgerError {
  override name = "LedgerUnavailableError";
}

/** The hold's key already named a hold that is no longer active: nothing was admitted. */
export class HoldNotAdmittedError extends LedgerError {
  override name = "HoldNotAdmittedError";
  constructor(
    readonly holdId: string | undefined,
    readonly status: string | undefined,
  ) {
    super(`the ledger answered a hold that is not active (status ${status ?? "missing"})`);
  }
}

/** The spool holds as many unsent usage events as it may: new calls are refused, not served unbilled. */
export class SpoolFullError extends LedgerError {
  override name = "SpoolFullError";
}

/** The error for a non-2xx answer: the typed 402s, else a LedgerApiError. */
export function apiError(status: number, body: unknown): LedgerApiError {
  const shaped: ErrorBody =
    typeof body === "object" && body !== null && "error" in body
      ? (body as ErrorBody)
      : { error: "bad_request", detail: `HTTP ${status}: ${JSON.stringify(body)}` };
  if (status === 402 && shaped.error === "insufficient_credits") {
    return new InsufficientCreditsError(shaped);
  }
  if (status === 402 && shaped.error === "budget_exceeded") {
    return new BudgetExceededError(shaped);
  }
  return new LedgerApiError(status, shaped.error, String(shaped.detail), shaped);
}
