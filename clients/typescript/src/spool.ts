/**
 * Where usage waits between a served call and the ledger's 202: a spool. The middleware
 * writes each call's `usage.recorded` to it (durably, when the store is) before it sends,
 * and removes it only once POST /v1/usage accepted it, so a served call is billed once the
 * ledger is reachable again. Re-sending is safe: the ledger deduplicates by `event_id`.
 *
 * FileSpool (./file-spool.js) is the default in Node; an app on another runtime provides
 * its own store through this interface (MemorySpool shows the shape, without durability).
 */
import type { RejectedItem, UsageRecorded } from "./client.js";

export interface UsageSpool {
  /** Stores the event; when the promise resolves the event survives what the store survives. */
  append(event: UsageRecorded): Promise<void>;
  /** Up to `limit` events not yet accepted, oldest first. */
  pending(limit: number): Promise<UsageRecorded[]>;
  /** The ledger accepted these events: forget them. */
  acknowledge(eventIds: readonly string[]): Promise<void>;
  /** The ledger definitively rejected the event: keep it aside for an operator, never resend. */
  setAside(event: UsageRecorded, rejection: RejectedItem): Promise<void>;
  /** How many events wait to be accepted. */
  size(): Promise<number>;
}

/** A spool in memory: lost with the process; for tests and for apps that wrap their own store. */
export class MemorySpool implements UsageSpool {
  private readonly events = new Map<string, UsageRecorded>();
  readonly rejected: { event: UsageRecorded; rejection: RejectedItem }[] = [];

  async append(event: UsageRecorded): Promise<void> {
    this.events.set(event.event_id, event);
  }

  async pending(limit: number): Promise<UsageRecorded[]> {
    return [...this.events.values()].slice(0, limit);
  }

  async acknowledge(eventIds: readonly string[]): Promise<void> {
    for (const id of eventIds) this.events.delete(id);
  }

  async setAside(event: UsageRecorded, rejection: RejectedItem): Promise<void> {
    this.events.delete(event.event_id);
    this.rejected.push({ event, rejection });
  }

  async size(): Promise<number> {
    return this.events.size;
  }
}
