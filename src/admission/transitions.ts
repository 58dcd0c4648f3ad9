/**
 * The ledger's verbs as pure steps: each takes a snapshot and `now`, returns the records to write,
 * the events to append and an outcome value. The scheduling pass runs after every step that can
 * change what fits. No I/O here: ids, token hashes and the set of dead holders are inputs.
 */
import { RrmError } from '../model/errors.js';
import type { Reservation, ReservationRequest, ReservationState } from '../model/reservation.js';
import { fits, shortfall, sum, type ResourceVector, type Shortfall } from '../model/vector.js';
import { schedule, ev, type WaitStatus } from './schedule.js';
import { applyTransition, type InstanceSnapshot, type LedgerEvent, type Transition } from './snapshot.js';

export type SubmitOutcome =
  | { readonly kind: 'granted'; readonly reservation: Reservation }
  | { readonly kind: 'queued'; readonly reservation: Reservation; readonly status: WaitStatus }
  | {
      readonly kind: 'rejected';
      readonly reservation: Reservation;
      readonly code: 'RRM_ERR_CAPACITY_SHORT' | 'RRM_ERR_UNSATISFIABLE' | 'RRM_ERR_INSTANCE_DOWN';
      readonly shortfall: readonly Shortfall[];
      readonly ahead: readonly string[];
    };

export interface Step<T> extends Transition {
  readonly outcome: T;
}

function merge(first: Transition, second: Transition): Transition {
  const byId = new Map<string, Reservation>();
  for (const r of first.upserts) byId.set(r.id, r);
  for (const r of second.upserts) byId.set(r.id, r);
  return {
    instance: second.instance,
    upserts: [...byId.values()],
    events: [...first.events, ...second.events],
  };
}

/** Applies `t`, then runs the scheduling pass on the result; one combined transition. */
function thenSchedule(snap: InstanceSnapshot, t: Transition, now: number, by: string): Transition {
  const s = schedule(applyTransition(snap, t), now, by);
  return merge(t, s);
}

function find(snap: InstanceSnapshot, id: string): Reservation | undefined {
  return snap.reservations.find((r) => r.id === id);
}

export interface SubmitInput {
  readonly id: string;
  readonly tokenHash: string;
  readonly request: ReservationRequest;
}

export function submit(snap: InstanceSnapshot, input: SubmitInput, now: number): Step<SubmitOutcome> {
  const { request: q, id } = input;
  const inst = snap.instance;
  const by = q.holder.owner;
  const base: Reservation = {
    id,
    instance: inst.id,
    state: 'queued',
    mode: q.mode,
    priority: q.priority,
    requests: q.requests,
    limits: q.limits,
    preemptible: q.preemptible,
    mayPreempt: q.mayPreempt,
    onPreempt: q.onPreempt,
    packages: q.packages,
    command: q.command,
    holder: q.holder,
    tokenHash: input.tokenHash,
    arrival: inst.seq + 1,
    createdAt: now,
    leaseMs: q.leaseMs,
    leaseExpiresAt: now + q.leaseMs,
    timeLimitMs: q.timeLimitMs,
    waitDeadline: q.waitMs !== undefined && q.waitMs > 0 ? now + q.waitMs : undefined,
    idempotencyKey: q.idempotencyKey,
    retryOf: q.retryOf,
    attempt: q.attempt ?? 1,
    ...(q.placement ? { placement: q.placement } : {}),
  };
  const bumped = { ...inst, seq: inst.seq + 1 };

  if (snap.down) {
    const rejected: Reservation = { ...base, state: 'rejected', endedAt: now, reason: 'instance down' };
    return {
      instance: bumped,
      upserts: [rejected],
      events: [ev(now, inst.id, id, 'rejected', undefined, 'rejected', `instance ${inst.id} is down`, by)],
      outcome: {
        kind: 'rejected',
        reservation: rejected,
        code: 'RRM_ERR_INSTANCE_DOWN',
        shortfall: [],
        ahead: [],
      },
    };
  }

  if (!fits(q.requests, inst.allocatable)) {
    const short = shortfall(q.requests, inst.allocatable);
    const rejected: Reservation = { ...base, state: 'rejected', endedAt: now, reason: 'unsatisfiable' };
    return {
      instance: bumped,
      upserts: [rejected],
      events: [
        ev(now, inst.id, id, 'rejected', undefined, 'rejected', 'exceeds allocatable even when empty', by, {
          shortfall: short,
        }),
      ],
      outcome: {
        kind: 'rejected',
        reservation: rejected,
        code: 'RRM_ERR_UNSATISFIABLE',
        shortfall: short,
        ahead: [],
      },
    };
  }

  const enqueued: Transition = {
    instance: bumped,
    upserts: [base],
    events: [
      ev(now, inst.id, id, 'queued', undefined, 'queued', 'submitted', by, {
        priority: q.priority,
        mode: q.mode,
      }),
    ],
  };
  const s = schedule(applyTransition(snap, enqueued), now, by);
  const t = merge(enqueued, s);
  const mine = t.upserts.find((r) => r.id === id) as Reservation;
  if (mine.state === 'granted') return { ...t, outcome: { kind: 'granted', reservation: mine } };
  const status = s.waiting.get(id) as WaitStatus;
  if (q.waitMs === 0 && status.victims.length === 0) {
    // Fail fast: nothing is waiting to free up for it. Record the rejection; schedule without it.
    const rejected: Reservation = {
      ...base,
      state: 'rejected',
      endedAt: now,
      reason: 'no capacity (fail fast)',
    };
    const without: Transition = {
      instance: bumped,
      upserts: [rejected],
      events: [
        ev(now, inst.id, id, 'rejected', undefined, 'rejected', 'no capacity and asked not to wait', by, {
          shortfall: status.shortfall,
          ahead: status.ahead,
        }),
      ],
    };
    const t2 = thenSchedule(snap, without, now, by);
    return {
      ...t2,
      outcome: {
        kind: 'rejected',
        reservation: rejected,
        code: 'RRM_ERR_CAPACITY_SHORT',
        shortfall: status.shortfall,
        ahead: status.ahead,
      },
    };
  }
  return { ...t, outcome: { kind: 'queued', reservation: mine, status } };
}

