/**
 * `ledgerMiddleware` for the AI SDK's `wrapLanguageModel` (docs/contracts.md, Gateway
 * integration, TypeScript). Around each call it:
 * 1. makes one UUID, the call's id: the hold's Idempotency-Key (`<gatewayId>:<uuid>`) and
 *    the usage event's `event_id`, so nothing the client or provider sends can bill twice;
 * 2. places a hold for the worst case (the prompt's estimated tokens plus maxOutputTokens,
 *    or a default) and calls the model only when the ledger admitted it (201, or 200 with
 *    `status` active); a 402 throws InsufficientCreditsError/BudgetExceededError first;
 * 3. after a success spools `usage.recorded` with the `hold_id` and the usage the SDK
 *    reports (a stream's at its end), then sends it from the spool until the ledger
 *    accepted it; after an error or an abort releases the hold.
 */
import type {
  LanguageModelV2,
  LanguageModelV2CallOptions,
  LanguageModelV2Middleware,
  LanguageModelV2StreamPart,
  LanguageModelV2Usage,
} from "@ai-sdk/provider";

import { type HoldByModel, LedgerClient, type UsageRecorded } from "./client.js";
import {
  HoldNotAdmittedError,
  LedgerApiError,
  LedgerError,
  LedgerUnavailableError,
  SpoolFullError,
} from "./errors.js";
import { estimateInputTokens } from "./estimate.js";
import { UsageShipper } from "./shipper.js";
import type { UsageSpool } from "./spool.js";

export interface LedgerMiddlewareOptions {
  /** The gateway's id: the usage events' `gateway_id` and the holds' key prefix. */
  gatewayId: string;
  /** The API (default `LEDGER_API_URL`) and a `gateway` key (default `LEDGER_API_KEY`). */
  url?: string;
  apiKey?: string;
  /** A client to use instead of url and apiKey. */
  client?: LedgerClient;
  /**
   * The account a call bills. Default: the call's `providerOptions.ledger.accountId`, which
   * the app (not its end user) sets on generateText/streamText.
   */
  account?: string | ((params: LanguageModelV2CallOptions) => string | undefined);
  /** The AI SDK model ids to price-book models (`{"gpt-x": "mimo-v2-omni"}`); others as they are. */
  models?: Record<string, string> | ((modelId: string) => string);
  /** The output of the hold's worst case when the call sets no maxOutputTokens (default 4096). */
  defaultMaxOutputTokens?: number;
  /** The hold's life (default 600 s, the API's): longer than the longest call. */
  holdTtlSeconds?: number;
  /** Where usage waits for the ledger: default a FileSpool in `spoolDir`. */
  spool?: UsageSpool;
  /** Default `LEDGER_SPOOL_DIR`, else `.ledger-spool` in the working directory. */
  spoolDir?: string;
  /** New calls are refused (SpoolFullError) once this many events wait (default 10 000). */
  maxSpooled?: number;
  /** How long a hold is asked again while the ledger is unreachable or busy (default 10 s). */
  admissionTimeoutMs?: number;
}

export interface LedgerMiddleware extends LanguageModelV2Middleware {
  /** Resolves once every spooled usage event was accepted by the ledger. */
  flush(timeoutMs?: number): Promise<void>;
  /** Stops sending; spooled events stay for the next start. */
  close(): Promise<void>;
  /** The spool in use, once opened. */
  spool(): Promise<UsageSpool>;
}

type StreamPart = LanguageModelV2StreamPart;

