/**
 * The scheduling pass run after every change to an instance: grant what fits in queue order,
 * let lower-priority waiters backfill only into capacity that no waiter ahead of them needs,
 * ask victims to stop for the first blocked waiter that may preempt, reject what can never fit.
 *
 * Backfill rule: a waiter behind blocked waiters may take only max(0, free − Σ needs of those
 * blocked ahead) per dimension, so it never consumes what a waiter ahead is waiting for.
 */
import type { Reservation } from '../model/reservation.js';
import {
  add,
  EMPTY,
  fits,
  shortfall,
  sub,
  subClamped,
  sum,
  type ResourceVector,
  type Shortfall,
} from '../model/vector.js';
import { freedBy, heldBy, pausablePart } from './holdings.js';
import { planPreemption } from './preemption.js';
import { inQueueOrder } from './queue-order.js';
import type { InstanceSnapshot, LedgerEvent, Transition } from './snapshot.js';

export interface WaitStatus {
  readonly id: string;
  /** 1-based position in queue order. */
  readonly position: number;
  readonly queueLength: number;
  /** The first waiters ahead in queue order (at most MAX_AHEAD_SHOWN; `position - 1` are ahead in all). */
  readonly ahead: readonly string[];
  /** What is short for this waiter now (after what waiters ahead of it hold). */
  readonly shortfall: readonly Shortfall[];
  /** Grants being stopped to make room for this waiter. */
  readonly victims: readonly string[];
  /** Earliest start if running grants end at their time limits; undefined when unknown. */
  readonly estimatedStart?: number;
}

export const MAX_AHEAD_SHOWN = 5;

export interface ScheduleResult extends Transition {
  readonly waiting: ReadonlyMap<string, WaitStatus>;
}

export function schedule(snap: InstanceSnapshot, now: number, by = 'scheduler'): ScheduleResult {
  const inst = snap.instance;
  let seq = inst.seq;
  const upserts: Reservation[] = [];
  const events: LedgerEvent[] = [];
  const grants = snap.reservations.filter((r) => r.state === 'granted');
  const paused = grants.filter((g) => g.pausedAt !== undefined);
  const queue = inQueueOrder([...snap.reservations.filter((r) => r.state === 'queued'), ...paused]);
  let free = sub(inst.allocatable, sum(grants.map(heldBy)));
  let held: ResourceVector = EMPTY;
  let planned = false;
  const pending: Array<{ w: Reservation; short: Shortfall[]; victims: string[]; heldAhead: ResourceVector }> =
    [];
  const stopping = grants.filter((g) => g.preemptRequestedAt !== undefined);
  const victimsOf = new Map<string, string[]>();
  for (const g of stopping) {
    if (g.preemptedBy) victimsOf.set(g.preemptedBy, [...(victimsOf.get(g.preemptedBy) ?? []), g.id]);
  }

  for (const w of queue) {
    const avail = subClamped(free, held);
    if (w.state === 'granted') {
      // A paused grant waits, in queue order, for what pausing gave back.
      const need = pausablePart(w.requests);
      if (fits(need, avail)) {
        const pausedFor = now - (w.pausedAt as number);
        upserts.push({
          ...w,
          pausedAt: undefined,
          pausedMs: (w.pausedMs ?? 0) + pausedFor,
          deadline: w.deadline !== undefined ? w.deadline + pausedFor : undefined,
          preemptedBy: undefined,
          preemptAction: undefined,
        });
        events.push(
          ev(now, inst.id, w.id, 'resumed', 'granted', 'granted', 'capacity is back', by, {
            pausedMs: pausedFor,
          }),
        );
        free = sub(free, need);
      } else held = add(held, need);
      continue;
    }
    if (!fits(w.requests, inst.allocatable)) {
      const short = shortfall(w.requests, inst.allocatable);
      upserts.push({ ...w, state: 'rejected', endedAt: now, reason: 'unsatisfiable' });
      events.push(
        ev(now, inst.id, w.id, 'rejected', 'queued', 'rejected', 'exceeds allocatable', by, {
          shortfall: short,
        }),
      );
      continue;
    }
    if (fits(w.requests, avail)) {
      seq++;
      const deadline = w.timeLimitMs !== undefined ? now + w.timeLimitMs : undefined;
      upserts.push({
        ...w,
        state: 'granted',
        grantedAt: now,
        grantSeq: seq,
        leaseExpiresAt: now + w.leaseMs,
        deadline,
        waitDeadline: undefined,
      });
      events.push(
        ev(now, inst.id, w.id, 'granted', 'queued', 'granted', pending.length ? 'backfill' : 'fits', by),
      );
      free = sub(free, w.requests);
      continue;
    }
    let victims = victimsOf.get(w.id) ?? [];
    if (!planned) {
      planned = true;
      const inFlight = sum(stopping.map((g) => freedBy(g, g.preemptAction ?? 'evict')));
      const freeAfterStops = subClamped(add(free, inFlight), held);
      if (!fits(w.requests, freeAfterStops)) {
        const plan = planPreemption(w, freeAfterStops, grants);
        for (const { reservation: v, action } of plan ?? []) {
          upserts.push({ ...v, preemptRequestedAt: now, preemptedBy: w.id, preemptAction: action });
          events.push(
            ev(now, inst.id, v.id, 'preempt-requested', 'granted', 'granted', `${action} for ${w.id}`, by, {
              preemptor: w.id,
              priority: w.priority,
              action,
            }),
          );
          victims = [...victims, v.id];
        }
      }
    }
    pending.push({ w, short: shortfall(w.requests, avail), victims, heldAhead: held });
    held = add(held, w.requests);
  }

  const waiting = new Map<string, WaitStatus>();
  const queueLength = pending.length;
  const releases = releaseProfile(grants, free);
  const head = pending.slice(0, MAX_AHEAD_SHOWN).map((p) => p.w.id);
  pending.forEach(({ w, short, victims, heldAhead }, i) => {
    waiting.set(w.id, {
      id: w.id,
      position: i + 1,
      queueLength,
      ahead: head.slice(0, Math.min(i, MAX_AHEAD_SHOWN)),
      shortfall: short,
      victims,
      estimatedStart: estimateStart(w, releases, heldAhead, now),
    });
  });
  return { instance: { ...inst, seq, revision: inst.revision }, upserts, events, waiting };
}