export interface Caller {
  /** sha256 of the caller's token; undefined for an admin acting without one. */
  readonly tokenHash?: string;
  readonly admin: boolean;
  readonly name: string;
}

function authorize(r: Reservation | undefined, id: string, caller: Caller): Reservation {
  if (!r) throw new RrmError('RRM_ERR_NOT_FOUND', `no active reservation ${id}`, { id });
  if (!caller.admin && caller.tokenHash !== r.tokenHash) {
    throw new RrmError('RRM_ERR_NOT_HOLDER', `reservation ${id} is held by someone else`, { id });
  }
  return r;
}

export interface ReleaseInput {
  readonly id: string;
  readonly caller: Caller;
  /** The end the holder reports: normally released; timed-out when it stopped at its time limit. */
  readonly end?: 'released' | 'timed-out';
  readonly reason?: string;
  readonly usage?: Readonly<Record<string, number>>;
}

/**
 * Ends an active reservation (queued → cancelled; granted → released, or preempted when it was
 * asked to stop). Ending one that is not active is not done here: the ledger answers with the
 * stored record (release is idempotent).
 */
export function release(snap: InstanceSnapshot, input: ReleaseInput, now: number): Step<Reservation> {
  const r = authorize(find(snap, input.id), input.id, input.caller);
  let to: ReservationState;
  let reason = input.reason ?? 'released by holder';
  if (r.state === 'queued') {
    to = 'cancelled';
    reason = input.reason ?? 'gave up waiting';
  } else if (r.preemptRequestedAt !== undefined) {
    to = 'preempted';
    reason = `stopped for ${r.preemptedBy ?? 'a higher-priority request'}`;
  } else {
    to = input.end ?? 'released';
  }
  const usage = input.usage ?? r.usage;
  const ended: Reservation = { ...r, state: to, endedAt: now, reason, ...(usage ? { usage } : {}) };
  const type =
    to === 'cancelled'
      ? 'cancelled'
      : to === 'preempted'
        ? 'preempted'
        : to === 'timed-out'
          ? 'timed-out'
          : 'released';
  const t = thenSchedule(
    snap,
    {
      instance: snap.instance,
      upserts: [ended],
      events: [
        ev(
          now,
          snap.instance.id,
          r.id,
          type,
          r.state,
          to,
          reason,
          input.caller.name,
          input.usage ? { usage: input.usage } : undefined,
        ),
      ],
    },
    now,
    input.caller.name,
  );
  return { ...t, outcome: ended };
}

function mustBeGranted(r: Reservation): Reservation {
  if (r.state !== 'granted') {
    throw new RrmError('RRM_ERR_NOT_GRANTED', `reservation ${r.id} is ${r.state}, not granted`, {
      id: r.id,
      state: r.state,
    });
  }
  return r;
}

export function renew(snap: InstanceSnapshot, id: string, caller: Caller, now: number): Step<Reservation> {
  const r = authorize(find(snap, id), id, caller);
  const renewed: Reservation = { ...r, leaseExpiresAt: now + r.leaseMs };
  return { instance: snap.instance, upserts: [renewed], events: [], outcome: renewed };
}

export function recordProcessGroup(
  snap: InstanceSnapshot,
  id: string,
  caller: Caller,
  pgid: number,
  now: number,
): Step<Reservation> {
  const r = mustBeGranted(authorize(find(snap, id), id, caller));
  const next: Reservation = { ...r, pgid };
  return {
    instance: snap.instance,
    upserts: [next],
    events: [
      ev(
        now,
        snap.instance.id,
        id,
        'process-started',
        'granted',
        'granted',
        'installer started',
        caller.name,
        { pgid },
      ),
    ],
    outcome: next,
  };
}

