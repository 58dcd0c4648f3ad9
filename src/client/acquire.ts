/**
 * Reserve and, if queued, wait until granted: woken by the ledger's change feed (no busy loop),
 * with a slow poll that sweeps dead holders and expiries and renews the waiter's own lease.
 */
import type { WaitStatus } from '../admission/schedule.js';
import { INSTANCE_DOWN_REASON } from '../admission/transitions.js';
import type { LedgerClient } from '../ledger/ledger-client.js';
import { RrmError } from '../model/errors.js';
import { formatDimension } from '../model/quantity.js';
import {
  ANY_INSTANCE,
  type Reservation,
  type ReservationHandle,
  type ReservationRequest,
} from '../model/reservation.js';
import type { Shortfall } from '../model/vector.js';

export interface AcquireOptions {
  /** Called when the waiter's standing changes, and at least every poll. */
  readonly onWait?: (status: WaitStatus, reservation: Reservation) => void;
  readonly signal?: AbortSignal;
  readonly pollMs: number;
  /** A placed waiter moved: `from` gave up its place, `to` stands for the request now. */
  readonly onMove?: (from: Reservation, to: Reservation) => void;
}

export interface Acquired {
  readonly handle: ReservationHandle;
  readonly reservation: Reservation;
  readonly waitedMs: number;
}

export function handleOf(r: Reservation, token: string): ReservationHandle {
  return {
    id: r.id,
    token,
    instance: r.instance,
    granted: r.requests,
    limits: r.limits,
    leaseExpiresAt: r.leaseExpiresAt ?? 0,
    deadline: r.deadline,
  };
}

export function describeShortfall(short: readonly Shortfall[]): string {
  return short
    .map(
      (s) =>
        `${s.dimension} ${formatDimension(s.dimension, s.need)} (free ${formatDimension(s.dimension, s.free)}, short ${formatDimension(s.dimension, s.short)})`,
    )
    .join(', ');
}

/** Where a rejected request was tried: its instance, or the best of the fleet for `target: any`. */
function where(request: ReservationRequest, r: Reservation): string {
  return request.target === ANY_INSTANCE ? `any instance (best: ${r.instance})` : request.target;
}

export async function acquire(
  ledger: LedgerClient,
  request: ReservationRequest,
  opts: AcquireOptions,
): Promise<Acquired> {
  const started = Date.now();
  const { outcome, token } = await ledger.reserve(request);
  if (outcome.kind === 'granted')
    return { handle: handleOf(outcome.reservation, token), reservation: outcome.reservation, waitedMs: 0 };
  if (outcome.kind === 'rejected') {
    const what = describeShortfall(outcome.shortfall);
    const ahead = outcome.ahead.length
      ? `; ${outcome.ahead.length} waiting ahead: ${outcome.ahead.join(', ')}`
      : '';
    throw new RrmError(
      outcome.code,
      outcome.code === 'RRM_ERR_INSTANCE_DOWN'
        ? `instance ${outcome.reservation.instance} is down: its agent's lease lapsed`
        : outcome.code === 'RRM_ERR_UNSATISFIABLE'
          ? `the request can never fit on ${where(request, outcome.reservation)}: ${what}`
          : `no capacity now on ${where(request, outcome.reservation)}: ${what}${ahead}`,
      { id: outcome.reservation.id, shortfall: outcome.shortfall, ahead: outcome.ahead },
    );
  }
  opts.onWait?.(outcome.status, outcome.reservation);
  const r = await waitForGrant(ledger, outcome.reservation.id, token, opts);
  return { handle: handleOf(r, token), reservation: r, waitedMs: Date.now() - started };
}

/** How often a placed waiter (`target: any`) looks for an instance that would grant it now. */
const MOVE_EVERY_MS = 250;

function waitForGrant(
  ledger: LedgerClient,
  first: string,
  token: string,
  opts: AcquireOptions,
): Promise<Reservation> {
  return new Promise<Reservation>((resolve, reject) => {
    let id = first;
    let lastMove = 0;
    let busy = false;
    let again = false;
    let lastRenew = Date.now();
    let done = false;
    const finish = (err: unknown, r?: Reservation): void => {
      if (done) return;
      done = true;
      unwatch();
      clearInterval(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve(r as Reservation);
    };
    const check = async (sweep: boolean): Promise<void> => {
      if (busy) {
        again = true;
        return;
      }
      busy = true;
      try {
        let r = await ledger.get(id);
        if (r?.state === 'queued' && sweep) {
          await ledger.sweep(r.instance);
          r = await ledger.get(id);
          if (r?.state === 'queued' && Date.now() - lastRenew >= r.leaseMs / 2) {
            lastRenew = Date.now();
            r = await ledger.renew(id, token);
          }
        }
        if (!r) throw new RrmError('RRM_ERR_NOT_FOUND', `reservation ${id} vanished from the ledger`);
        // A placed waiter is granted wherever capacity frees first, and placed again if its
        // instance goes down.
        const down = r.state === 'expired' && r.reason === INSTANCE_DOWN_REASON;
        if (
          r.placement &&
          (down || (r.state === 'queued' && (sweep || Date.now() - lastMove >= MOVE_EVERY_MS)))
        ) {
          lastMove = Date.now();
          const moved = await ledger.relocate(id, token);
          if (moved.id !== id) {
            opts.onMove?.(r, moved);
            id = moved.id;
          }
          r = moved;
        }
        if (r.state === 'granted') return finish(undefined, r);
        if (r.state !== 'queued') {
          const code =
            r.state === 'timed-out'
              ? 'RRM_ERR_WAIT_TIMEOUT'
              : r.reason === 'unsatisfiable'
                ? 'RRM_ERR_UNSATISFIABLE'
                : 'RRM_ERR_NOT_GRANTED';
          return finish(
            new RrmError(code, `reservation ${id} was ${r.state} while waiting: ${r.reason ?? ''}`.trim(), {
              id,
              state: r.state,
            }),
          );
        }
        const status = await ledger.waitStatus(id);
        if (status) opts.onWait?.(status, r);
      } catch (e) {
        finish(e);
      } finally {
        busy = false;
        if (again && !done) {
          again = false;
          void check(false);
        }
      }
    };
    const onAbort = (): void => {
      void ledger
        .release(id, { token }, { reason: 'waiter stopped' })
        .catch(() => undefined)
        .finally(() => finish(opts.signal?.reason ?? new Error('aborted')));
    };
    const unwatch = ledger.watch(() => void check(false));
    const timer = setInterval(() => void check(true), opts.pollMs);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    if (opts.signal?.aborted) onAbort();
    else void check(false);
  });
}