/** What would be free after each running grant with a time limit ends, in deadline order. */
interface ReleaseStep {
  readonly at: number;
  readonly free: ResourceVector;
}

/** Computed once per pass. Grants without a time limit end at an unknown time: they add no step. */
function releaseProfile(grants: readonly Reservation[], free: ResourceVector): ReleaseStep[] {
  const ending = grants
    .filter((g) => g.deadline !== undefined)
    .sort((a, b) => (a.deadline as number) - (b.deadline as number));
  const steps: ReleaseStep[] = [];
  let avail = free;
  for (const g of ending) {
    avail = add(avail, heldBy(g));
    steps.push({ at: g.deadline as number, free: avail });
  }
  return steps;
}

/**
 * When would `w` fit if running grants ended at their deadlines, with the waiters ahead keeping
 * their share? Free capacity only grows along the profile, so the first step that fits is found by
 * binary search. Undefined when no step with a known time is enough.
 */
function estimateStart(
  w: Reservation,
  steps: readonly ReleaseStep[],
  heldAhead: ResourceVector,
  now: number,
): number | undefined {
  const ok = (i: number): boolean => fits(w.requests, subClamped((steps[i] as ReleaseStep).free, heldAhead));
  if (steps.length === 0 || !ok(steps.length - 1)) return undefined;
  let lo = 0;
  let hi = steps.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (ok(mid)) hi = mid;
    else lo = mid + 1;
  }
  return Math.max(now, (steps[lo] as ReleaseStep).at);
}

export function ev(
  at: number,
  instance: string,
  reservation: string | undefined,
  type: LedgerEvent['type'],
  from: string | undefined,
  to: string | undefined,
  reason: string,
  by: string,
  data?: Record<string, unknown>,
): LedgerEvent {
  return { at, instance, reservation, type, from, to, reason, by, ...(data ? { data } : {}) };
}
