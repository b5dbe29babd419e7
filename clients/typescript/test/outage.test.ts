/**
 * POST /v1/usage failing for a while, then healing: calls are still served (holds work),
 * their usage waits in the file spool, survives a restart of the kit, and is billed once
 * when the ledger answers again. A relay in front of the real API answers 503 for
 * /v1/usage during the outage; every other one of those it first passes on to the API, as
 * when the ledger took the events but its answer was lost, so the kit's retries are
 * duplicates the ledger must recognise.
 */
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";

import { generateText, wrapLanguageModel } from "ai";
import { MockLanguageModelV2 } from "ai/test";

import { ledgerMiddleware } from "../src/index.js";
import {
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

const OUTAGE_MS = Number(process.env["LEDGER_TEST_OUTAGE_MS"] ?? 20_000);

async function body(request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** A relay to the API whose /v1/usage answers 503 until `heal()`; `usagePosts` counts them. */
async function relay(upstream: string) {
  let broken = true;
  let usagePosts = 0;
  const server = createServer(async (request: IncomingMessage, response: ServerResponse) => {
    const payload = await body(request);
    const usage = request.method === "POST" && request.url === "/v1/usage";
    if (usage && broken) usagePosts += 1;
    const forward = !(usage && broken && usagePosts % 2 === 0);
    let status = 503;
    let text = JSON.stringify({ error: "kafka_unavailable", detail: "relay: outage" });
    if (forward) {
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(request.headers)) {
        if (typeof value === "string" && name !== "host" && name !== "content-length") {
          headers[name] = value;
        }
      }
      const answer = await fetch(upstream + (request.url ?? "/"), {
        method: request.method ?? "GET",
        headers,
        body: payload.length ? payload.toString() : null,
      });
      text = await answer.text();
      // during the outage, the ledger's answer to /v1/usage is lost on the way back
      if (!(usage && broken)) status = answer.status;
    }
    response.writeHead(status, { "Content-Type": "application/json" }).end(text);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    heal: () => void (broken = false),
    posts: () => usagePosts,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

test("usage spooled through an outage of /v1/usage is billed once after", { skip: NO_API }, async () => {
  const acct = account("outage");
  const proxy = await relay(API_URL ?? "");
  const healAt = Date.now() + OUTAGE_MS;
  const dir = spoolDir();
  const options = { gatewayId: GATEWAY_ID, url: proxy.url, apiKey: API_KEY, spoolDir: dir,
                    models: { "mimo-omni": "mimo-v2-omni" } };
  const calls: Usage[] = [
    { input: 300, output: 40, cached: 0 },
    { input: 500, output: 60, cached: 100 },
    { input: 700, output: 80, cached: 0 },
  ];
  const mock = new MockLanguageModelV2({
    modelId: "mimo-omni",
    doGenerate: calls.map((usage, n) => generated(`served ${n}`, usage)),
  });
  // The first kit serves two calls and stops (a restart) with their usage still spooled.
  const first = ledgerMiddleware(options);
  for (const n of [0, 1]) {
    const result = await generateText({
      model: wrapLanguageModel({ model: mock, middleware: first }), prompt: `q${n}`,
      maxRetries: 0, providerOptions: { ledger: { accountId: acct } },
    });
    assert.equal(result.text, `served ${n}`);
  }
  await first.close();
  assert.equal(await (await first.spool()).size(), 2);
  // The next one resumes them from the same directory and serves a third call.
  const second = ledgerMiddleware(options);
  const result = await generateText({
    model: wrapLanguageModel({ model: mock, middleware: second }), prompt: "q2",
    maxRetries: 0, providerOptions: { ledger: { accountId: acct } },
  });
  assert.equal(result.text, "served 2");
  await assert.rejects(second.flush(1_000), /still spooled/);
  assert.equal(await (await second.spool()).size(), 3, "usage left the spool during the outage");
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, healAt - Date.now())));
  assert.ok(proxy.posts() >= 2, `the kit retried ${proxy.posts()} times`);
  proxy.heal();
  await second.flush(60_000);
  const expected = (await Promise.all(calls.map((u) => price("mimo-v2-omni", u)))).reduce(
    (a, b) => a + b,
  );
  const shown = await balanceWhen(acct, (b) => b.entries >= 4 && b.held === 0);
  assert.equal(shown.spent, expected, "billed other than once");
  report("outage", acct, "mimo-v2-omni", calls);
  await second.close();
  await proxy.close();
});
