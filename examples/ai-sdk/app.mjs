// The ledger middleware around the AI SDK's mock model: offline, against `make run`'s API.
// It creates a gateway key with the admin token, funds an account, bills a generateText
// and a streamText call, and shows the 402 an account without credits gets.
import { randomUUID } from "node:crypto";

import { generateText, simulateReadableStream, streamText, wrapLanguageModel } from "ai";
import { MockLanguageModelV2 } from "ai/test";
import {
  InsufficientCreditsError,
  LedgerClient,
  ledgerMiddleware,
} from "@credit-ledger/ai-sdk";

const API = process.env.LEDGER_API_URL ?? "http://127.0.0.1:8000";
const ADMIN = process.env.LEDGER_DEV_ADMIN_TOKEN ?? "dev-admin-token"; // make run's
const ACCOUNT = process.env.DEMO_ACCOUNT ?? `ai-sdk-demo-${randomUUID().slice(0, 8)}`;

// A gateway key: what a real app is given instead of the admin token.
const created = await fetch(`${API}/v1/keys`, {
  method: "POST",
  headers: { Authorization: `Bearer ${ADMIN}`, "Content-Type": "application/json" },
  body: JSON.stringify({ scope: "gateway", name: "ai-sdk example" }),
});
if (created.status !== 201) throw new Error(`POST /v1/keys: ${created.status} ${await created.text()}`);
const { secret } = await created.json();

const admin = new LedgerClient({ url: API, apiKey: ADMIN });
const ledger = new LedgerClient({ url: API, apiKey: secret });
await admin.grant(ACCOUNT, randomUUID(), { credits: 100_000, reason: "purchase", reference: "ai-sdk example" });
for (;;) {
  const shown = await ledger.balance(ACCOUNT).catch(() => undefined);
  if (shown?.purchased === 100_000) break;
  await new Promise((resolve) => setTimeout(resolve, 200));
}
console.log(`${ACCOUNT}: balance ${(await ledger.balance(ACCOUNT)).balance}`);

const usage = { inputTokens: 420, outputTokens: 96, totalTokens: 516, cachedInputTokens: 0 };
const mock = new MockLanguageModelV2({
  modelId: "mimo-pro",
  doGenerate: async () => ({
    content: [{ type: "text", text: "Paris." }],
    finishReason: "stop",
    usage,
    warnings: [],
  }),
  doStream: async () => ({
    stream: simulateReadableStream({
      chunks: [
        { type: "text-start", id: "t" },
        { type: "text-delta", id: "t", delta: "Bonjour" },
        { type: "text-delta", id: "t", delta: " !" },
        { type: "text-end", id: "t" },
        { type: "finish", finishReason: "stop", usage },
      ],
    }),
  }),
});

const billing = ledgerMiddleware({
  gatewayId: "ai-sdk-example", url: API, apiKey: secret,
  models: { "mimo-pro": "mimo-v2-pro" }, // AI SDK model id -> price-book model
});
const model = wrapLanguageModel({ model: mock, middleware: billing });
const billed = { providerOptions: { ledger: { accountId: ACCOUNT } }, maxOutputTokens: 256 };

const answer = await generateText({ model, prompt: "The capital of France?", ...billed });
console.log(`generateText: ${answer.text} (usage ${JSON.stringify(answer.usage)})`);
const stream = streamText({ model, prompt: "Say hello in French.", ...billed });
console.log(`streamText: ${await stream.text}`);

try {
  await generateText({ model, prompt: "hi", providerOptions: { ledger: { accountId: `${ACCOUNT}-broke` } } });
} catch (error) {
  if (!(error instanceof InsufficientCreditsError)) throw error;
  console.log(`an account without credits: ${error.code} (available ${error.available}, requested ${error.requested})`);
}

// The middleware sends usage from its spool (.ledger-spool/) in the background.
await billing.flush();
await billing.close();
for (;;) {
  const shown = await ledger.balance(ACCOUNT);
  if (shown.entries >= 3 && shown.held === 0) {
    console.log(`${ACCOUNT}: balance ${shown.balance}, spent ${shown.spent} (two calls of mimo-v2-pro)`);
    break;
  }
  await new Promise((resolve) => setTimeout(resolve, 200));
}
