/**
 * The fleet ledger: the Store over an etcd cluster (the `etcd3` client), with the same semantics
 * as the SQLite store. The key layout is documented in etcd-keys.ts.
 *
 * transact(instance, decide):
 *   1. Read the instance record and its active reservations in one read-only Txn (one revision),
 *      noting the instance key's mod_revision M.
 *   2. Call `decide` (pure, synchronous). An RrmError it throws propagates unchanged; nothing is
 *      written. An empty transition writes nothing.
 *   3. Commit everything in ONE Txn whose compare is `mod_revision(instance) == M` (plus
 *      `create_revision(idempotency/<key>) == 0` for new reservations carrying a key). The instance
 *      record's `revision` goes up by one, and `commits/<instance>/<revision>` records the id of
 *      this attempt.
 *   4. If the compare failed, the else branch of the same Txn returns the fresh snapshot: decide
 *      again on it at once (after a few conflicts: jittered backoff and a re-read), up to
 *      `maxConflicts` conflicts.
 *   The state a store committed last on an instance is kept; its next transaction there decides
 *   on that instead of reading first (the compare still guards it). A cached state only counts
 *   when the commit succeeds: a refusal or an empty decision on it is made again on a fresh read.
 *   A commit whose reply was lost (member died, deadline, leader change) may or may not have been
 *   applied. The attempt id in the commit marker settles it: before deciding again the store
 *   reads the marker of the revision the lost attempt would have written; if it is ours, the
 *   lost attempt committed and its result is returned, so a decision is never applied twice.
 *   Transient failures are retried on other members until `timeoutMs` runs out, then reported
 *   as RRM_ERR_LEDGER naming the endpoints.
 *
 * One process never competes with itself: its transactions on one instance queue locally, and
 * those that wait meanwhile are committed together as one transaction (group-commit.ts);
 * optimistic retries happen only between processes. The `timeoutMs` budget starts
 * when `transact` is called, queueing included.
 *
 * Limits: one transaction must fit etcd's --max-txn-ops (default 128 operations: about 4 per
 * reservation written, 4 fixed), or it fails with RRM_ERR_LEDGER saying so. Listing all
 * reservations or events newest first pages through etcd sorted ranges, which the server sorts
 * in memory: fine for thousands of records, not for millions.
 *
 * Presence: an agent registers its instance by writing `agents/<i>` and `alive/<i>`, the latter
 * bound to an etcd lease it keeps alive. Snapshots read both in the same read: registered but not
 * alive means down. The commit compares the alive key's create revision as read, so nothing is
 * granted on an instance whose agent's lease lapsed (or came back) since.
 *
 * Leases and expiry: rrm enforces the expiry of active reservations from the record's own
 * timestamps (etcd resets lease TTLs on a leader change, so a lease is not a clock). etcd leases
 * garbage-collect what has ended: the record and idempotency key of a reservation that ends are
 * bound to a retention lease (`retentionMs`, default 7 days; see retentionLease), and etcd deletes
 * them when it expires. Events stay until an operator prunes them.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CompareResult,
  CompareTarget,
  Etcd3,
  SortOrder,
  SortTarget,
  type ICompare,
  type IKeyValue,
  type IOptions,
  type IRangeRequest,
  type IRequestOp,
  type IResponseOp,
  type ITxnRequest,
  type Watcher,
} from 'etcd3';
import {
  applyTransition,
  type InstanceRecord,
  type InstanceSnapshot,
  type LedgerEvent,
  type Transition,
} from '../../admission/snapshot.js';
import { RrmError, isRrmError } from '../../model/errors.js';
import { isActive, type Reservation } from '../../model/reservation.js';
import type {
  AgentPresence,
  Decided,
  EventFilter,
  InstanceInit,
  ListFilter,
  Registration,
  Store,
  StoredEvent,
} from '../ledger.js';
import { COMMIT_MARKER_RETENTION, EtcdKeys, SEQ_PER_REVISION, padRevision, prefixEnd } from './etcd-keys.js';
import { isTransient, ledgerError } from './etcd-errors.js';
import { compose, GroupCommitter, type Member } from './group-commit.js';
import { faultHandling } from './member-breaker.js';

export interface EtcdStoreOptions {
  /** Client URLs of the members, e.g. `http://10.0.0.1:2379` (https for TLS). */
  readonly hosts: readonly string[];
  /** Key prefix; default `/rrm/`. Must end with `/`. */
  readonly prefix?: string;
  /** TLS: CA, and a client certificate for mutual TLS. Passed to the etcd3 client. */
  readonly credentials?: IOptions['credentials'];
  /** etcd user/password authentication. Passed to the etcd3 client. */
  readonly auth?: IOptions['auth'];
  readonly grpcOptions?: IOptions['grpcOptions'];
  /** Budget of one store call including retries across members and elections; default 5000 ms. */
  readonly timeoutMs?: number;
  /** Deadline of one RPC, capped by the call's budget; default 2000 ms. */
  readonly rpcTimeoutMs?: number;
  /** Commits by other writers one transact tolerates before it gives up; default 64. */
  readonly maxConflicts?: number;
  /** Keys per page when listing reservations or events newest first; default 256. */
  readonly pageSize?: number;
  /**
   * How long the record of an ended reservation is kept: its keys are bound to an etcd lease that
   * expires then, and etcd deletes them. Default 7 days; 0 keeps them until pruned by hand.
   */
  readonly retentionMs?: number;
}

interface CompiledOptions {
  readonly hosts: readonly string[];
  readonly prefix: string;
  readonly timeoutMs: number;
  readonly rpcTimeoutMs: number;
  readonly maxConflicts: number;
  readonly pageSize: number;
  readonly retentionMs: number;
}