/** The holder froze its command as asked: it now holds only what pausing does not free. */
export function acknowledgePause(
  snap: InstanceSnapshot,
  id: string,
  caller: Caller,
  now: number,
): Step<Reservation> {
  const r = mustBeGranted(authorize(find(snap, id), id, caller));
  if (r.preemptAction !== 'pause' || r.preemptRequestedAt === undefined) {
    throw new RrmError('RRM_ERR_BAD_REQUEST', `reservation ${id} was not asked to pause`, { id });
  }
  const paused: Reservation = {
    ...r,
    pausedAt: now,
    preemptRequestedAt: undefined,
    preemptAction: undefined,
  };
  const t = thenSchedule(
    snap,
    {
      instance: snap.instance,
      upserts: [paused],
      events: [
        ev(
          now,
          snap.instance.id,
          id,
          'paused',
          'granted',
          'granted',
          `paused for ${r.preemptedBy ?? 'a higher-priority request'}`,
          caller.name,
        ),
      ],
    },
    now,
    caller.name,
  );
  return { ...t, outcome: paused };
}

/** Why reservations on an instance whose agent vanished ended; a placed waiter then moves. */
export const INSTANCE_DOWN_REASON = "instance down: its agent's lease lapsed";

export interface ReapPolicy {
  /** Holders known to be gone (pid dead or reused), found by the caller. */
  readonly deadHolders: ReadonlySet<string>;
  /** How long a victim or a grant past its time limit may take to stop before it is forced. */
  readonly forceAfterMs: number;
}

export interface Reclaimed {
  readonly reservation: Reservation;
  /** A process group to kill before the resources are handed on. */
  readonly pgid?: number;
}

/** Which active reservations must end now, and why. Pure: the caller kills their process groups. */
export function findReclaimable(snap: InstanceSnapshot, policy: ReapPolicy, now: number): Reclaimed[] {
  const out: Reclaimed[] = [];
  for (const r of snap.reservations) {
    let to: ReservationState | undefined;
    let reason = '';
    if (snap.down) [to, reason] = ['expired', INSTANCE_DOWN_REASON];
    else if (policy.deadHolders.has(r.id)) [to, reason] = ['expired', 'holder process is gone'];
    else if (r.leaseExpiresAt !== undefined && r.leaseExpiresAt <= now)
      [to, reason] = ['expired', 'lease not renewed'];
    else if (r.state === 'queued' && r.waitDeadline !== undefined && r.waitDeadline <= now)
      [to, reason] = ['timed-out', 'wait limit reached'];
    else if (
      r.state === 'granted' &&
      r.pausedAt === undefined &&
      r.deadline !== undefined &&
      r.deadline + policy.forceAfterMs <= now
    )
      [to, reason] = ['timed-out', 'time limit reached and not stopped by its holder'];
    else if (
      r.state === 'granted' &&
      r.preemptRequestedAt !== undefined &&
      r.preemptRequestedAt + policy.forceAfterMs <= now
    )
      [to, reason] = ['preempted', 'did not stop in time after preemption'];
    if (to)
      out.push({
        reservation: { ...r, state: to, endedAt: now, reason },
        pgid: r.state === 'granted' ? r.pgid : undefined,
      });
  }
  return out;
}

/** Ends the reclaimed reservations and reschedules. Call after their process groups were killed. */
export function reap(
  snap: InstanceSnapshot,
  reclaimed: readonly Reclaimed[],
  now: number,
  by = 'reaper',
): Step<Reservation[]> {
  if (reclaimed.length === 0) {
    const s = schedule(snap, now, by);
    return { ...s, outcome: [] };
  }
  const events: LedgerEvent[] = reclaimed.map(({ reservation: r }) => {
    const before = find(snap, r.id) as Reservation;
    return ev(
      now,
      snap.instance.id,
      r.id,
      r.state as LedgerEvent['type'],
      before.state,
      r.state,
      r.reason ?? '',
      by,
    );
  });
  const t = thenSchedule(
    snap,
    { instance: snap.instance, upserts: reclaimed.map((c) => c.reservation), events },
    now,
    by,
  );
  return { ...t, outcome: reclaimed.map((c) => c.reservation) };
}

export function setAllocatable(
  snap: InstanceSnapshot,
  allocatable: ResourceVector,
  capacity: ResourceVector,
  now: number,
  by: string,
): Step<null> {
  const used = sum(snap.reservations.filter((r) => r.state === 'granted').map((r) => r.requests));
  const over = shortfall(used, allocatable);
  if (over.length > 0) {
    throw new RrmError(
      'RRM_ERR_CAPACITY_IN_USE',
      `cannot set allocatable below what is granted now: ${over.map((o) => `${o.dimension} granted ${o.need} > ${o.free}`).join(', ')}`,
      { over },
    );
  }
  const t = thenSchedule(
    snap,
    {
      instance: { ...snap.instance, allocatable, capacity },
      upserts: [],
      events: [
        ev(
          now,
          snap.instance.id,
          undefined,
          'allocatable-set',
          undefined,
          undefined,
          'allocatable changed',
          by,
          { allocatable, capacity },
        ),
      ],
    },
    now,
    by,
  );
  return { ...t, outcome: null };
}

/** Where a queued reservation stands, for a waiter's progress line. */
export function waitStatus(snap: InstanceSnapshot, id: string, now: number): WaitStatus | undefined {
  return schedule(snap, now).waiting.get(id);
}
