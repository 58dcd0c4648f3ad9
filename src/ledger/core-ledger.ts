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
  INSTANCE_DOWN_REASON,
  type Caller,
  type Reclaimed,
  type SubmitOutcome,
} from '../admission/transitions.js';
import { predict, type Prediction } from '../admission/prediction.js';
import type { WaitStatus } from '../admission/schedule.js';
import type { InstanceRecord, InstanceSnapshot, LedgerEvent } from '../admission/snapshot.js';
import { isRrmError, RrmError } from '../model/errors.js';
import {
  ANY_INSTANCE,
  isActive,
  requestOf,
  type PlacementSpec,
  type Reservation,
  type ReservationRequest,
} from '../model/reservation.js';
import {
  DEFAULT_STRATEGY,
  rankInstances,
  type Candidate,
  type Fit,
  type Ranking,
} from '../placement/place.js';
import { formatSelector } from '../placement/selector.js';
import { instanceStatus, type InstanceStatus } from '../placement/instance-status.js';
import type { ResourceVector } from '../model/vector.js';
import type { Decided, EventFilter, InstanceInit, ListFilter, Store, StoredEvent } from './ledger.js';
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

/** Placement rounds before the best candidate is taken as it is. */
const PLACEMENT_ROUNDS = 3;
const FIT_RANK: Readonly<Record<Fit, number>> = { grant: 0, preempt: 1, wait: 2, never: 3 };
/**
 * Thrown inside a placement transaction whose outcome would be worse than ranked: nothing is
 * written (stores pass an RrmError from `decide` through unchanged) and the next candidate is tried.
 */
const RACE_LOST = new RrmError(
  'RRM_ERR_LEDGER',
  'placement: other writers kept changing the instances first',
);

/** Thrown from a decision that finds something due for reclaiming: sweep, then decide again. */
const SWEEP_FIRST = new RrmError('RRM_ERR_LEDGER', 'reservations due for reclaiming must be swept first');
/** Sweeps one decision may ask for before it goes ahead regardless (the sweep could not end them). */
const MAX_SWEEPS = 3;
const RECENT_MAX = 10_000;

