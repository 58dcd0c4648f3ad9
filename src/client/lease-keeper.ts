/**
 * Keeps a granted reservation alive while its holder works: renews at half the lease and tells
 * the holder, through `onLost` / `onPreempt`, when the ledger says it must stop (asked to make
 * room for a higher-priority request, released by an admin, expired).
 */
import type { LedgerClient } from '../ledger/ledger-client.js';
import type { Reservation, ReservationHandle } from '../model/reservation.js';

export interface LeaseEvents {
  /** The reservation was chosen as a preemption victim: pause (r.preemptAction) or stop, then tell the ledger. */
  readonly onPreempt?: (r: Reservation) => void;
  /** A paused reservation was re-admitted: thaw. */
  readonly onResume?: (r: Reservation) => void;
  /** The reservation is no longer granted (released elsewhere, expired, timed out). */
  readonly onLost?: (r: Reservation | undefined) => void;
  readonly onError?: (e: unknown) => void;
}

export class LeaseKeeper {
  private readonly timer: NodeJS.Timeout;
  private readonly unwatch: () => void;
  private stopped = false;
  /** The preemption request last passed to onPreempt (its time); a later one, e.g. evicting a paused grant, is new. */
  private preemptSeenAt: number | undefined;
  private pausedSeen = false;
  private checking = false;
  private again = false;

  constructor(
    private readonly ledger: LedgerClient,
    private readonly handle: ReservationHandle,
    private readonly leaseMs: number,
    private readonly events: LeaseEvents,
    pollMs: number,
  ) {
    let lastRenew = Date.now();
    this.unwatch = ledger.watch(() => void this.check());
    this.timer = setInterval(
      () => {
        const renewDue = Date.now() - lastRenew >= this.leaseMs / 2;
        if (renewDue) lastRenew = Date.now();
        void this.check(renewDue);
      },
      Math.min(pollMs, leaseMs / 2),
    );
    this.timer.unref();
  }

  private async check(renew = false): Promise<void> {
    if (this.stopped) return;
    if (this.checking) {
      this.again = true;
      return;
    }
    this.checking = true;
    try {
      let r = await this.ledger.get(this.handle.id);
      if (renew && r?.state === 'granted') r = await this.ledger.renew(this.handle.id, this.handle.token);
      if (this.stopped) return;
      if (!r || r.state !== 'granted') {
        this.stop();
        this.events.onLost?.(r);
      } else if (r.preemptRequestedAt !== undefined) {
        if (r.preemptRequestedAt !== this.preemptSeenAt) {
          this.preemptSeenAt = r.preemptRequestedAt;
          this.events.onPreempt?.(r);
        }
      } else if (r.pausedAt !== undefined) {
        this.pausedSeen = true;
      } else if (this.pausedSeen) {
        this.pausedSeen = false;
        this.events.onResume?.(r);
      }
    } catch (e) {
      if (!this.stopped) this.events.onError?.(e);
    } finally {
      this.checking = false;
      if (this.again && !this.stopped) {
        this.again = false;
        void this.check();
      }
    }
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    this.unwatch();
  }
}
