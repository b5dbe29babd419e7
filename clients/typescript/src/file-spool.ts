/**
 * The default spool in Node: one file per unsent event under `<dir>/pending/`, written to a
 * temporary name, fsynced, renamed and the directory fsynced, so an event the middleware
 * has spooled survives a crash of the process or the machine. Events the ledger rejected
 * move to `<dir>/rejected/` with the rejection. A new FileSpool on the same directory
 * resumes what an earlier process left.
 */
import { randomUUID } from "node:crypto";
import { mkdir, open, readdir, readFile, rename, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";

import type { RejectedItem, UsageRecorded } from "./client.js";
import type { UsageSpool } from "./spool.js";

// Event ids are the kit's UUIDs; anything else is escaped so it cannot leave the directory.
const fileName = (eventId: string) => `${encodeURIComponent(eventId)}.json`;

async function fsyncPath(path: string): Promise<void> {
  const handle = await open(path, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function writeDurably(dir: string, name: string, text: string): Promise<void> {
  const temporary = join(dir, `.${randomUUID()}.tmp`);
  const handle = await open(temporary, "w");
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temporary, join(dir, name));
  await fsyncPath(dir);
}

export class FileSpool implements UsageSpool {
  private readonly pendingDir: string;
  private readonly rejectedDir: string;
  // In insertion order, so pending() is oldest first; loaded from the directory at open.
  private readonly events = new Map<string, UsageRecorded>();

  private constructor(readonly dir: string) {
    this.pendingDir = join(dir, "pending");
    this.rejectedDir = join(dir, "rejected");
  }

  /** Opens (creating) the spool in `dir` and loads the events an earlier process left. */
  static async open(dir: string): Promise<FileSpool> {
    const spool = new FileSpool(dir);
    await mkdir(spool.pendingDir, { recursive: true });
    await mkdir(spool.rejectedDir, { recursive: true });
    const loaded: UsageRecorded[] = [];
    for (const name of await readdir(spool.pendingDir)) {
      if (name.startsWith(".")) {
        await unlink(join(spool.pendingDir, name)).catch(() => undefined); // a torn write
        continue;
      }
      const text = await readFile(join(spool.pendingDir, name), "utf8");
      loaded.push(JSON.parse(text) as UsageRecorded);
    }
    loaded.sort((a, b) => a.occurred_at.localeCompare(b.occurred_at));
    for (const event of loaded) spool.events.set(event.event_id, event);
    return spool;
  }

  async append(event: UsageRecorded): Promise<void> {
    await writeDurably(this.pendingDir, fileName(event.event_id), JSON.stringify(event));
    this.events.set(event.event_id, event);
  }

  async pending(limit: number): Promise<UsageRecorded[]> {
    return [...this.events.values()].slice(0, limit);
  }

  async acknowledge(eventIds: readonly string[]): Promise<void> {
    for (const id of eventIds) {
      this.events.delete(id);
      // Another process sharing the directory may have removed it first: that is fine.
      await unlink(join(this.pendingDir, fileName(id))).catch(() => undefined);
    }
  }

  async setAside(event: UsageRecorded, rejection: RejectedItem): Promise<void> {
    const text = JSON.stringify({ event, rejection, set_aside_at: new Date().toISOString() });
    await writeFile(join(this.rejectedDir, fileName(event.event_id)), text);
    await this.acknowledge([event.event_id]);
  }

  async size(): Promise<number> {
    return this.events.size;
  }
}
