/**
 * The middleware around the AI SDK's mock model, against the real API, pricing, projector,
 * Kafka and PostgreSQL: what the mock reports is what the account is debited; a refused
 * hold is a typed error before the model runs; an aborted stream releases its hold; an
 * event the ledger rejects is set aside.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { generateText, simulateReadableStream, streamText, wrapLanguageModel } from "ai";
import { MockLanguageModelV2 } from "ai/test";

import {
  InsufficientCreditsError,
  type LedgerMiddleware,
  ledgerMiddleware,
  UsageShipper,
} from "../src/index.js";
import { FileSpool } from "../src/file-spool.js";
import {
  API_KEY,
  API_URL,
  account,
  balanceWhen,
  client,
  GATEWAY_ID,
  generated,
  NO_API,
  price,
  report,
  sleep,
  spoolDir,
  streamParts,
  type Usage,
} from "./support.js";

const MODELS = { "mimo-pro": "mimo-v2-pro", "mimo-omni": "mimo-v2-omni" };

const middleware = (): LedgerMiddleware =>
  ledgerMiddleware({ gatewayId: GATEWAY_ID, url: API_URL, apiKey: API_KEY, models: MODELS,
                     spoolDir: spoolDir() });

test("generateText: the account is debited what the mock reported", { skip: NO_API }, async () => {
  const acct = account("generate");
  const ledger = middleware();
  const calls: Usage[] = [
    { input: 1_200, output: 300, cached: 200 },
    { input: 50, output: 7, cached: 0 },
  ];
  const mock = new MockLanguageModelV2({
    modelId: "mimo-pro",
    doGenerate: calls.map((usage, n) => generated(`answer ${n}`, usage)),
  });
  const model = wrapLanguageModel({ model: mock, middleware: ledger });
  for (const n of calls.keys()) {
    const result = await generateText({
      model, prompt: `question ${n}`, maxOutputTokens: 500, maxRetries: 0,
      providerOptions: { ledger: { accountId: acct } },
    });
    assert.equal(result.text, `answer ${n}`);
  }
  await ledger.flush();
  const expected = (await Promise.all(calls.map((u) => price("mimo-v2-pro", u)))).reduce(
    (a, b) => a + b,
  );
  const shown = await balanceWhen(acct, (b) => b.entries >= 3 && b.held === 0);
  assert.equal(shown.spent, expected);
  assert.equal((await client().listHolds(acct, "settled")).length, 2);
  report("generate", acct, "mimo-v2-pro", calls);
  await ledger.close();
});

test("streamText: settled from the stream's final usage", { skip: NO_API }, async () => {
  const acct = account("stream");
  const ledger = middleware();
  const usage: Usage = { input: 640, output: 128, cached: 64 };
  const mock = new MockLanguageModelV2({
    modelId: "mimo-omni",
    doStream: async () => ({
      stream: simulateReadableStream({ chunks: streamParts(["Hello", ", ", "world"], usage) }),
    }),
  });
  const result = streamText({
    model: wrapLanguageModel({ model: mock, middleware: ledger }),
    prompt: "say hello", providerOptions: { ledger: { accountId: acct } },
  });
  assert.equal(await result.text, "Hello, world");
  await ledger.flush();
  const shown = await balanceWhen(acct, (b) => b.entries >= 2 && b.held === 0);
  assert.equal(shown.spent, await price("mimo-v2-omni", usage));
  report("stream", acct, "mimo-v2-omni", [usage]);
  await ledger.close();
});

test("no credits: InsufficientCreditsError before the model is called", { skip: NO_API }, async () => {
  const acct = account("empty");
  const ledger = middleware();
  const mock = new MockLanguageModelV2({
    modelId: "mimo-omni",
    doGenerate: generated("never", { input: 1, output: 1, cached: 0 }),
  });
  const model = wrapLanguageModel({ model: mock, middleware: ledger });
  await assert.rejects(
    generateText({ model, prompt: "hello", maxRetries: 0,
                   providerOptions: { ledger: { accountId: acct } } }),
    (error: unknown) => {
      assert.ok(error instanceof InsufficientCreditsError, String(error));
      assert.equal(error.code, "insufficient_credits");
      assert.equal(error.available, 0);
      assert.ok(error.requested > 0);
      return true;
    },
  );
  assert.equal(mock.doGenerateCalls.length, 0, "the model was called");
  // streamText reports it the same way, as the error of its stream
  const errors: unknown[] = [];
  const result = streamText({
    model, prompt: "hello", providerOptions: { ledger: { accountId: acct } },
    onError: ({ error }) => void errors.push(error),
  });
  await result.consumeStream();
  assert.ok(errors[0] instanceof InsufficientCreditsError, String(errors[0]));
  assert.equal(mock.doStreamCalls.length, 0, "the model was called");
  report("refused", acct, "mimo-v2-omni", []);
  await ledger.close();
});

test("an aborted stream releases its hold and bills nothing", { skip: NO_API }, async () => {
  const acct = account("abort");
  const ledger = middleware();
  const mock = new MockLanguageModelV2({
    modelId: "mimo-omni",
    // A model that sends two words and then nothing more until the call is aborted, when
    // its stream fails as a provider's fetch does.
    doStream: async ({ abortSignal }) => ({
      stream: new ReadableStream({
        start(controller) {
          controller.enqueue({ type: "stream-start", warnings: [] });
          controller.enqueue({ type: "text-start", id: "t" });
          controller.enqueue({ type: "text-delta", id: "t", delta: "one " });
          controller.enqueue({ type: "text-delta", id: "t", delta: "two " });
          abortSignal?.addEventListener("abort", () => controller.error(abortSignal.reason));
        },
      }),
    }),
  });
  const abort = new AbortController();
  const result = streamText({
    model: wrapLanguageModel({ model: mock, middleware: ledger }),
    prompt: "count", abortSignal: abort.signal, onError: () => undefined,
    providerOptions: { ledger: { accountId: acct } },
  });
  for await (const text of result.textStream) {
    if (text === "two ") abort.abort();
  }
  const deadline = Date.now() + 30_000;
  let released = await client().listHolds(acct, "released");
  while (released.length === 0 && Date.now() < deadline) {
    await sleep(100);
    released = await client().listHolds(acct, "released");
  }
  assert.equal(released.length, 1, "the hold was not released");
  const shown = await balanceWhen(acct, (b) => b.held === 0);
  assert.equal(shown.spent, 0);
  assert.equal((await ledger.spool().then((s) => s.size())), 0);
  report("abort", acct, "mimo-v2-omni", []);
  await ledger.close();
});

test("an event the ledger rejects is set aside, not sent again", { skip: NO_API }, async () => {
  const dir = spoolDir();
  const spool = await FileSpool.open(dir);
  // more cached tokens than input tokens: the ledger rejects it as invalid_event
  await spool.append({
    type: "usage.recorded", schema_version: 1, event_id: globalThis.crypto.randomUUID(),
    account_id: account("generate"), model: "mimo-v2-omni", input_tokens: 1,
    cached_input_tokens: 2, output_tokens: 1, occurred_at: new Date().toISOString(),
    gateway_id: GATEWAY_ID,
  });
  const shipper = new UsageShipper(client(), spool);
  await shipper.flush(30_000);
  const aside = readdirSync(join(dir, "rejected"));
  assert.equal(aside.length, 1);
  const kept = JSON.parse(readFileSync(join(dir, "rejected", aside[0] ?? ""), "utf8"));
  assert.equal(kept.rejection.error, "invalid_event");
  shipper.close();
});
