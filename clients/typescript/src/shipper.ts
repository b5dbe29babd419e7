/**
 * Sends what the spool holds to POST /v1/usage, one batch at a time, until the ledger
 * answers 202: accepted events leave the spool, rejected ones are set aside (the ledger's
 * rejection is final: sending them again would be rejected again), and any other outcome
 * (unreachable, 5xx, 401/403 while a key is being fixed) is retried with a growing delay.
 */
import type { LedgerClient } from "./client.js";
import type { UsageSpool } from "./spool.js";

const BATCH = 500; // of the route's 1..1000
const FIRST_DELAY_MS = 200;
const MAX_DELAY_MS = 5_000;

export class UsageShipper {
  private running: Promise<void> | undefined;
  private again = false;
  private closed = false;
  private delayMs = FIRST_DELAY_MS;
  private wakeUp: (() => void) | undefined;
  /** The last failure, for an app's health check; cleared by the next 202. */
  lastError: unknown;

  constructor(
    private readonly client: LedgerClient,
    private readonly spool: UsageSpool,
  ) {}

  /** Sends what is pending now and keeps going until the spool is empty. */
  wake(): void {
    this.again = true;
    // A wake does not cut a retry's delay short: during an outage every settled call
    // wakes the shipper, and the ledger should not see a storm of retries when it is back.
    this.running ??= this.loop().finally(() => {
      this.running = undefined;
      if (this.again && !this.closed) this.wake();
    });
  }

  /** Resolves once the spool is empty (or `timeoutMs` passed: then it rejects). */
  async flush(timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    this.wake();
    while ((await this.spool.size()) > 0) {
      if (Date.now() > deadline) {
        throw new Error(`usage still spooled after ${timeoutMs} ms: ${String(this.lastError)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Stops retrying; what is spooled stays for the next start (a FileSpool resumes it). */
  close(): void {
    this.closed = true;
    this.wakeUp?.();
  }

  private async loop(): Promise<void> {
    while (!this.closed) {
      this.again = false;
      const batch = await this.spool.pending(BATCH);
      if (batch.length === 0) return;
      try {
        const answer = await this.client.postUsage(batch);
        const rejected = new Map(answer.rejected.map((r) => [r.index, r]));
        for (const [index, rejection] of rejected) {
          const event = batch[index];
          if (event) await this.spool.setAside(event, rejection);
        }
        await this.spool.acknowledge(
          batch.filter((_, index) => !rejected.has(index)).map((e) => e.event_id),
        );
        this.delayMs = FIRST_DELAY_MS;
        this.lastError = undefined;
      } catch (error) {
        // 400/413/422 for a whole batch would mean the kit built it wrong; still nothing is
        // dropped: the events stay until a fixed kit (or an operator) sends them.
        this.lastError = error;
        await this.sleep(this.delayMs * (0.5 + Math.random()));
        this.delayMs = Math.min(this.delayMs * 2, MAX_DELAY_MS);
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      // A pending retry does not keep the process alive: a FileSpool resumes at next start.
      timer.unref?.();
      this.wakeUp = done;
      function done() {
        clearTimeout(timer);
        resolve();
      }
    });
  }
}