/** Counters since the store was opened; tests and metrics read them. */
export interface EtcdStoreStats {
  /** Transactions committed. */
  commits: number;
  /** Commits refused because another writer changed the instance first. */
  conflicts: number;
  /** Calls retried after a transient failure (member down, election, deadline). */
  transientRetries: number;
  /** Commits whose reply was lost. */
  ambiguousCommits: number;
  /** Of those, found committed through their marker (and not decided again). */
  recoveredCommits: number;
  /** Commits tried on this store's last-commit state that another process had changed meanwhile. */
  staleCache: number;
  /** Commits that carried the decisions of several waiting transactions at once. */
  batchedCommits: number;
}

interface StoredInstance extends InstanceRecord {
  readonly updatedAt?: number;
  /** The attempt id of the commit that wrote this version. */
  readonly txn?: string;
}

interface EventsValue {
  readonly txn?: string;
  readonly events: readonly LedgerEvent[];
}

interface EventIndexValue {
  readonly events: readonly (readonly [number, LedgerEvent])[];
}

interface SnapshotRead {
  readonly kv: IKeyValue | undefined;
  readonly snap: InstanceSnapshot | undefined;
  /** Commit markers read along, by instance revision. */
  readonly markers: ReadonlyMap<number, string>;
  /** The instance has an agent registration: commits compare its alive key (see commitRequest). */
  readonly managed?: boolean;
  /** create_revision of the alive key as read; '0' when absent (down). */
  readonly aliveCreate?: string;
}

interface Attempt<T> {
  readonly id: string;
  /** The instance revision this attempt would have written. */
  readonly rev: number;
  readonly result: T;
}

type CallOptions = { deadline: number };

/**
 * Decisions committed together at most (see group-commit.ts): about 4 etcd operations per
 * reservation written, so a batch stays well inside etcd's default --max-txn-ops of 128.
 */
const GROUP_MAX = 8;

/** Reads of the agent and alive keys that follow the markers in a snapshot read. */
const PRESENCE_OPS = 2;

/** Conflicts retried at once on the else branch's state before backing off. */
const IMMEDIATE_RETRIES = 4;

export function compileEtcdStoreOptions(opts: EtcdStoreOptions): CompiledOptions {
  const hosts = [...opts.hosts];
  if (hosts.length === 0 || hosts.some((h) => typeof h !== 'string' || h.trim() === '')) {
    throw new RrmError(
      'RRM_ERR_BAD_REQUEST',
      'the etcd ledger needs at least one endpoint (host:port or URL)',
    );
  }
  const prefix = opts.prefix ?? '/rrm/';
  if (!prefix.endsWith('/')) {
    throw new RrmError(
      'RRM_ERR_BAD_REQUEST',
      `the etcd key prefix must end with "/": ${JSON.stringify(prefix)}`,
    );
  }
  const positive = (name: string, v: number | undefined, dflt: number): number => {
    const n = v ?? dflt;
    if (!Number.isFinite(n) || n <= 0)
      throw new RrmError('RRM_ERR_BAD_REQUEST', `etcd ledger option ${name} must be a positive number`);
    return n;
  };
  const timeoutMs = positive('timeoutMs', opts.timeoutMs, 5_000);
  return Object.freeze({
    hosts: Object.freeze(hosts),
    prefix,
    timeoutMs,
    rpcTimeoutMs: Math.min(positive('rpcTimeoutMs', opts.rpcTimeoutMs, 2_000), timeoutMs),
    maxConflicts: positive('maxConflicts', opts.maxConflicts, 64),
    pageSize: Math.ceil(positive('pageSize', opts.pageSize, 256)),
    retentionMs: opts.retentionMs === 0 ? 0 : positive('retentionMs', opts.retentionMs, 7 * 24 * 3600 * 1000),
  });
}

export class EtcdStore implements Store {
  readonly keys: EtcdKeys;
  private readonly opts: CompiledOptions;
  private readonly client: Etcd3;
  private readonly batches = new GroupCommitter((id, batch) => this.commitBatch(id, batch), GROUP_MAX);
  private readonly listeners = new Set<() => void>();
  private watcher: Promise<Watcher | undefined> | undefined;
  private closed = false;
  private readonly counters: EtcdStoreStats = {
    commits: 0,
    conflicts: 0,
    transientRetries: 0,
    ambiguousCommits: 0,
    recoveredCommits: 0,
    staleCache: 0,
    batchedCommits: 0,
  };
  /** Per instance: the state this store committed last (see `remember`). */
  private readonly lastCommit = new Map<string, SnapshotRead>();
  /** The lease records of reservations ending now are bound to (see retentionLease). */
  private retention: { readonly id: string; readonly until: number } | undefined;

