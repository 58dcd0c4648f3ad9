/**
 * Requests, reservations and handles: the records every layer shares.
 */
import type { ResourceVector } from './vector.js';

export type Mode = 'hard' | 'soft';
/** What a grant does when preempted: stop and queue again, stop and fail, or be frozen until re-admitted. */
export type OnPreempt = 'requeue' | 'fail' | 'pause';
export type PreemptAction = 'pause' | 'evict';

export type ReservationState =
  'queued' | 'granted' | 'released' | 'expired' | 'preempted' | 'timed-out' | 'rejected' | 'cancelled';

export const ACTIVE_STATES: readonly ReservationState[] = ['queued', 'granted'];

export function isActive(state: ReservationState): boolean {
  return state === 'queued' || state === 'granted';
}

/** `target: any`: placement chooses the instance; the spec is kept so a waiter can move. */
export const ANY_INSTANCE = 'any';

/** How placement scores instances that fit: spread, pack, or even out the dimensions. */
export type PlacementStrategy = 'least-allocated' | 'most-allocated' | 'balanced';

export interface PlacementSpec {
  /** Label equality (`zone: a`) or inequality (`zone: !a`) an instance must satisfy. */
  readonly selector: Readonly<Record<string, string>>;
  readonly strategy: PlacementStrategy;
}

export interface PackageRef {
  readonly manager: string;
  readonly name: string;
  readonly version?: string;
}

/** Who holds a reservation: the process that asked (pid + start time identify it across pid reuse). */
export interface Holder {
  readonly host: string;
  readonly pid: number;
  /** Process start time in clock ticks since boot (/proc/<pid>/stat field 22); 0 when unknown. */
  readonly startTime: number;
  readonly owner: string;
}

export interface ReservationRequest {
  readonly packages: readonly PackageRef[];
  readonly command?: readonly string[];
  readonly requests: ResourceVector;
  readonly limits?: ResourceVector;
  /** An instance id, or `any` to let placement choose (see src/placement). */
  readonly target: string;
  /** With `target: any`: only instances whose labels match, and how to score them. */
  readonly placement?: PlacementSpec;
  readonly mode: Mode;
  readonly priority: number;
  /** Maximum lifetime of the grant, ms; undefined = none. */
  readonly timeLimitMs?: number;
  /** How long to wait in the queue, ms; undefined = without limit; 0 = fail fast. */
  readonly waitMs?: number;
  readonly preemptible: boolean;
  /** False when the request says it never preempts others. */
  readonly mayPreempt: boolean;
  readonly onPreempt: OnPreempt;
  readonly leaseMs: number;
  readonly holder: Holder;
  readonly idempotencyKey?: string;
  /** The reservation this one retries after a preemption, and which attempt it is. */
  readonly retryOf?: string;
  readonly attempt?: number;
}

/** One reservation as the ledger keeps it. Times are ms since the epoch; `seq` values are ledger-wide counters. */
export interface Reservation {
  readonly id: string;
  readonly instance: string;
  readonly state: ReservationState;
  readonly mode: Mode;
  readonly priority: number;
  readonly requests: ResourceVector;
  readonly limits?: ResourceVector;
  readonly preemptible: boolean;
  readonly mayPreempt: boolean;
  readonly onPreempt: OnPreempt;
  readonly packages: readonly PackageRef[];
  readonly command?: readonly string[];
  readonly holder: Holder;
  readonly tokenHash: string;
  /** Arrival order in the queue. */
  readonly arrival: number;
  readonly createdAt: number;
  readonly grantedAt?: number;
  /** Grant order (newest-first victim choice). */
  readonly grantSeq?: number;
  readonly leaseMs: number;
  readonly leaseExpiresAt?: number;
  readonly timeLimitMs?: number;
  /** grantedAt + timeLimitMs. */
  readonly deadline?: number;
  /** createdAt + waitMs for a queued request. */
  readonly waitDeadline?: number;
  /** Set on a granted reservation chosen as a preemption victim: it is being stopped. */
  readonly preemptRequestedAt?: number;
  readonly preemptedBy?: string;
  /** How the victim is to make room: freeze (frees cpu, diskIo, network) or stop. */
  readonly preemptAction?: PreemptAction;
  /** Set while the grant is frozen; it then holds only what pausing does not free. */
  readonly pausedAt?: number;
  /** Total time spent paused; it does not count against the time limit. */
  readonly pausedMs?: number;
  /** The installer's process group, so a dead holder's work can be stopped. */
  readonly pgid?: number;
  readonly endedAt?: number;
  readonly reason?: string;
  readonly idempotencyKey?: string;
  readonly retryOf?: string;
  readonly attempt: number;
  /** Set when placement chose the instance (`target: any`); a waiter may then move elsewhere. */
  readonly placement?: PlacementSpec;
  readonly usage?: Readonly<Record<string, number>>;
}

/** The grant a holder receives. The token is secret: it proves holdership for renew and release. */
export interface ReservationHandle {
  readonly id: string;
  readonly token: string;
  readonly instance: string;
  readonly granted: ResourceVector;
  readonly limits?: ResourceVector;
  readonly leaseExpiresAt: number;
  readonly deadline?: number;
}

/**
 * The request that asks again for what `r` asked for (a rerun after an agent restart, or a placed
 * waiter moving to another instance): same resources, priority, policy and holder; the remaining
 * wait if it had a limit. The idempotency key stays with the original.
 */
export function requestOf(r: Reservation, now: number): ReservationRequest {
  return {
    packages: r.packages,
    command: r.command,
    requests: r.requests,
    limits: r.limits,
    target: r.placement ? ANY_INSTANCE : r.instance,
    ...(r.placement ? { placement: r.placement } : {}),
    mode: r.mode,
    priority: r.priority,
    timeLimitMs: r.timeLimitMs,
    waitMs: r.waitDeadline !== undefined ? Math.max(1, r.waitDeadline - now) : undefined,
    preemptible: r.preemptible,
    mayPreempt: r.mayPreempt,
    onPreempt: r.onPreempt,
    leaseMs: r.leaseMs,
    holder: r.holder,
    retryOf: r.retryOf,
    attempt: r.attempt,
  };
}