function fitOf(o: SubmitOutcome): Fit {
  if (o.kind === 'granted') return 'grant';
  if (o.kind === 'queued') return o.status.victims.length > 0 ? 'preempt' : 'wait';
  return 'never';
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export function newReservationId(): string {
  return `rsv_${randomBytes(12).toString('base64url')}`;
}

export class CoreLedger implements LedgerClient {
  /** Reservation id → instance, for the reservations this process made (bounded, oldest out). */
  private readonly recent = new Map<string, string>();

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
    if (request.target === ANY_INSTANCE) return this.place(request, token, opts.admit);
    const id = newReservationId();
    try {
      const outcome = await this.transactSwept(request.target, (snap) => {
        opts.admit?.(snap);
        const step = submit(snap, { id, tokenHash: hashToken(token), request }, this.env.now());
        return { transition: step, result: step.outcome };
      });
      this.remember(outcome.reservation);
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

  /**
   * `target: any`: rank every instance (src/placement), then submit on the best. A submission that
   * would now do worse than the ranking promised (another writer got there first) is not
   * committed; the next candidate is tried, and after a few rounds the best is taken as it is.
   */
  private async place(
    request: ReservationRequest,
    token: string,
    admit: ReserveOptions['admit'],
    exclude: ReadonlySet<string> = new Set(),
    only: Fit = 'wait',
  ): Promise<Reserved> {
    const spec: PlacementSpec = request.placement ?? { selector: {}, strategy: DEFAULT_STRATEGY };
    const tokenHash = hashToken(token);
    const ask = (c: Candidate, accept: Fit): Promise<SubmitOutcome | undefined> => {
      const id = newReservationId();
      return this.transactSwept(c.instance, (snap) => {
        admit?.(snap);
        const step = submit(
          snap,
          { id, tokenHash, request: { ...request, target: c.instance, placement: spec } },
          this.env.now(),
        );
        if (FIT_RANK[fitOf(step.outcome)] > FIT_RANK[accept]) throw RACE_LOST;
        return { transition: step, result: step.outcome };
      })
        .then((outcome) => {
          this.remember(outcome.reservation);
          return outcome;
        })
        .catch((e: unknown) => {
          if (e === RACE_LOST) return undefined;
          throw e;
        });
    };
    let best: Candidate | undefined;
    for (let round = 0; round < PLACEMENT_ROUNDS; round++) {
      const snaps = await this.store.snapshots();
      for (const s of snaps) if (s.down && s.reservations.length > 0) await this.sweep(s.instance.id);
      const ranking = rankInstances(
        snaps,
        request,
        spec,
        this.env.now(),
        exclude,
        randomBytes(6).toString('hex'),
      );
      best = ranking.candidates[0] ?? ranking.never[0];
      if (!best) {
        const why = ranking.excluded.map(
          (x) => `${x.instance} (${x.why === 'down' ? 'down' : 'labels differ'})`,
        );
        const sel = formatSelector(spec.selector);
        throw new RrmError(
          'RRM_ERR_NO_INSTANCE',
          `no instance is up${sel ? ` with labels ${sel}` : ''}${why.length ? `: ${why.join(', ')}` : ''}`,
          { selector: spec.selector, excluded: ranking.excluded },
        );
      }
      if (ranking.candidates.length === 0) break; // it can never fit anywhere: rejected below
      const tries = ranking.candidates.filter(
        (c) => FIT_RANK[c.fit] <= FIT_RANK[only] && !(c.fit === 'wait' && request.waitMs === 0),
      );
      if (tries.length === 0) break;
      for (const c of tries) {
        const outcome = await ask(c, c.fit);
        if (outcome) return { outcome, token };
      }
      // Every candidate changed under us: rank again on fresh snapshots.
    }
    if (only !== 'wait') throw RACE_LOST;
    // Nothing better held: take the best as it now is (queued, fail-fast rejection, or unsatisfiable).
    const outcome = await ask(best as Candidate, 'never');
    return { outcome: outcome as SubmitOutcome, token };
  }

  /**
   * A placed waiter looks for a better place: if another instance would grant it now, it is
   * granted there and its queued place is given up; if its instance went down, it is placed
   * again. Returns the reservation that now stands for the request (the same one if nothing moved).
   */
  /** What `reserve` would do now, decided on the instance's current state and committing nothing. */
  async predict(request: ReservationRequest): Promise<Prediction> {
    await this.sweep(request.target);
    const snap = await this.store.snapshot(request.target);
    if (!snap)
      throw new RrmError('RRM_ERR_NOT_FOUND', `no instance ${request.target}`, { instance: request.target });
    return predict(snap, request, this.env.now());
  }

  async relocate(id: string, token: string): Promise<Reservation> {
    const r = await this.mustGet(id);
    if (r.tokenHash !== hashToken(token)) {
      throw new RrmError('RRM_ERR_NOT_HOLDER', `reservation ${id} is held by someone else`, { id });
    }
    if (!r.placement) return r;
    const request = requestOf(r, this.env.now());
    if (r.state === 'expired' && r.reason === INSTANCE_DOWN_REASON) {
      const { outcome } = await this.place(request, token, undefined, new Set([r.instance]));
      return outcome.reservation;
    }
    if (r.state !== 'queued') return r;
    let moved: Reserved;
    try {
      moved = await this.place(request, token, undefined, new Set([r.instance]), 'grant');
    } catch (e) {
      if (e === RACE_LOST || (isRrmError(e) && e.code === 'RRM_ERR_NO_INSTANCE')) return r;
      throw e;
    }
    const there = moved.outcome.reservation;
    await this.release(id, { token }, { reason: `placed on ${there.instance} instead` });
    return there;
  }

  /**
   * How placement would rank the instances for `request` now (the `target: any` ranking; nothing
   * is committed), with every instance's status.
   */
  async rank(request: ReservationRequest): Promise<{ ranking: Ranking; statuses: InstanceStatus[] }> {
    const snaps = await this.store.snapshots();
    const spec = request.placement ?? { selector: {}, strategy: DEFAULT_STRATEGY };
    const salt = randomBytes(6).toString('hex');
    const ranking = rankInstances(snaps, request, spec, this.env.now(), new Set(), salt);
    return { ranking, statuses: snaps.map(instanceStatus) };
  }

  /** Every instance with what is granted and free, and whether its agent is up. */
  async instanceStatus(): Promise<InstanceStatus[]> {
    return (await this.store.snapshots()).map(instanceStatus);
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

  /** Renews the lease: the holder with its token, or an admin (`admin`, acting without one). */
  async renew(
    id: string,
    token: string | undefined,
    admin?: { readonly name: string },
  ): Promise<Reservation> {
    const r = await this.mustGet(id);
    if (!isActive(r.state)) {
      throw new RrmError('RRM_ERR_NOT_GRANTED', `reservation ${id} is ${r.state}: ${r.reason ?? ''}`.trim(), {
        id,
        state: r.state,
      });
    }
    return this.store.transact(r.instance, (snap) => {
      const caller: Caller = admin
        ? { tokenHash: token ? hashToken(token) : undefined, admin: true, name: admin.name }
        : this.holderCaller(token ?? '');
      const step = renew(snap, id, caller, this.env.now());
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
    const tokenHash = who.token ? hashToken(who.token) : undefined;
    const admin = who.admin ?? false;
    const instance = this.recent.get(id) ?? (await this.mustGet(id)).instance;
    const ended = await this.store.transact(instance, (snap) => {
      const r = snap.reservations.find((x) => x.id === id);
      if (!r) return { transition: { instance: snap.instance, upserts: [], events: [] }, result: undefined };
      const caller: Caller = { tokenHash, admin, name: who.name ?? r.holder.owner };
      const step = release(snap, { id, caller, ...opts }, this.env.now()); // refuses a stranger
      return { transition: step, result: step.outcome };
    });
    this.recent.delete(id);
    if (ended) return ended;
    // Not active any more: answer with the stored record, to its holder or an admin only.
    const r = await this.mustGet(id);
    if (!admin && tokenHash !== r.tokenHash) {
      throw new RrmError('RRM_ERR_NOT_HOLDER', `reservation ${id} is held by someone else`, { id });
    }
    return r;
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
    if (!snap) {
      throw new RrmError(
        'RRM_ERR_NOT_FOUND',
        `no instance ${instanceId} in the ledger (on a fleet ledger an instance exists once its rrm agent has registered it)`,
        { instance: instanceId },
      );
    }
    const policy = { deadHolders: this.deadHolders(snap), forceAfterMs: this.env.forceAfterMs };
    const due = findReclaimable(snap, policy, this.env.now());
    if (due.length === 0) return [];
    // Work runs on the holder's host: only there can its process group and cgroup be stopped.
    await Promise.all(
      due.filter((c) => c.reservation.holder.host === this.env.hostname).map((c) => this.env.reclaimWork(c)),
    );
    const stopped = new Set(due.map((c) => c.reservation.id));
    return this.store.transact(instanceId, (fresh) => {
      const now = this.env.now();
      const reclaimed = findReclaimable(
        fresh,
        { ...policy, deadHolders: this.deadHolders(fresh) },
        now,
      ).filter((c) => stopped.has(c.reservation.id));
      // Nothing of it is due on this state: say so with an empty transition, so a store deciding
      // on a cached state reads the current one before concluding there is nothing to do.
      if (reclaimed.length === 0)
        return { transition: { instance: fresh.instance, upserts: [], events: [] }, result: [] };
      const step = reap(fresh, reclaimed, now);
      return { transition: step, result: step.outcome };
    });
  }

  close(): Promise<void> {
    return this.store.close();
  }

  /**
   * `transact`, but a decision on a state where something is due for reclaiming (a dead holder, a
   * lapsed lease, a down instance…) sweeps first, since stopping that work is I/O the decision
   * may not do, then decides again. When nothing is due (the usual case) this costs no extra read.
   */
  private async transactSwept<T>(
    instanceId: string,
    decide: (snap: InstanceSnapshot) => Decided<T>,
  ): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.store.transact(instanceId, (snap) => {
          if (attempt < MAX_SWEEPS && this.hasDue(snap)) throw SWEEP_FIRST;
          return decide(snap);
        });
      } catch (e) {
        if (e !== SWEEP_FIRST) throw e;
        await this.sweep(instanceId);
      }
    }
  }

  private hasDue(snap: InstanceSnapshot): boolean {
    const policy = { deadHolders: this.deadHolders(snap), forceAfterMs: this.env.forceAfterMs };
    return findReclaimable(snap, policy, this.env.now()).length > 0;
  }

  /** Which instance a reservation this process made lives on, so releasing it needs no lookup. */
  private remember(r: Reservation): void {
    if (!isActive(r.state)) return;
    if (this.recent.size >= RECENT_MAX) this.recent.delete(this.recent.keys().next().value as string);
    this.recent.set(r.id, r.instance);
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