  constructor(opts: EtcdStoreOptions) {
    this.opts = compileEtcdStoreOptions(opts);
    this.keys = new EtcdKeys(this.opts.prefix);
    this.client = new Etcd3({
      hosts: [...this.opts.hosts],
      ...(opts.credentials ? { credentials: opts.credentials } : {}),
      ...(opts.auth ? { auth: opts.auth } : {}),
      ...(opts.grpcOptions ? { grpcOptions: opts.grpcOptions } : {}),
      faultHandling: faultHandling({ failures: 2, openMs: 1000 }),
      // Watch streams have no deadline; every unary call gets one from this store.
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + this.opts.rpcTimeoutMs }),
    });
  }

  get endpoints(): readonly string[] {
    return this.opts.hosts;
  }

  stats(): Readonly<EtcdStoreStats> {
    return { ...this.counters };
  }

  async createInstance(init: InstanceInit, now: number): Promise<InstanceRecord> {
    const key = this.keys.instance(init.id);
    const record: StoredInstance = {
      id: init.id,
      capacity: init.capacity,
      allocatable: init.allocatable,
      labels: init.labels ?? {},
      revision: 0,
      seq: 0,
      updatedAt: now,
    };
    // Create-if-absent is idempotent, so a lost reply may be retried.
    await this.retrying(`cannot create instance ${init.id}`, (o) =>
      this.client.kv.txn(
        {
          compare: [
            { key: buf(key), target: CompareTarget.Create, result: CompareResult.Equal, create_revision: 0 },
          ],
          success: [put(key, JSON.stringify(record))],
          failure: [],
        },
        o,
      ),
    );
    return (await this.instance(init.id)) as InstanceRecord;
  }

  async instance(id: string): Promise<InstanceRecord | undefined> {
    const res = await this.retrying(`cannot read instance ${id}`, (o) =>
      this.client.kv.range({ key: buf(this.keys.instance(id)) }, o),
    );
    const kv = res.kvs[0];
    return kv ? toInstance(parse<StoredInstance>(kv)) : undefined;
  }

  async instances(): Promise<InstanceRecord[]> {
    const res = await this.retrying('cannot list instances', (o) =>
      this.client.kv.range(rangeOf(this.keys.instancesPrefix()), o),
    );
    return res.kvs
      .map((kv) => toInstance(parse<StoredInstance>(kv)))
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  async snapshot(instanceId: string): Promise<InstanceSnapshot | undefined> {
    const read = await this.retrying(`cannot read instance ${instanceId}`, (o) =>
      this.readSnapshot(instanceId, [], o),
    );
    this.keepRead(instanceId, read);
    return read.snap;
  }

  async snapshots(): Promise<InstanceSnapshot[]> {
    const k = this.keys;
    const res = await this.retrying('cannot read the instances', (o) =>
      this.client.kv.txn(
        {
          compare: [],
          success: [k.instancesPrefix(), k.activeAllPrefix(), k.agentsPrefix(), k.alivePrefix()].map((p) => ({
            request_range: rangeOf(p),
          })),
          failure: [],
        },
        o,
      ),
    );
    const kvs = (i: number): IKeyValue[] => res.responses[i]?.response_range.kvs ?? [];
    const active = new Map<string, Reservation[]>();
    for (const kv of kvs(1)) {
      const r = parse<Reservation>(kv);
      active.set(r.instance, [...(active.get(r.instance) ?? []), r]);
    }
    const agents = new Map(kvs(2).map((kv) => [keyTail(kv, k.agentsPrefix()), parse<AgentPresence>(kv)]));
    const alive = new Map(kvs(3).map((kv) => [keyTail(kv, k.alivePrefix()), kv.create_revision]));
    return kvs(0)
      .map((kv) => {
        const instance = toInstance(parse<StoredInstance>(kv));
        const snap: InstanceSnapshot = {
          instance,
          reservations: (active.get(instance.id) ?? []).sort(snapshotOrder),
          ...presence(agents.get(instance.id), alive.has(instance.id)),
        };
        this.keepRead(instance.id, {
          kv,
          snap,
          markers: new Map(),
          managed: agents.has(instance.id),
          aliveCreate: alive.get(instance.id) ?? '0',
        });
        return snap;
      })
      .sort((a, b) => (a.instance.id < b.instance.id ? -1 : a.instance.id > b.instance.id ? 1 : 0));
  }

  async register(instanceId: string, agent: AgentPresence, ttlMs: number): Promise<Registration> {
    if (!(await this.instance(instanceId))) {
      throw new RrmError('RRM_ERR_NOT_FOUND', `no instance ${instanceId}`, { instance: instanceId });
    }
    const ttl = Math.max(2, Math.ceil(ttlMs / 1000));
    const value = JSON.stringify(agent);
    let stopped = false;
    let lostResolve!: () => void;
    const lost = new Promise<void>((r) => (lostResolve = r));
    let lease = this.client.lease(ttl, { autoKeepAlive: true });
    const claim = async (): Promise<void> => {
      await this.retrying(`cannot register instance ${instanceId}`, async (o) => {
        const id = await lease.grant();
        await this.client.kv.txn(
          {
            compare: [],
            success: [
              put(this.keys.agent(instanceId), value),
              { request_put: { key: buf(this.keys.alive(instanceId)), value: buf(value), lease: id } },
            ],
            failure: [],
          },
          o,
        );
      });
    };
    const onLost = (): void => {
      if (stopped || this.closed) return;
      // The lease lapsed (partition longer than the TTL): the instance was down meanwhile and its
      // grants ended. Take a new lease and come back up; report the loss if that fails.
      lease = this.client.lease(ttl, { autoKeepAlive: true });
      lease.on('lost', onLost);
      claim().catch(() => lostResolve());
    };
    lease.on('lost', onLost);
    await claim();
    return {
      lost,
      stop: async () => {
        stopped = true;
        await lease.revoke().catch(() => undefined);
      },
    };
  }

  transact<T>(instanceId: string, decide: (snap: InstanceSnapshot) => Decided<T>): Promise<T> {
    if (this.closed) return Promise.reject(this.closedError());
    // The budget counts from the call: time spent queued behind this process's own transactions
    // on the instance is part of it, so a caller hears of an unreachable cluster in time.
    return this.batches.submit(instanceId, decide, Date.now() + this.opts.timeoutMs);
  }

  async reservation(id: string): Promise<Reservation | undefined> {
    const res = await this.retrying(`cannot read reservation ${id}`, (o) =>
      this.client.kv.range({ key: buf(this.keys.reservation(id)) }, o),
    );
    const kv = res.kvs[0];
    return kv ? parse<Reservation>(kv) : undefined;
  }

  async byIdempotencyKey(key: string): Promise<Reservation | undefined> {
    const res = await this.retrying('cannot read an idempotency key', (o) =>
      this.client.kv.range({ key: buf(this.keys.idempotency(key)) }, o),
    );
    const kv = res.kvs[0];
    return kv ? this.reservation(kv.value.toString('utf8')) : undefined;
  }

  async list(filter: ListFilter): Promise<Reservation[]> {
    const limit = filter.limit ?? 1000;
    const states = filter.states && filter.states.length > 0 ? new Set(filter.states) : undefined;
    const matches = (r: Reservation) =>
      (!filter.instance || r.instance === filter.instance) && (!states || states.has(r.state));
    let found: Reservation[];
    if (filter.instance && states && [...states].every(isActive)) {
      // Only active states of one instance: the active index is exactly that set.
      const prefix = this.keys.activePrefix(filter.instance);
      const res = await this.retrying('cannot list reservations', (o) =>
        this.client.kv.range(rangeOf(prefix), o),
      );
      found = res.kvs.map((kv) => parse<Reservation>(kv)).filter(matches);
    } else {
      // Newest first by creation revision, page by page, until `limit` match.
      found = [];
      await this.pageNewestFirst(this.keys.reservationsPrefix(), SortTarget.Create, 0, (kvs) => {
        for (const kv of kvs) {
          const r = parse<Reservation>(kv);
          if (matches(r)) found.push(r);
        }
        return found.length >= limit;
      });
    }
    return found.sort(byNewest).slice(0, limit);
  }

  async events(filter: EventFilter): Promise<StoredEvent[]> {
    const limit = filter.limit ?? 1000;
    const after = filter.afterSeq ?? 0;
    const minRev = Math.floor(after / SEQ_PER_REVISION);
    const out: StoredEvent[] = [];
    const take = (seq: number, e: LedgerEvent) => {
      if (seq > after && (!filter.instance || e.instance === filter.instance)) out.push(toEvent(seq, e));
    };
    if (filter.reservation) {
      await this.pageNewestFirst(
        this.keys.eventIndexPrefix(filter.reservation),
        SortTarget.Mod,
        minRev,
        (kvs) => {
          for (const kv of kvs) {
            const base = Number(kv.mod_revision) * SEQ_PER_REVISION;
            for (const [i, e] of parse<EventIndexValue>(kv).events) take(base + i, e);
          }
          return out.length >= limit;
        },
      );
    } else {
      await this.pageNewestFirst(this.keys.eventsPrefix(filter.instance), SortTarget.Mod, minRev, (kvs) => {
        for (const kv of kvs) {
          const base = Number(kv.mod_revision) * SEQ_PER_REVISION;
          parse<EventsValue>(kv).events.forEach((e, i) => take(base + i, e));
        }
        return out.length >= limit;
      });
    }
    out.sort((a, b) => a.seq - b.seq);
    return out.slice(Math.max(0, out.length - limit));
  }

  async appendEvent(event: LedgerEvent): Promise<void> {
    // A fixed random key makes the write idempotent, so a lost reply may be retried: a re-sent
    // put overwrites the same event instead of adding a second one.
    const suffix = `x${randomBytes(9).toString('base64url')}`;
    const ops = [
      put(
        this.keys.events(event.instance, suffix),
        JSON.stringify({ events: [event] } satisfies EventsValue),
      ),
    ];
    if (event.reservation) {
      const value: EventIndexValue = { events: [[0, event]] };
      ops.push(put(this.keys.eventIndex(event.reservation, event.instance, suffix), JSON.stringify(value)));
    }
    await this.retrying('cannot append an event', (o) =>
      this.client.kv.txn({ compare: [], success: ops, failure: [] }, o),
    );
  }

  watch(listener: () => void): () => void {
    this.listeners.add(listener);
    this.ensureWatcher();
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) this.stopWatcher();
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.listeners.clear();
    const w = this.watcher;
    this.watcher = undefined;
    if (w) {
      const watcher = await Promise.race([w, sleep(200).then(() => undefined)]);
      await watcher?.cancel().catch(() => undefined);
    }
    this.client.close();
  }

  // ---- transactions ------------------------------------------------------------------------

  /**
   * One batch of this process's transactions on an instance: alone, a plain transaction; together,
   * one transaction of their composed decisions. If the batch fails as a whole (an idempotency key
   * taken by another writer, a transaction too large, the cluster out of reach), each member is
   * run again alone, so one member's trouble is only its own.
   */
  private async commitBatch(instanceId: string, batch: readonly Member[]): Promise<void> {
    const alone = async (m: Member): Promise<void> => {
      try {
        m.resolve(await this.transactNow(instanceId, m.decide, m.deadline));
      } catch (e) {
        m.reject(e);
      }
    };
    if (batch.length === 1) return alone(batch[0] as Member);
    let outcomes;
    try {
      outcomes = await this.transactNow(
        instanceId,
        compose(batch.map((m) => m.decide)),
        Math.min(...batch.map((m) => m.deadline)),
      );
    } catch (e) {
      // The batch may have been applied with its reply lost: then nobody may decide again, and
      // every member hears what a lone transaction would have said. Otherwise each runs alone.
      if (isRrmError(e) && e.details.outcome === 'unknown') {
        for (const m of batch) m.reject(e);
      } else {
        for (const m of batch) await alone(m);
      }
      return;
    }
    this.counters.batchedCommits++;
    outcomes.forEach((o, i) => {
      const m = batch[i] as Member;
      if (o.ok) m.resolve(o.value);
      else m.reject(o.error);
    });
  }

  private async transactNow<T>(
    instanceId: string,
    decide: (snap: InstanceSnapshot) => Decided<T>,
    deadline: number,
  ): Promise<T> {
    /** Attempts that may have committed without us learning it; each is settled by its marker. */
    let unknown: Attempt<T>[] = [];
    /** Idempotency keys known to point at the reservation being written (no create-compare). */
    const ownIdempotency = new Set<string>();
    /** A state to decide on without reading first; `trusted` unless it is the last-commit cache. */
    let next: { read: SnapshotRead; trusted: boolean } | undefined;
    const cached = this.lastCommit.get(instanceId);
    if (cached) next = { read: cached, trusted: false };
    let conflicts = 0;
    let failures = 0;
    let lastError: unknown;

    for (;;) {
      if (Date.now() >= deadline) {
        this.lastCommit.delete(instanceId);
        throw ledgerError(
          lastError ?? new Error('timed out'),
          this.opts.hosts,
          `transaction on ${instanceId} failed`,
          {
            instance: instanceId,
            ...(unknown.length > 0 ? { outcome: 'unknown' } : {}),
          },
        );
      }
      let read: SnapshotRead;
      let trusted = true;
      if (next) {
        ({ read, trusted } = next);
        next = undefined;
      } else {
        try {
          read = await this.readSnapshot(instanceId, unknownRevisions(unknown), {
            deadline: this.rpcDeadline(deadline),
          });
        } catch (e) {
          if (!isTransient(e)) throw ledgerError(e, this.opts.hosts, `cannot read instance ${instanceId}`);
          lastError = e;
          await this.pauseAfterFailure(++failures, deadline);
          continue;
        }
      }
      const snap = read.snap;
      const kv = read.kv;
      if (!snap || !kv) {
        this.lastCommit.delete(instanceId);
        throw new RrmError('RRM_ERR_NOT_FOUND', `no instance ${instanceId}`, { instance: instanceId });
      }

      // Settle attempts whose replies were lost.
      const still: Attempt<T>[] = [];
      for (const a of unknown) {
        const marker = read.markers.get(a.rev);
        if (marker === a.id) {
          this.counters.recoveredCommits++;
          this.counters.commits++;
          return a.result;
        }
        if (marker !== undefined) continue; // another writer took that revision: `a` can never apply
        if (snap.instance.revision >= a.rev) {
          throw new RrmError(
            'RRM_ERR_LEDGER',
            `etcd ledger at ${this.opts.hosts.join(', ')}: cannot tell whether a transaction on ${instanceId} committed (its marker was pruned)`,
            { instance: instanceId, outcome: 'unknown' },
          );
        }
        still.push(a); // not applied yet; our next attempt competes with it for the same revision
      }
      unknown = still;

      let decided: Decided<T>;
      try {
        decided = decide(snap);
      } catch (e) {
        // On the cache, a refusal may come from staleness: decide again on what etcd holds.
        if (!trusted) continue;
        throw isRrmError(e) ? e : ledgerError(e, this.opts.hosts, 'ledger transaction failed');
      }
      const { transition, result } = decided;
      if (
        transition.upserts.length === 0 &&
        transition.events.length === 0 &&
        transition.instance === snap.instance
      ) {
        if (!trusted) continue; // "nothing to do" must be said by the current state, not the cache
        return result;
      }

      const attempt: Attempt<T> = {
        id: randomBytes(12).toString('base64url'),
        rev: snap.instance.revision + 1,
        result,
      };
      const markerRevs = unknownRevisions([...unknown, attempt]);
      const endLease = transition.upserts.some((r) => !isActive(r.state))
        ? await this.retentionLease()
        : undefined;
      const { request, idempotencyChecks } = this.commitRequest(
        snap,
        read,
        transition,
        attempt,
        markerRevs,
        ownIdempotency,
        endLease,
      );
      let res;
      try {
        res = await this.client.kv.txn(request, { deadline: this.rpcDeadline(deadline) });
      } catch (e) {
        this.lastCommit.delete(instanceId);
        if (endLease && /lease not found/i.test(String((e as Error)?.message))) {
          // The retention lease is gone (revoked, or a restored cluster): take a new one.
          this.retention = undefined;
          continue;
        }
        if (!isTransient(e)) {
          throw ledgerError(e, this.opts.hosts, `transaction on ${instanceId} failed`, {
            instance: instanceId,
            ...(unknown.length > 0 ? { outcome: 'unknown' } : {}),
          });
        }
        this.counters.ambiguousCommits++;
        unknown.push(attempt);
        lastError = e;
        await this.pauseAfterFailure(++failures, deadline);
        continue;
      }
      if (res.succeeded) {
        this.counters.commits++;
        this.remember(instanceId, read, transition, attempt.rev, res.header.revision);
        return result;
      }

      // The compare failed; the else branch read the state at that same revision.
      const after = this.parseSnapshot(instanceId, res.responses, markerRevs);
      this.lastCommit.delete(instanceId);
      if (after.markers.get(attempt.rev) === attempt.id) {
        // The client re-sent a commit whose first reply was lost, and the first one applied.
        this.counters.recoveredCommits++;
        this.counters.commits++;
        return result;
      }
      if (after.kv && after.kv.mod_revision === kv.mod_revision && after.aliveCreate === read.aliveCreate) {
        // The instance did not move, so an idempotency key exists already.
        const base = 2 + markerRevs.length + PRESENCE_OPS;
        let explained = false;
        for (let i = 0; i < idempotencyChecks.length; i++) {
          const check = idempotencyChecks[i] as { key: string; id: string };
          const owner = res.responses[base + i]?.response_range.kvs[0]?.value.toString('utf8');
          if (owner === undefined) continue;
          if (owner !== check.id) {
            throw new RrmError('RRM_ERR_BAD_REQUEST', `idempotency key already used by ${owner}`, {
              id: owner,
            });
          }
          ownIdempotency.add(check.key); // it is this very reservation's: write without the compare
          explained = true;
        }
        if (explained) {
          next = { read: after, trusted: true };
          continue;
        }
      }
      unknown.push(attempt); // settled by its marker on the next read (normally: someone else's)
      if (!trusted) {
        // The cache was stale: another process committed since our last commit. Not a conflict
        // of this decision; go on with the state just read.
        this.counters.staleCache++;
        next = { read: after, trusted: true };
        continue;
      }
      this.counters.conflicts++;
      if (++conflicts > this.opts.maxConflicts) {
        throw new RrmError(
          'RRM_ERR_LEDGER',
          `etcd ledger at ${this.opts.hosts.join(', ')}: transaction on ${instanceId} gave up after ${conflicts} conflicting commits by other writers`,
          { instance: instanceId, conflicts },
        );
      }
      // Retry at once on the state the else branch read; back off (then re-read) only when
      // many writers keep winning, so that a crowd does not hammer the cluster in lockstep.
      if (conflicts <= IMMEDIATE_RETRIES) next = { read: after, trusted: true };
      else await sleep(jitter(conflicts - IMMEDIATE_RETRIES, 2, 100));
    }
  }

  /**
   * Keeps the state this store just committed: its next transaction on the instance decides on
   * it without reading first. The commit's compare still guards it; if anyone wrote meanwhile,
   * the else branch returns the current state and the decision is made again on that.
   */
  /**
   * A state just read becomes the basis of the next transaction on the instance (as a commit's
   * does in `remember`), unless this store already holds a newer one: placement then commits on
   * what it ranked without reading it again. The commit's compare guards it as always.
   */
  private keepRead(instanceId: string, read: SnapshotRead): void {
    if (!read.kv || !read.snap) return;
    const held = this.lastCommit.get(instanceId);
    if (held?.kv && Number(held.kv.mod_revision) > Number(read.kv.mod_revision)) return;
    this.lastCommit.set(instanceId, read);
  }

  private remember(
    instanceId: string,
    read: SnapshotRead,
    t: Transition,
    rev: number,
    etcdRevision: string,
  ): void {
    const before = read.snap as InstanceSnapshot;
    const kv = read.kv as IKeyValue;
    const json = <V>(v: V): V => JSON.parse(JSON.stringify(v)) as V;
    const applied = applyTransition(before, { ...t, upserts: json(t.upserts) });
    const i = t.instance;
    const instance: InstanceRecord = json({
      id: i.id,
      capacity: i.capacity,
      allocatable: i.allocatable,
      labels: i.labels,
      revision: rev,
      seq: i.seq,
    });
    this.lastCommit.set(instanceId, {
      kv: { ...kv, mod_revision: etcdRevision },
      snap: {
        instance,
        reservations: [...applied.reservations].sort(snapshotOrder),
        ...presence(before.agent, !before.down),
      },
      markers: new Map(),
      managed: read.managed,
      aliveCreate: read.aliveCreate,
    });
  }

  /**
   * The etcd lease that records of reservations ending now are bound to, so that etcd deletes them
   * once `retentionMs` has passed. One lease serves every record ending within a slice of the
   * retention (an eighth, at most an hour), and lives for the retention plus that slice, so no
   * record goes before its full retention. rrm never reads these leases as a clock: expiry of active
   * reservations is their own timestamp. A lease that cannot be had now costs nothing but garbage:
   * the record is kept, without a lease.
   */
  private async retentionLease(): Promise<string | undefined> {
    const retention = this.opts.retentionMs;
    if (retention === 0) return undefined;
    const now = Date.now();
    if (this.retention && now < this.retention.until) return this.retention.id;
    const slice = Math.min(retention / 8, 3_600_000);
    try {
      const id = await this.client
        .lease(Math.ceil((retention + slice) / 1000), { autoKeepAlive: false })
        .grant();
      this.retention = { id, until: now + slice };
      return id;
    } catch {
      return undefined;
    }
  }

  private commitRequest(
    before: InstanceSnapshot,
    read: SnapshotRead,
    t: Transition,
    attempt: Attempt<unknown>,
    markerRevs: readonly number[],
    ownIdempotency: ReadonlySet<string>,
    endLease: string | undefined,
  ): { request: ITxnRequest; idempotencyChecks: { key: string; id: string }[] } {
    const k = this.keys;
    const id = before.instance.id;
    const rev = attempt.rev;
    const kv = read.kv as IKeyValue;
    const instanceKey = k.instance(id);
    const compare: ICompare[] = [
      {
        key: buf(instanceKey),
        target: CompareTarget.Mod,
        result: CompareResult.Equal,
        mod_revision: kv.mod_revision,
      },
    ];
    if (read.managed) {
      // Up or down as read: a lease that lapsed (or came back) since then fails the commit, and
      // the decision is made again on the fresh state, so nothing is granted on a down instance.
      compare.push({
        key: buf(k.alive(id)),
        target: CompareTarget.Create,
        result: CompareResult.Equal,
        create_revision: read.aliveCreate ?? '0',
      });
    }
    const inst = t.instance;
    const record: StoredInstance = {
      id: inst.id,
      capacity: inst.capacity,
      allocatable: inst.allocatable,
      labels: inst.labels,
      revision: rev,
      seq: inst.seq,
      updatedAt: Date.now(),
      txn: attempt.id,
    };
    const ops: IRequestOp[] = [put(instanceKey, JSON.stringify(record)), put(k.commit(id, rev), attempt.id)];
    if (rev - COMMIT_MARKER_RETENTION >= 1) ops.push(del(k.commit(id, rev - COMMIT_MARKER_RETENTION)));

    const wasActive = new Set(before.reservations.map((r) => r.id));
    const upserts = new Map<string, Reservation>();
    for (const r of t.upserts) upserts.set(r.id, r); // the last write of one id wins, as in SQL
    const idempotencyChecks: { key: string; id: string }[] = [];
    for (const r of upserts.values()) {
      const json = JSON.stringify(r);
      // An ended reservation's record goes when the retention lease expires; an active one stays.
      const lease = isActive(r.state) ? undefined : endLease;
      ops.push(put(k.reservation(r.id), json, lease));
      if (isActive(r.state)) ops.push(put(k.active(r.instance, r.id), json));
      else if (wasActive.has(r.id)) ops.push(del(k.active(r.instance, r.id)));
      if (r.idempotencyKey !== undefined && !wasActive.has(r.id)) {
        const key = k.idempotency(r.idempotencyKey);
        if (!ownIdempotency.has(key)) {
          compare.push({
            key: buf(key),
            target: CompareTarget.Create,
            result: CompareResult.Equal,
            create_revision: 0,
          });
          idempotencyChecks.push({ key, id: r.id });
        }
        ops.push(put(key, r.id, lease));
      } else if (r.idempotencyKey !== undefined && lease) {
        // Written when it was created; bound to the retention lease now that it has ended.
        ops.push(put(k.idempotency(r.idempotencyKey), r.id, lease));
      }
    }
    if (t.events.length > 0) {
      const suffix = padRevision(rev);
      const value: EventsValue = { txn: attempt.id, events: t.events };
      ops.push(put(k.events(id, suffix), JSON.stringify(value)));
      const byReservation = new Map<string, [number, LedgerEvent][]>();
      t.events.forEach((e, i) => {
        if (!e.reservation) return;
        const list = byReservation.get(e.reservation) ?? [];
        list.push([i, e]);
        byReservation.set(e.reservation, list);
      });
      for (const [rid, events] of byReservation) {
        ops.push(put(k.eventIndex(rid, id, suffix), JSON.stringify({ events } satisfies EventIndexValue)));
      }
    }
    const failure = [
      ...this.snapshotOps(id, markerRevs),
      ...idempotencyChecks.map((c) => ({ request_range: { key: buf(c.key) } })),
    ];
    return { request: { compare, success: ops, failure }, idempotencyChecks };
  }

  private snapshotOps(instanceId: string, markerRevs: readonly number[]): IRequestOp[] {
    return [
      { request_range: { key: buf(this.keys.instance(instanceId)) } },
      { request_range: rangeOf(this.keys.activePrefix(instanceId)) },
      ...markerRevs.map((rev) => ({ request_range: { key: buf(this.keys.commit(instanceId, rev)) } })),
      { request_range: { key: buf(this.keys.agent(instanceId)) } },
      { request_range: { key: buf(this.keys.alive(instanceId)) } },
    ];
  }

  private async readSnapshot(
    instanceId: string,
    markerRevs: readonly number[],
    o: CallOptions,
  ): Promise<SnapshotRead> {
    const res = await this.client.kv.txn(
      { compare: [], success: this.snapshotOps(instanceId, markerRevs), failure: [] },
      o,
    );
    return this.parseSnapshot(instanceId, res.responses, markerRevs);
  }

  private parseSnapshot(
    instanceId: string,
    responses: IResponseOp[],
    markerRevs: readonly number[],
  ): SnapshotRead {
    const kv = responses[0]?.response_range.kvs[0];
    const markers = new Map<number, string>();
    markerRevs.forEach((rev, i) => {
      const m = responses[2 + i]?.response_range.kvs[0];
      if (m) markers.set(rev, m.value.toString('utf8'));
    });
    if (!kv) return { kv: undefined, snap: undefined, markers };
    const reservations = (responses[1]?.response_range.kvs ?? [])
      .map((r) => parse<Reservation>(r))
      .filter((r) => r.instance === instanceId)
      .sort(snapshotOrder);
    const agentKv = responses[2 + markerRevs.length]?.response_range.kvs[0];
    const aliveKv = responses[3 + markerRevs.length]?.response_range.kvs[0];
    const alive = aliveKv !== undefined;
    return {
      kv,
      managed: agentKv !== undefined,
      aliveCreate: aliveKv?.create_revision ?? '0',
      snap: {
        instance: toInstance(parse<StoredInstance>(kv)),
        reservations,
        ...presence(agentKv ? parse<AgentPresence>(agentKv) : undefined, alive),
      },
      markers,
    };
  }

  // ---- reads and retries -------------------------------------------------------------------

  /**
   * Newest first: pages of keys under `prefix` sorted descending by mod or create revision, each
   * page below the last, until `enough` says so or the range is exhausted. Within one prefix no
   * two keys share that revision (one key per Txn), so paging by revision loses nothing.
   */
  private async pageNewestFirst(
    prefix: string,
    target: SortTarget.Mod | SortTarget.Create,
    minModRevision: number,
    enough: (kvs: IKeyValue[]) => boolean,
  ): Promise<void> {
    const pageSize = this.opts.pageSize;
    let below = 0; // exclusive upper bound of the next page; 0 = none yet
    for (;;) {
      const req: IRangeRequest = {
        ...rangeOf(prefix),
        sort_target: target,
        sort_order: SortOrder.Descend,
        limit: pageSize,
        ...(minModRevision > 0 ? { min_mod_revision: minModRevision } : {}),
      };
      if (below > 0) {
        if (target === SortTarget.Mod) req.max_mod_revision = below - 1;
        else req.max_create_revision = below - 1;
      }
      const res = await this.retrying('cannot read the ledger', (o) => this.client.kv.range(req, o));
      const kvs = res.kvs;
      if (kvs.length === 0 || enough(kvs) || !res.more) return;
      const last = kvs[kvs.length - 1] as IKeyValue;
      below = Number(target === SortTarget.Mod ? last.mod_revision : last.create_revision);
      if (below <= 1) return;
    }
  }

  /** Runs an idempotent call, retrying transient failures on other members until the budget ends. */
  private async retrying<T>(what: string, call: (o: CallOptions) => Promise<T>): Promise<T> {
    if (this.closed) throw this.closedError();
    const deadline = Date.now() + this.opts.timeoutMs;
    let failures = 0;
    for (;;) {
      try {
        return await call({ deadline: this.rpcDeadline(deadline) });
      } catch (e) {
        if (!isTransient(e) || Date.now() >= deadline) throw ledgerError(e, this.opts.hosts, what);
        await this.pauseAfterFailure(++failures, deadline);
      }
    }
  }

  private rpcDeadline(deadline: number): number {
    return Math.min(Date.now() + this.opts.rpcTimeoutMs, deadline);
  }

  private async pauseAfterFailure(failures: number, deadline: number): Promise<void> {
    this.counters.transientRetries++;
    const wait = Math.min(jitter(failures, 50, 500), Math.max(0, deadline - Date.now()));
    if (wait > 0) await sleep(wait);
  }

  private closedError(): RrmError {
    return new RrmError(
      'RRM_ERR_LEDGER',
      `etcd ledger at ${this.opts.hosts.join(', ')}: the store is closed`,
    );
  }

  // ---- watch -------------------------------------------------------------------------------

  private ensureWatcher(): void {
    if (this.watcher || this.closed) return;
    const notify = () => {
      for (const l of [...this.listeners]) {
        try {
          l();
        } catch {
          // a listener's failure is its own
        }
      }
    };
    this.watcher = this.client
      .watch()
      .prefix(this.opts.prefix)
      .create()
      .then((w) => {
        w.on('data', notify);
        // After a reconnect, changes may have happened meanwhile: let waiters re-read.
        w.on('connected', notify);
        w.on('error', () => {
          if (this.watcher) {
            this.watcher = undefined;
            if (this.listeners.size > 0 && !this.closed) setTimeout(() => this.ensureWatcher(), 1000).unref();
          }
        });
        if (this.closed || this.listeners.size === 0) {
          void w.cancel().catch(() => undefined);
          return undefined;
        }
        return w;
      })
      .catch(() => {
        this.watcher = undefined;
        if (this.listeners.size > 0 && !this.closed) setTimeout(() => this.ensureWatcher(), 1000).unref();
        return undefined;
      });
  }

  private stopWatcher(): void {
    const w = this.watcher;
    this.watcher = undefined;
    void w?.then((watcher) => watcher?.cancel()).catch(() => undefined);
  }
}

