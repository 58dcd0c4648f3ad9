/**
 * The Ledger speaks the domain: reserve, renew, release, reap, list. Each backend (SQLite today,
 * etcd next) implements the small `Store` below; the verbs are written once in CoreLedger on top
 * of it, so every backend shares the same decisions from the pure admission core.
 */
import type { InstanceRecord, InstanceSnapshot, LedgerEvent, Transition } from '../admission/snapshot.js';
import type { ReservationState, Reservation } from '../model/reservation.js';
import type { AgentPresence } from '../model/presence.js';

export type { AgentPresence };

export interface InstanceInit {
  readonly id: string;
  readonly capacity: Readonly<Record<string, number>>;
  readonly allocatable: Readonly<Record<string, number>>;
  readonly labels?: Readonly<Record<string, string>>;
}

/** An agent's hold on its instance. Lapsing (agent dead, partitioned past the TTL) marks it down. */
export interface Registration {
  /** Resolves if the registration was lost and could not be renewed. */
  readonly lost: Promise<void>;
  stop(): Promise<void>;
}

export interface ListFilter {
  readonly instance?: string;
  readonly states?: readonly ReservationState[];
  readonly limit?: number;
}

export interface EventFilter {
  readonly reservation?: string;
  readonly instance?: string;
  readonly afterSeq?: number;
  readonly limit?: number;
}

export interface StoredEvent extends LedgerEvent {
  readonly seq: number;
}

/** What a decision step returns to the store: the transition to commit and the caller's answer. */
export interface Decided<T> {
  readonly transition: Transition;
  readonly result: T;
}

/**
 * A backend. `transact` reads one instance's snapshot, calls `decide` (pure, synchronous, may
 * throw an RrmError to abort), and commits the transition atomically: all or nothing, and never
 * on top of a snapshot someone else changed meanwhile (SQLite: BEGIN IMMEDIATE; etcd: a Txn that
 * compares the instance's revision, retried on conflict). `decide` may therefore run more than
 * once for one call, so it must have no side effects.
 *
 * Event `seq` values are an opaque cursor that only ascends (SQLite counts 1, 2, 3; etcd derives
 * them from revisions); `events({afterSeq, limit})` returns the newest `limit` after the cursor.
 */
export interface Store {
  createInstance(init: InstanceInit, now: number): Promise<InstanceRecord>;
  instance(id: string): Promise<InstanceRecord | undefined>;
  instances(): Promise<InstanceRecord[]>;
  snapshot(instanceId: string): Promise<InstanceSnapshot | undefined>;
  /** Every instance's snapshot (what placement ranks), read at one point in time where possible. */
  snapshots(): Promise<InstanceSnapshot[]>;
  /**
   * Registers the calling agent as the live manager of an instance, kept alive every `ttlMs`/3.
   * Once registered, an instance whose registration lapses is `down` in its snapshots. The
   * embedded SQLite ledger has one instance on one host: registering is accepted and never lapses.
   */
  register(instanceId: string, agent: AgentPresence, ttlMs: number): Promise<Registration>;
  transact<T>(instanceId: string, decide: (snap: InstanceSnapshot) => Decided<T>): Promise<T>;
  reservation(id: string): Promise<Reservation | undefined>;
  byIdempotencyKey(key: string): Promise<Reservation | undefined>;
  list(filter: ListFilter): Promise<Reservation[]>;
  events(filter: EventFilter): Promise<StoredEvent[]>;
  /** Appends an event outside any allocation change (measurements). */
  appendEvent(event: LedgerEvent): Promise<void>;
  /** Calls `listener` soon after any committed change, from any process. Returns an unsubscribe. */
  watch(listener: () => void): () => void;
  close(): Promise<void>;
}
