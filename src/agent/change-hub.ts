/**
 * One reader of the ledger's change feed for the whole agent: after each commit it reads the new
 * events once and wakes only the waiters whose reservation changed, so a thousand long polls cost
 * one query per commit instead of a thousand.
 */
import type { LedgerClient } from '../ledger/ledger-client.js';

export class ChangeHub {
  private cursor = 0;
  private readonly byReservation = new Map<string, Set<() => void>>();
  private busy = false;
  private again = false;
  private unwatch: (() => void) | undefined;

  constructor(private readonly ledger: LedgerClient) {}

  async start(): Promise<void> {
    this.cursor = (await this.ledger.events({ limit: 1 })).at(-1)?.seq ?? 0;
    this.unwatch = this.ledger.watch(() => void this.poke());
  }

  stop(): void {
    this.unwatch?.();
  }

  /** Calls `fn` after every commit that records an event of reservation `id`. */
  onReservation(id: string, fn: () => void): () => void {
    let set = this.byReservation.get(id);
    if (!set) this.byReservation.set(id, (set = new Set()));
    set.add(fn);
    return () => {
      set.delete(fn);
      if (set.size === 0) this.byReservation.delete(id);
    };
  }

  private async poke(): Promise<void> {
    if (this.busy) {
      this.again = true;
      return;
    }
    this.busy = true;
    try {
      do {
        this.again = false;
        const events = await this.ledger.events({ afterSeq: this.cursor, limit: 10_000 });
        if (events.length === 0) continue;
        this.cursor = events[events.length - 1]!.seq;
        const touched = new Set(events.map((e) => e.reservation).filter((x): x is string => x !== undefined));
        for (const id of touched) for (const fn of [...(this.byReservation.get(id) ?? [])]) fn();
      } while (this.again);
    } catch {
      // The next commit tries again; waiters also time out.
    } finally {
      this.busy = false;
    }
  }
}
