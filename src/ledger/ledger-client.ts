/**
 * What clients (the CLI, the SDK, the runner) need from a ledger. The embedded CoreLedger and the
 * agent's HTTP client both implement it, so `rrm run` has one code path whether it talks to the
 * SQLite file directly or to an `rrm agent`.
 */
import type { Prediction } from '../admission/prediction.js';
import type { WaitStatus } from '../admission/schedule.js';
import type { InstanceRecord } from '../admission/snapshot.js';
import type { Reservation, ReservationRequest } from '../model/reservation.js';
import type { ResourceVector } from '../model/vector.js';
import type { Reserved } from './core-ledger.js';
import type { InstanceStatus } from '../placement/instance-status.js';
import type { EventFilter, ListFilter, StoredEvent } from './ledger.js';

export interface ReleaseWho {
  readonly token?: string;
  readonly admin?: boolean;
  readonly name?: string;
}

export interface ReleaseOptions {
  readonly end?: 'released' | 'timed-out';
  readonly reason?: string;
  readonly usage?: Record<string, number>;
}

export interface LedgerClient {
  instance(id: string): Promise<InstanceRecord | undefined>;
  instances(): Promise<InstanceRecord[]>;
  setAllocatable(
    id: string,
    allocatable: ResourceVector,
    capacity: ResourceVector,
    by: string,
  ): Promise<InstanceRecord>;
  reserve(request: ReservationRequest, opts?: { readonly token?: string }): Promise<Reserved>;
  /** What `reserve` would do now (grant, queue, preempt, reject), committing nothing. */
  predict(request: ReservationRequest): Promise<Prediction>;
  /** A placed waiter (`target: any`) moves where it is granted now, or is placed again if its instance went down. */
  relocate(id: string, token: string): Promise<Reservation>;
  /** Every instance with what is granted and free, and whether its agent is up. */
  instanceStatus(): Promise<InstanceStatus[]>;
  renew(id: string, token: string): Promise<Reservation>;
  setProcessGroup(id: string, token: string, pgid: number): Promise<Reservation>;
  acknowledgePause(id: string, token: string): Promise<Reservation>;
  release(id: string, who: ReleaseWho, opts?: ReleaseOptions): Promise<Reservation>;
  get(id: string): Promise<Reservation | undefined>;
  waitStatus(id: string): Promise<WaitStatus | undefined>;
  list(filter?: ListFilter): Promise<Reservation[]>;
  events(filter?: EventFilter): Promise<StoredEvent[]>;
  /** Reclaims dead holders and expired leases now (the agent does this itself; remotely a no-op). */
  sweep(instanceId: string): Promise<Reservation[]>;
  /** Calls `listener` soon after any committed change. Returns an unsubscribe. */
  watch(listener: () => void): () => void;
  close(): Promise<void>;
}
