/**
 * Shared code of the tests that run against the real API (tests/e2e/test_typescript_kit.py
 * starts the pipeline and sets the environment): the client, waiting for the projector,
 * the mock model's answers, and the report the Python test checks the balances against.
 */
import { appendFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import type { LanguageModelV2StreamPart, LanguageModelV2Usage } from "@ai-sdk/provider";

import { type Balance, LedgerClient } from "../src/index.js";

export const API_URL = process.env["LEDGER_API_URL"];
export const API_KEY = process.env["LEDGER_API_KEY"] ?? "";
export const ADMIN_KEY = process.env["LEDGER_ADMIN_KEY"] ?? "";
/** Without a running API (LEDGER_API_URL unset) the tests against it are skipped. */
export const NO_API = API_URL ? false : "LEDGER_API_URL is not set: no API to test against";
export const GATEWAY_ID = "gw-ts-test";
const WAIT_MS = 90_000; // against a hang only; nothing asserts on durations

export const client = () => new LedgerClient({ url: API_URL ?? "", apiKey: API_KEY });
export const admin = () => new LedgerClient({ url: API_URL ?? "", apiKey: ADMIN_KEY });

/** The account the Python test funded for `name` (LEDGER_TEST_ACCOUNT_<NAME>). */
export function account(name: string): string {
  const id = process.env[`LEDGER_TEST_ACCOUNT_${name.toUpperCase()}`];
  if (!id) throw new Error(`LEDGER_TEST_ACCOUNT_${name.toUpperCase()} is not set`);
  return id;
}

export const spoolDir = () => mkdtempSync(join(tmpdir(), "ledger-spool-"));

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The balance once `ready` holds for it (the projector applies entries asynchronously). */
export async function balanceWhen(
  account: string,
  ready: (balance: Balance) => boolean,
): Promise<Balance> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const balance = await client().balance(account).catch(() => undefined);
    if (balance && ready(balance)) return balance;
    if (Date.now() > deadline) throw new Error(`${account}: ${JSON.stringify(balance)}`);
    await sleep(200);
  }
}

/** The credits the price book charges for `usage` (POST /v1/quote, the pricing rule itself). */
export async function price(model: string, usage: Usage): Promise<number> {
  const quote = await client().quote({
    model,
    input_tokens: usage.input,
    output_tokens: usage.output,
    cached_input_tokens: usage.cached,
  });
  return quote.credits;
}

export interface Usage {
  input: number;
  output: number;
  cached: number;
}

export function sdkUsage(usage: Usage): LanguageModelV2Usage {
  return {
    inputTokens: usage.input,
    outputTokens: usage.output,
    totalTokens: usage.input + usage.output,
    cachedInputTokens: usage.cached,
  };
}

export function generated(text: string, usage: Usage) {
  return {
    content: [{ type: "text" as const, text }],
    finishReason: "stop" as const,
    usage: sdkUsage(usage),
    warnings: [],
  };
}

export function streamParts(words: string[], usage: Usage): LanguageModelV2StreamPart[] {
  return [
    { type: "stream-start", warnings: [] },
    { type: "text-start", id: "t" },
    ...words.map((delta) => ({ type: "text-delta" as const, id: "t", delta })),
    { type: "text-end", id: "t" },
    { type: "finish", finishReason: "stop", usage: sdkUsage(usage) },
  ];
}

/**
 * One line per scenario for the Python test: the account and the usage of every call the
 * mock served, which it prices itself and compares with the account's `spent`.
 */
export function report(scenario: string, account: string, model: string, served: Usage[]): void {
  const path = process.env["LEDGER_TEST_REPORT"];
  if (!path) return;
  appendFileSync(path, `${JSON.stringify({ scenario, account, model, served })}\n`);
}