const env = (name: string): string | undefined =>
  (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env[name];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A 5xx or no answer at all: the hold is asked again with the same key. */
function retryable(error: unknown): boolean {
  if (error instanceof LedgerApiError) return error.status >= 500;
  return !(error instanceof LedgerError);
}

export function ledgerMiddleware(options: LedgerMiddlewareOptions): LedgerMiddleware {
  const client =
    options.client ??
    new LedgerClient({
      url: options.url ?? env("LEDGER_API_URL") ?? "http://127.0.0.1:8000",
      apiKey: options.apiKey ?? env("LEDGER_API_KEY") ?? "",
    });
  const gatewayId = options.gatewayId;
  const maxSpooled = options.maxSpooled ?? 10_000;
  const defaultMaxOutput = options.defaultMaxOutputTokens ?? 4_096;
  const admissionTimeoutMs = options.admissionTimeoutMs ?? 10_000;
  // Admitted calls not yet spooled: each may add an event, so the bound counts them too.
  let inFlight = 0;

  const opened: Promise<{ spool: UsageSpool; shipper: UsageShipper }> = (async () => {
    const spool =
      options.spool ??
      (await (async () => {
        // Loaded only when used, so a bundle for a runtime without node:fs can pass its own.
        const { FileSpool } = await import("./file-spool.js");
        return FileSpool.open(options.spoolDir ?? env("LEDGER_SPOOL_DIR") ?? ".ledger-spool");
      })());
    const shipper = new UsageShipper(client, spool);
    shipper.wake(); // resume what an earlier process left
    return { spool, shipper };
  })();
  opened.catch(() => undefined); // surfaced by the first call instead

  const accountOf = (params: LanguageModelV2CallOptions): string => {
    const chosen =
      typeof options.account === "function"
        ? options.account(params)
        : (options.account ?? params.providerOptions?.["ledger"]?.["accountId"]);
    if (typeof chosen !== "string" || chosen === "") {
      throw new LedgerError(
        "no account for this call: set providerOptions.ledger.accountId or the account option",
      );
    }
    return chosen;
  };

  const priceModel = (modelId: string): string => {
    const models = options.models;
    if (typeof models === "function") return models(modelId);
    return models?.[modelId] ?? modelId;
  };

  /** One admitted call: settled once with its usage, or released once. */
  class Call {
    private done = false;

    constructor(
      readonly callId: string,
      readonly account: string,
      readonly holdId: string,
      readonly hold: HoldByModel,
    ) {}

    async settle(usage: LanguageModelV2Usage): Promise<void> {
      if (this.done) return;
      this.done = true;
      // A provider that reports no count is billed the hold's worst case for it.
      const input = usage.inputTokens ?? this.hold.input_tokens;
      const event: UsageRecorded = {
        type: "usage.recorded",
        schema_version: 1,
        event_id: this.callId,
        account_id: this.account,
        model: this.hold.model,
        input_tokens: input,
        cached_input_tokens: Math.min(usage.cachedInputTokens ?? 0, input),
        output_tokens: usage.outputTokens ?? this.hold.max_output_tokens,
        occurred_at: new Date().toISOString(),
        gateway_id: gatewayId,
        hold_id: this.holdId,
      };
      const { spool, shipper } = await opened;
      try {
        await spool.append(event);
      } catch (error) {
        // The store failed (a full disk, say): the call was served, so send it directly
        // once; only if the ledger does not take it either does the app see the error.
        const answer = await client.postUsage([event]).catch(() => undefined);
        if (answer?.accepted !== 1) throw error;
        return;
      } finally {
        inFlight -= 1;
      }
      shipper.wake();
    }

    async release(): Promise<void> {
      if (this.done) return;
      this.done = true;
      inFlight -= 1;
      // Best effort: a hold not released returns its credits when it expires.
      for (let attempt = 0; attempt < 3; attempt += 1) {
        try {
          await client.releaseHold(this.account, this.holdId);
          return;
        } catch (error) {
          if (!retryable(error)) return; // 409 hold_settled, 404: nothing left to release
          await sleep(200 * (attempt + 1));
        }
      }
    }
  }

  const admit = async (params: LanguageModelV2CallOptions, model: LanguageModelV2) => {
    const account = accountOf(params);
    const { spool } = await opened;
    if ((await spool.size()) + inFlight >= maxSpooled) {
      throw new SpoolFullError(`${maxSpooled} usage events wait for the ledger: call refused`);
    }
    const callId = globalThis.crypto.randomUUID();
    const hold: HoldByModel = {
      model: priceModel(model.modelId),
      input_tokens: estimateInputTokens(params),
      max_output_tokens: params.maxOutputTokens ?? defaultMaxOutput,
      ...(options.holdTtlSeconds ? { ttl_seconds: options.holdTtlSeconds } : {}),
    };
    inFlight += 1;
    const deadline = Date.now() + admissionTimeoutMs;
    for (let delay = 100; ; delay = Math.min(delay * 2, 2_000)) {
      try {
        const answer = await client.placeHold(account, `${gatewayId}:${callId}`, hold);
        const placed = answer.status === 201;
        // A 200 is the same key again (our own retry): admitted only while still active.
        if (!placed && answer.body.status !== "active") {
          throw new HoldNotAdmittedError(answer.body.hold_id, answer.body.status);
        }
        return new Call(callId, account, answer.body.hold_id, hold);
      } catch (error) {
        if (!retryable(error) || Date.now() + delay > deadline) {
          inFlight -= 1;
          if (retryable(error)) {
            throw new LedgerUnavailableError(`the ledger decided no hold: ${String(error)}`, {
              cause: error,
            });
          }
          throw error;
        }
        await sleep(delay);
      }
    }
  };

  return {
    middlewareVersion: "v2",

    async wrapGenerate({ doGenerate, params, model }) {
      const call = await admit(params, model);
      let result: Awaited<ReturnType<typeof doGenerate>>;
      try {
        result = await doGenerate();
      } catch (error) {
        await call.release();
        throw error;
      }
      await call.settle(result.usage);
      return result;
    },

    async wrapStream({ doStream, params, model }) {
      const call = await admit(params, model);
      let result: Awaited<ReturnType<typeof doStream>>;
      try {
        result = await doStream();
      } catch (error) {
        await call.release();
        throw error;
      }
      let usage: LanguageModelV2Usage | undefined;
      // Served once the finish part came (its usage is billed); before that, an end of any
      // kind releases the hold.
      const end = () => (usage ? call.settle(usage) : call.release());
      const signal = params.abortSignal;
      const onAbort = () => void end();
      signal?.addEventListener("abort", onAbort, { once: true });
      const reader = result.stream.getReader();
      const stream = new ReadableStream<StreamPart>({
        async pull(controller) {
          let next: ReadableStreamReadResult<StreamPart>;
          try {
            next = await reader.read();
          } catch (error) {
            signal?.removeEventListener("abort", onAbort);
            await end();
            controller.error(error);
            return;
          }
          if (next.done) {
            signal?.removeEventListener("abort", onAbort);
            await end();
            controller.close();
            return;
          }
          if (next.value.type === "finish") usage = next.value.usage;
          controller.enqueue(next.value);
        },
        async cancel(reason) {
          signal?.removeEventListener("abort", onAbort);
          await end();
          await reader.cancel(reason);
        },
      });
      return { ...result, stream };
    },

    async flush(timeoutMs?: number) {
      const { shipper } = await opened;
      await shipper.flush(timeoutMs);
    },

    async close() {
      const { shipper } = await opened;
      shipper.close();
    },

    async spool() {
      return (await opened).spool;
    },
  };
}
