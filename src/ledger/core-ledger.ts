/**
 * The domain verbs over any Store: each is one atomic step of the pure core. Liveness of holders
 * and killing orphaned process groups are this layer's I/O, injected so tests and other hosts can
 * supply their own.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  acknowledgePause,
  findReclaimable,
  recordProcessGroup,
  reap,
  release,
  renew,
  setAllocatable,
  submit,
  waitStatus,
  type Caller,
  type Reclaimed,
  type SubmitOutcome,
} from '../admission/transitions.js';
import type { WaitStatus } from '../admission/schedule.js';
import type { InstanceRecord, InstanceSnapshot, LedgerEvent } from '../admission/snapshot.js';
import { RrmError } from '../model/errors.js';
import { isActive, type Reservation, type ReservationRequest } from '../model/reservation.js';
import type { ResourceVector } from '../model/vector.js';
import type { EventFilter, InstanceInit, ListFilter, Store, StoredEvent } from './ledger.js';
import type { LedgerClient, ReleaseOptions, ReleaseWho } from './ledger-client.js';

export interface LedgerEnvironment {
  readonly now: () => number;
  readonly hostname: string;
  /** Whether a holder on this host is still alive. */
  readonly isHolderAlive: (pid: number, startTime: number) => boolean;
  /**
   * Stops whatever a reclaimed grant left running (its process group, its cgroup) and cleans up
   * after it. Called before the resources are handed on; must be idempotent.
   */
  readonly reclaimWork: (r: Reclaimed) => Promise<void>;
  /** How long a victim or an over-time grant may take to stop before it is forced. */
  readonly forceAfterMs: number;
}

export interface Reserved {
  readonly outcome: SubmitOutcome;
  /** The secret proving holdership; only returned to the submitter. */
  readonly token: string;
}

export interface ReserveOptions {
  readonly token?: string;
  readonly admit?: (snap: InstanceSnapshot) => void;
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export function newReservationId(): string {
  return `rsv_${randomBytes(12).toString('base64url')}`;
}

export class CoreLedger implements LedgerClient {
  constructor(
    readonly store: Store,
    private readonly env: LedgerEnvironment,
  ) {}

  async ensureInstance(init: InstanceInit): Promise<InstanceRecord> {
    return (await this.store.instance(init.id)) ?? this.store.createInstance(init, this.env.now());
  }

  instance(id: string): Promise<InstanceRecord | undefined> {
    return this.store.instance(id);
  }

  instances(): Promise<InstanceRecord[]> {
    return this.store.instances();
  }

  async setAllocatable(
    id: string,
    allocatable: ResourceVector,
    capacity: ResourceVector,
    by: string,
  ): Promise<InstanceRecord> {
    await this.sweep(id);
    return this.store.transact(id, (snap) => {
      const step = setAllocatable(snap, allocatable, capacity, this.env.now(), by);
      return { transition: step, result: step.instance };
    });
  }

  /**
   * Submits a request: granted now, queued with a position, or rejected with the shortfall.
   * `admit` runs inside the admission transaction and may throw to refuse (quotas); `token` lets a
   * caller choose the holder token, so a retried request with the same idempotency key gets the
   * same reservation back.
   */
  async reserve(request: ReservationRequest, opts: ReserveOptions = {}): Promise<Reserved> {
    const token = opts.token ?? randomBytes(24).toString('base64url');
    if (request.idempotencyKey) {
      const prior = await this.store.byIdempotencyKey(request.idempotencyKey);
      if (prior) return this.replay(prior, token);
    }
    await this.sweep(request.target);
    const id = newReservationId();
    try {
      const outcome = await this.store.transact(request.target, (snap) => {
        opts.admit?.(snap);
        const step = submit(snap, { id, tokenHash: hashToken(token), request }, this.env.now());
        return { transition: step, result: step.outcome };
      });
      return { outcome, token };
    } catch (e) {
      // Two submissions raced with one idempotency key: the loser answers with the winner's.
      const prior = request.idempotencyKey
        ? await this.store.byIdempotencyKey(request.idempotencyKey)
        : undefined;
      if (prior) return this.replay(prior, token);
      throw e;
    }
  }

  private async replay(prior: Reservation, token: string): Promise<Reserved> {
    if (prior.tokenHash !== hashToken(token)) {
      throw new RrmError('RRM_ERR_IDEMPOTENCY_CONFLICT', `idempotency key already used by ${prior.id}`, {
        id: prior.id,
      });
    }
    if (prior.state === 'granted') return { outcome: { kind: 'granted', reservation: prior }, token };
    if (prior.state === 'queued') {
      const status = await this.waitStatus(prior.id);
      if (status) return { outcome: { kind: 'queued', reservation: prior, status }, token };
    }
    return {
      outcome: {
        kind: 'rejected',
        reservation: prior,
        code: 'RRM_ERR_CAPACITY_SHORT',
        shortfall: [],
        ahead: [],
      },
      token,
    };
  }

