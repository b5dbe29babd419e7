/** FileSpool on a real directory: durable appends, resumed by a new instance, set aside. */
import assert from "node:assert/strict";
import { readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import type { UsageRecorded } from "../src/index.js";
import { FileSpool } from "../src/file-spool.js";
import { spoolDir } from "./support.js";

const event = (id: string, at: string): UsageRecorded => ({
  type: "usage.recorded", schema_version: 1, event_id: id, account_id: "acct-spool",
  model: "mimo-v2-omni", input_tokens: 10, cached_input_tokens: 0, output_tokens: 5,
  occurred_at: at, gateway_id: "gw-spool",
});

test("a new FileSpool resumes the events an earlier one left, oldest first", async () => {
  const dir = spoolDir();
  const first = await FileSpool.open(dir);
  await first.append(event("b", "2026-12-06T00:00:02Z"));
  await first.append(event("a", "2026-12-06T00:00:01Z"));
  await first.append(event("c", "2026-12-06T00:00:03Z"));
  await first.acknowledge(["c"]);
  writeFileSync(join(dir, "pending", ".torn.tmp"), "{"); // a write cut short by a crash
  const second = await FileSpool.open(dir);
  assert.equal(await second.size(), 2);
  assert.deepEqual((await second.pending(10)).map((e) => e.event_id), ["a", "b"]);
  assert.deepEqual(readdirSync(join(dir, "pending")).sort(), ["a.json", "b.json"]);
});

test("a rejected event is set aside with its rejection, not pending any more", async () => {
  const dir = spoolDir();
  const spool = await FileSpool.open(dir);
  await spool.append(event("x", "2026-12-06T00:00:01Z"));
  await spool.setAside(event("x", "2026-12-06T00:00:01Z"), {
    index: 0, error: "unknown_model", detail: "no such model",
  });
  assert.equal(await spool.size(), 0);
  assert.equal(await (await FileSpool.open(dir)).size(), 0);
  assert.deepEqual(readdirSync(join(dir, "rejected")), ["x.json"]);
});