function buf(s: string): Buffer {
  return Buffer.from(s, 'utf8');
}

function rangeOf(prefix: string): IRangeRequest {
  return { key: buf(prefix), range_end: prefixEnd(prefix) };
}

function put(key: string, value: string, lease?: string): IRequestOp {
  return { request_put: { key: buf(key), value: buf(value), ...(lease ? { lease } : {}) } };
}

function del(key: string): IRequestOp {
  return { request_delete_range: { key: buf(key) } };
}

function parse<T>(kv: IKeyValue): T {
  return JSON.parse(kv.value.toString('utf8')) as T;
}

function keyTail(kv: IKeyValue, prefix: string): string {
  return decodeURIComponent(kv.key.toString('utf8').slice(prefix.length));
}

/** Registered and not alive: down. Never registered: managed by no agent, so never down. */
function presence(
  agent: AgentPresence | undefined,
  alive: boolean,
): Pick<InstanceSnapshot, 'down' | 'agent'> {
  if (!agent) return {};
  return alive ? { agent } : { agent, down: true };
}

function unknownRevisions(attempts: readonly Attempt<unknown>[]): number[] {
  return [...new Set(attempts.map((a) => a.rev))];
}

/** Full jitter: a uniform wait in [0, min(cap, base·2^n)). */
function jitter(n: number, baseMs: number, capMs: number): number {
  return Math.random() * Math.min(capMs, baseMs * 2 ** Math.min(n, 16));
}

function toInstance(s: StoredInstance): InstanceRecord {
  return {
    id: s.id,
    capacity: s.capacity,
    allocatable: s.allocatable,
    labels: s.labels,
    revision: s.revision,
    seq: s.seq,
  };
}

function toEvent(seq: number, e: LedgerEvent): StoredEvent {
  return {
    seq,
    at: e.at,
    instance: e.instance,
    reservation: e.reservation ?? undefined,
    type: e.type,
    from: e.from ?? undefined,
    to: e.to ?? undefined,
    reason: e.reason,
    by: e.by,
    ...(e.data ? { data: e.data } : {}),
  };
}

/** The order SQLite's partial index returns a snapshot in: granted before queued, then arrival. */
function snapshotOrder(a: Reservation, b: Reservation): number {
  if (a.state !== b.state) return a.state < b.state ? -1 : 1;
  return a.arrival - b.arrival || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** SQLite's `ORDER BY created_at DESC, arrival DESC`. */
function byNewest(a: Reservation, b: Reservation): number {
  return b.createdAt - a.createdAt || b.arrival - a.arrival;
}
