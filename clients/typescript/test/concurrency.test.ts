/**
 * 200 calls at once on a balance that covers 50 holds: exactly 50 are served, the others
 * are refused with InsufficientCreditsError before the model runs, and the account is
 * never spent past its balance. The mock holds every admitted call until all 200 are
 * decided, so no settled call frees credits for a later one, and it reports the hold's
 * worst case, so the 50 spend the whole balance and not a credit more.
 */
import assert from "node:assert/strict";
import { test } from "node:test";

import type { LanguageModelV2CallOptions } from "@ai-sdk/provider";
import { generateText, wrapLanguageModel } from "ai";
import { MockLanguageModelV2 } from "ai/test";

import { estimateInputTokens, InsufficientCreditsError, ledgerMiddleware } from "../src/index.js";
import {
  ADMIN_KEY,
  admin,
  API_KEY,
  API_URL,
  account,
  balanceWhen,
  GATEWAY_ID,
  generated,
  NO_API,
  price,
  report,
  spoolDir,
  type Usage,
} from "./support.js";

const CALLS = 200;
const COVERED = 50;
const PROMPT = "What is the capital of France? Answer in one word.";
const MAX_OUTPUT = 256;

test("200 concurrent calls on a balance covering 50: 50 served", { skip: NO_API || !ADMIN_KEY }, async () => {
  const acct = account("concurrent");
  // the hold the middleware will ask for each call: the SDK sends the prompt as one user text
  const params = { prompt: [{ role: "user", content: [{ type: "text", text: PROMPT }] }] };
  const input = estimateInputTokens(params as LanguageModelV2CallOptions);
  const worst: Usage = { input, output: MAX_OUTPUT, cached: 0 };
  const holdCredits = await price("mimo-v2-omni", worst);
  await admin().grant(acct, globalThis.crypto.randomUUID(), {
    credits: holdCredits * COVERED, reason: "purchase", reference: "ts-concurrency",
  });
  await balanceWhen(acct, (b) => b.purchased === holdCredits * COVERED);

  let admitted = 0;
  let refused = 0;
  let failed = 0; // any other error: still decided, so the admitted calls are not kept waiting
  let decideAll: () => void = () => undefined;
  const allDecided = new Promise<void>((resolve) => (decideAll = resolve));
  const decided = () => admitted + refused + failed === CALLS && decideAll();
  const mock = new MockLanguageModelV2({
    modelId: "mimo-omni",
    doGenerate: async () => {
      admitted += 1;
      decided();
      await allDecided;
      return generated("Paris", worst);
    },
  });
  const ledger = ledgerMiddleware({
    gatewayId: GATEWAY_ID, url: API_URL, apiKey: API_KEY, spoolDir: spoolDir(),
    models: { "mimo-omni": "mimo-v2-omni" }, admissionTimeoutMs: 90_000,
  });
  const model = wrapLanguageModel({ model: mock, middleware: ledger });
  const outcomes = await Promise.allSettled(
    Array.from({ length: CALLS }, () =>
      generateText({
        model, prompt: PROMPT, maxOutputTokens: MAX_OUTPUT, maxRetries: 0,
        providerOptions: { ledger: { accountId: acct } },
      }).catch((error: unknown) => {
        if (error instanceof InsufficientCreditsError) refused += 1;
        else failed += 1;
        decided();
        throw error;
      }),
    ),
  );
  const served = outcomes.filter((o) => o.status === "fulfilled").length;
  const others = outcomes.filter(
    (o) => o.status === "rejected" && !(o.reason instanceof InsufficientCreditsError),
  );
  assert.deepEqual(others.map((o) => String((o as PromiseRejectedResult).reason)), []);
  assert.equal(served, COVERED);
  assert.equal(refused, CALLS - COVERED);
  await ledger.flush();
  const shown = await balanceWhen(acct, (b) => b.entries >= 1 + COVERED && b.held === 0);
  assert.equal(shown.spent, holdCredits * COVERED);
  assert.ok(shown.balance >= 0 && shown.spent <= shown.purchased);
  report("concurrent", acct, "mimo-v2-omni", Array.from({ length: COVERED }, () => worst));
  await ledger.close();
});
