/**
 * What the pure core decides over: one instance and its active reservations, plus `now`.
 * The ledger reads a snapshot, the core returns a Transition, the ledger commits it atomically.
 */
import type { Reservation } from '../model/reservation.js';
import type { ResourceVector } from '../model/vector.js';
import type { AgentPresence } from '../model/presence.js';

export interface InstanceRecord {
  readonly id: string;
  readonly capacity: ResourceVector;
  readonly allocatable: ResourceVector;
  /** Bumped on every committed change to the instance's allocation (compare-and-swap for etcd). */
  readonly revision: number;
  /** Next arrival/grant counter. */
  readonly seq: number;
  readonly labels: Readonly<Record<string, string>>;
}

export interface InstanceSnapshot {
  readonly instance: InstanceRecord;
  /** Active (queued or granted) reservations of the instance. */
  readonly reservations: readonly Reservation[];
  /**
   * The instance's agent registered once and its lease has lapsed: nothing new is admitted and
   * every active reservation ends. Undefined for an instance no agent manages (embedded ledger).
   */
  readonly down?: boolean;
  /** The agent that registered the instance (informational; never read by decisions). */
  readonly agent?: AgentPresence;
}

export type EventType =
  | 'queued'
  | 'granted'
  | 'preempt-requested'
  | 'paused'
  | 'resumed'
  | 'released'
  | 'expired'
  | 'preempted'
  | 'timed-out'
  | 'rejected'
  | 'cancelled'
  | 'allocatable-set'
  | 'process-started'
  | 'measured';

export interface LedgerEvent {
  readonly at: number;
  readonly instance: string;
  readonly reservation?: string;
  readonly type: EventType;
  readonly from?: string;
  readonly to?: string;
  readonly reason: string;
  readonly by: string;
  readonly data?: Readonly<Record<string, unknown>>;
}

/** The result of one pure step: full new records to write, events to append. */
export interface Transition {
  readonly instance: InstanceRecord;
  readonly upserts: readonly Reservation[];
  readonly events: readonly LedgerEvent[];
}

export function granted(snap: InstanceSnapshot): Reservation[] {
  return snap.reservations.filter((r) => r.state === 'granted');
}

export function queued(snap: InstanceSnapshot): Reservation[] {
  return snap.reservations.filter((r) => r.state === 'queued');
}

/** Applies a transition to a snapshot (what the ledger does on commit), keeping only active records. */
export function applyTransition(snap: InstanceSnapshot, t: Transition): InstanceSnapshot {
  const byId = new Map(snap.reservations.map((r) => [r.id, r]));
  for (const r of t.upserts) byId.set(r.id, r);
  return {
    instance: t.instance,
    ...(snap.down ? { down: true } : {}),
    ...(snap.agent ? { agent: snap.agent } : {}),
    reservations: [...byId.values()].filter((r) => r.state === 'queued' || r.state === 'granted'),
  };
}