  async renew(id: string, token: string): Promise<Reservation> {
    const r = await this.mustGet(id);
    if (!isActive(r.state)) {
      throw new RrmError('RRM_ERR_NOT_GRANTED', `reservation ${id} is ${r.state}: ${r.reason ?? ''}`.trim(), {
        id,
        state: r.state,
      });
    }
    return this.store.transact(r.instance, (snap) => {
      const step = renew(snap, id, this.holderCaller(token), this.env.now());
      return { transition: step, result: step.outcome };
    });
  }

  async setProcessGroup(id: string, token: string, pgid: number): Promise<Reservation> {
    const r = await this.mustGet(id);
    return this.store.transact(r.instance, (snap) => {
      const step = recordProcessGroup(snap, id, this.holderCaller(token), pgid, this.env.now());
      return { transition: step, result: step.outcome };
    });
  }

  /**
   * Ends a reservation. Idempotent: releasing one that already ended returns it unchanged.
   * Pass the token as holder, or `admin` to release someone else's.
   */
  async release(id: string, who: ReleaseWho, opts: ReleaseOptions = {}): Promise<Reservation> {
    const r = await this.mustGet(id);
    const caller: Caller = {
      tokenHash: who.token ? hashToken(who.token) : undefined,
      admin: who.admin ?? false,
      name: who.name ?? r.holder.owner,
    };
    if (!caller.admin && caller.tokenHash !== r.tokenHash) {
      throw new RrmError('RRM_ERR_NOT_HOLDER', `reservation ${id} is held by someone else`, { id });
    }
    if (!isActive(r.state)) return r;
    await this.store.transact(r.instance, (snap) => {
      if (!snap.reservations.some((x) => x.id === id)) {
        return { transition: { instance: snap.instance, upserts: [], events: [] }, result: undefined };
      }
      const step = release(snap, { id, caller, ...opts }, this.env.now());
      return { transition: step, result: step.outcome };
    });
    return this.mustGet(id);
  }

  get(id: string): Promise<Reservation | undefined> {
    return this.store.reservation(id);
  }

  async waitStatus(id: string): Promise<WaitStatus | undefined> {
    const r = await this.store.reservation(id);
    if (!r || r.state !== 'queued') return undefined;
    const snap = await this.store.snapshot(r.instance);
    return snap ? waitStatus(snap, id, this.env.now()) : undefined;
  }

  list(filter: ListFilter = {}): Promise<Reservation[]> {
    return this.store.list(filter);
  }

  events(filter: EventFilter = {}): Promise<StoredEvent[]> {
    return this.store.events(filter);
  }

  recordEvent(event: Omit<LedgerEvent, 'at'>): Promise<void> {
    return this.store.appendEvent({ ...event, at: this.env.now() });
  }

  watch(listener: () => void): () => void {
    return this.store.watch(listener);
  }

  /** The holder froze its command as it was asked to: hand on what pausing freed. */
  async acknowledgePause(id: string, token: string): Promise<Reservation> {
    const r = await this.mustGet(id);
    return this.store.transact(r.instance, (snap) => {
      const step = acknowledgePause(snap, id, this.holderCaller(token), this.env.now());
      return { transition: step, result: step.outcome };
    });
  }

  /**
   * Reclaims what must end on an instance: dead holders, lapsed leases, wait limits, victims and
   * over-time grants that did not stop. Their work is stopped first (process group, cgroup), then
   * one transaction ends them and hands their resources on. Cheap when there is nothing to do: one read.
   */
  async sweep(instanceId: string): Promise<Reservation[]> {
    const snap = await this.store.snapshot(instanceId);
    if (!snap) throw new RrmError('RRM_ERR_NOT_FOUND', `no instance ${instanceId}`, { instance: instanceId });
    const policy = { deadHolders: this.deadHolders(snap), forceAfterMs: this.env.forceAfterMs };
    const due = findReclaimable(snap, policy, this.env.now());
    if (due.length === 0) return [];
    await Promise.all(due.map((c) => this.env.reclaimWork(c)));
    const stopped = new Set(due.map((c) => c.reservation.id));
    return this.store.transact(instanceId, (fresh) => {
      const now = this.env.now();
      const reclaimed = findReclaimable(
        fresh,
        { ...policy, deadHolders: this.deadHolders(fresh) },
        now,
      ).filter((c) => stopped.has(c.reservation.id));
      const step = reap(fresh, reclaimed, now);
      return { transition: step, result: step.outcome };
    });
  }

  close(): Promise<void> {
    return this.store.close();
  }

  private deadHolders(snap: InstanceSnapshot): Set<string> {
    const dead = new Set<string>();
    for (const r of snap.reservations) {
      const h = r.holder;
      if (h.host === this.env.hostname && !this.env.isHolderAlive(h.pid, h.startTime)) dead.add(r.id);
    }
    return dead;
  }

  private holderCaller(token: string): Caller {
    return { tokenHash: hashToken(token), admin: false, name: 'holder' };
  }

  private async mustGet(id: string): Promise<Reservation> {
    const r = await this.store.reservation(id);
    if (!r) throw new RrmError('RRM_ERR_NOT_FOUND', `no reservation ${id}`, { id });
    return r;
  }
}
