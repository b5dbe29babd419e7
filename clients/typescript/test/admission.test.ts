/**
 * The middleware's admission rules, with the ledger's answers scripted (a fetch that
 * answers what each case needs): only 201, or 200 with `status` active, admits; a 503 is
 * asked again with the same key; a full spool refuses before any hold; a failing model
 * releases its hold. The tests against the real API are in ledger.test.ts.
 */
import assert from "node:assert/strict";
import { test } from "node:test";

import { generateText, wrapLanguageModel } from "ai";
import { MockLanguageModelV2 } from "ai/test";

import {
  HoldNotAdmittedError,
  LedgerClient,
  ledgerMiddleware,
  MemorySpool,
  SpoolFullError,
} from "../src/index.js";
import { generated } from "./support.js";

interface Seen {
  method: string;
  url: string;
  key: string | null;
}

/** A client whose fetch answers `answers` in turn (the last one again after that). */
function scripted(answers: [number, object][]) {
  const seen: Seen[] = [];
  const fetch = async (url: string | URL | Request, init?: RequestInit) => {
    const headers = new Headers(init?.headers);
    seen.push({ method: init?.method ?? "GET", url: String(url), key: headers.get("Idempotency-Key") });
    const [status, body] = answers[Math.min(seen.length - 1, answers.length - 1)] ?? [500, {}];
    return new Response(JSON.stringify(body), { status });
  };
  return { seen, client: new LedgerClient({ url: "http://ledger.test", apiKey: "k", fetch }) };
}

const hold = (status?: string) => ({
  hold_id: "h-1", account_id: "a", credits: 10, expires_at: "2026-12-06T00:10:00Z",
  available: 90, ...(status ? { status } : {}),
});

async function call(client: LedgerClient, spool = new MemorySpool(), fail = false) {
  const mock = new MockLanguageModelV2({
    doGenerate: async () => {
      if (fail) throw new Error("provider down");
      return generated("ok", { input: 3, output: 2, cached: 0 });
    },
  });
  const middleware = ledgerMiddleware({ gatewayId: "gw-t", client, spool, maxSpooled: 1 });
  const model = wrapLanguageModel({ model: mock, middleware });
  const outcome = generateText({
    model, prompt: "hi", maxRetries: 0, providerOptions: { ledger: { accountId: "a" } },
  });
  return { mock, outcome, spool, middleware };
}

test("a 503 is asked again with the same key until the ledger decides", async () => {
  const { seen, client } = scripted([
    [503, { error: "database_unavailable", detail: "busy" }],
    [503, { error: "database_unavailable", detail: "busy" }],
    [201, hold()],
  ]);
  const { outcome, spool } = await call(client);
  assert.equal((await outcome).text, "ok");
  const keys = seen.filter((s) => s.url.endsWith("/holds")).map((s) => s.key);
  assert.equal(keys.length, 3);
  assert.equal(new Set(keys).size, 1);
  assert.match(keys[0] ?? "", /^gw-t:[0-9a-f-]{36}$/);
  const [event] = await spool.pending(10);
  assert.equal(`gw-t:${event?.event_id}`, keys[0], "the event_id is the hold's key's UUID");
  assert.equal(event?.hold_id, "h-1");
});

for (const status of ["released", "settled", "expired", undefined]) {
  test(`a 200 for a hold ${status ?? "without status"} admits nothing`, async () => {
    const { client } = scripted([[200, hold(status)]]);
    const { mock, outcome } = await call(client);
    await assert.rejects(outcome, HoldNotAdmittedError);
    assert.equal(mock.doGenerateCalls.length, 0);
  });
}

test("a 200 for an active hold (our own retry) admits", async () => {
  const { client } = scripted([[200, hold("active")]]);
  assert.equal((await (await call(client)).outcome).text, "ok");
});

test("a full spool refuses the call before any hold is asked", async () => {
  const { seen, client } = scripted([[201, hold()]]);
  const spool = new MemorySpool();
  await spool.append({
    type: "usage.recorded", schema_version: 1, event_id: "waiting", account_id: "a",
    model: "m", input_tokens: 1, cached_input_tokens: 0, output_tokens: 1,
    occurred_at: new Date().toISOString(), gateway_id: "gw-t",
  });
  const { mock, outcome, middleware } = await call(client, spool);
  await assert.rejects(outcome, SpoolFullError);
  assert.equal(mock.doGenerateCalls.length, 0);
  assert.equal(seen.filter((s) => s.url.endsWith("/holds")).length, 0);
  await middleware.close();
});

test("a model that fails releases its hold and spools nothing", async () => {
  const { seen, client } = scripted([[201, hold()], [200, { hold_id: "h-1", status: "released" }]]);
  const { outcome, spool } = await call(client, new MemorySpool(), true);
  await assert.rejects(outcome, /provider down/);
  assert.ok(seen.some((s) => s.method === "DELETE" && s.url.endsWith("/holds/h-1")));
  assert.equal(await spool.size(), 0);
});

test("a spool that cannot store the usage: it is sent directly, the call succeeds", async () => {
  const { seen, client } = scripted([[201, hold()], [202, { accepted: 1, rejected: [] }]]);
  class BrokenSpool extends MemorySpool {
    override async append(): Promise<void> {
      throw new Error("ENOSPC: no space left on device");
    }
  }
  const { outcome } = await call(client, new BrokenSpool());
  assert.equal((await outcome).text, "ok");
  const sent = seen.filter((s) => s.method === "POST" && s.url.endsWith("/v1/usage"));
  assert.equal(sent.length, 1);
});
