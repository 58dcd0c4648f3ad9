/**
 * The etcd ledger under contention and faults, on a real 3-member cluster: several clients
 * racing on one instance, members and the leader killed mid-run, quorum lost and regained.
 * Every committed state is checked afterwards through etcd's MVCC history.
 */
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Etcd3, GRPCUnavailableError, type ITxnRequest } from 'etcd3';
import { submit } from '../../src/admission/transitions.js';
import {
  CoreLedger,
  hashToken,
  newReservationId,
  type LedgerEnvironment,
} from '../../src/ledger/core-ledger.js';
import { EtcdKeys, SEQ_PER_REVISION } from '../../src/ledger/etcd/etcd-keys.js';
import { EtcdStore, type EtcdStoreOptions, type EtcdStoreStats } from '../../src/ledger/etcd/etcd-store.js';
import { isRrmError } from '../../src/model/errors.js';
import type { Reservation } from '../../src/model/reservation.js';
import { request } from '../support/core-fixtures.js';
import { startEtcdCluster, uniquePrefix, type EtcdCluster } from '../support/etcd-cluster.js';

const env: LedgerEnvironment = {
  now: Date.now,
  hostname: 'test-host',
  isHolderAlive: () => true,
  reclaimWork: async () => undefined,
  forceAfterMs: 60_000,
};

const ALLOCATABLE = { cpu: 2000, memory: 4096 };

let cluster: EtcdCluster;
let raw: Etcd3;
const opened: EtcdStore[] = [];

before(async () => {
  cluster = await startEtcdCluster();
  raw = new Etcd3({ hosts: [...cluster.endpoints] });
});

after(async () => {
  await Promise.all(opened.map((s) => s.close()));
  raw?.close();
  await cluster?.close();
});

function openStore(prefix: string, extra: Partial<EtcdStoreOptions> = {}): EtcdStore {
  const store = new EtcdStore({ hosts: cluster.endpoints, prefix, ...extra });
  opened.push(store);
  return store;
}

async function clients(n: number, prefix: string): Promise<{ stores: EtcdStore[]; ledgers: CoreLedger[] }> {
  const stores = Array.from({ length: n }, () => openStore(prefix));
  const ledgers = stores.map((s) => new CoreLedger(s, env));
  await (ledgers[0] as CoreLedger).ensureInstance({
    id: 'i1',
    capacity: ALLOCATABLE,
    allocatable: ALLOCATABLE,
  });
  return { stores, ledgers };
}

const holder = (pid: number) => ({ host: 'test-host', pid, startTime: 0, owner: 'fault-tester' });

function totals(stores: readonly EtcdStore[]): EtcdStoreStats {
  const t: EtcdStoreStats = {
    commits: 0,
    conflicts: 0,
    transientRetries: 0,
    ambiguousCommits: 0,
    recoveredCommits: 0,
    staleCache: 0,
    batchedCommits: 0,
  };
  for (const s of stores) {
    const x = s.stats();
    for (const k of Object.keys(t) as (keyof EtcdStoreStats)[]) t[k] += x[k];
  }
  return t;
}

function sumGranted(rs: readonly Reservation[]): Record<string, number> {
  const used: Record<string, number> = {};
  for (const r of rs) {
    if (r.state !== 'granted') continue;
    for (const [k, v] of Object.entries(r.requests)) used[k] = (used[k] ?? 0) + v;
  }
  return used;
}

function assertFits(used: Record<string, number>, where: string): void {
  for (const [k, v] of Object.entries(used)) {
    assert.ok(v <= (ALLOCATABLE as Record<string, number>)[k]!, `${where}: ${k} granted ${v} > allocatable`);
  }
}

/**
 * Reads every committed state of the instance back from etcd's history (each commit marker's
 * mod revision is one commit) and checks Σ granted ≤ allocatable there; checks that revisions
 * have no gaps and that the events never grant or end one reservation twice.
 */
async function verifyHistory(prefix: string, instance = 'i1'): Promise<{ commits: number; peakCpu: number }> {
  const keys = new EtcdKeys(prefix);
  const markers = (await raw.getAll().prefix(keys.commitsPrefix(instance)).exec()).kvs;
  const current = JSON.parse((await raw.get(keys.instance(instance)).string()) as string) as {
    revision: number;
  };
  assert.equal(markers.length, current.revision, 'one commit marker per instance revision');
  let peakCpu = 0;
  const revs = markers.map((m, i) => {
    assert.equal(Number(m.key.toString().slice(-16)), i + 1, 'instance revisions have no gaps');
    return Number(m.mod_revision);
  });
  for (let i = 0; i < revs.length; i += 32) {
    await Promise.all(
      revs.slice(i, i + 32).map(async (rev, j) => {
        const kvs = (await raw.getAll().prefix(keys.activePrefix(instance)).revision(rev).exec()).kvs;
        const inst = JSON.parse(
          (await raw.get(keys.instance(instance)).revision(rev).string()) as string,
        ) as {
          revision: number;
        };
        assert.equal(inst.revision, i + j + 1, 'the instance record at a commit carries that revision');
        const used = sumGranted(kvs.map((kv) => JSON.parse(kv.value.toString()) as Reservation));
        assertFits(used, `etcd revision ${rev}`);
        peakCpu = Math.max(peakCpu, used.cpu ?? 0);
      }),
    );
  }
  // Events: in seq order, per commit; a reservation is granted at most once and ends at most once.
  const store = openStore(prefix);
  const events = await store.events({ instance, limit: 1_000_000 });
  const granted = new Map<string, number>();
  const ended = new Map<string, number>();
  for (const e of events) {
    if (!e.reservation) continue;
    if (e.to === 'granted' && e.from !== 'granted')
      granted.set(e.reservation, (granted.get(e.reservation) ?? 0) + 1);
    if (e.from === 'granted' && e.to !== 'granted')
      ended.set(e.reservation, (ended.get(e.reservation) ?? 0) + 1);
  }
  for (const [id, n] of granted) assert.equal(n, 1, `${id} granted ${n} times`);
  for (const [id, n] of ended) assert.equal(n, 1, `${id} ended ${n} times`);
  const all = await store.list({ instance, limit: 1_000_000 });
  const byId = new Map(all.map((r) => [r.id, r]));
  const used: Record<string, number> = {};
  let commit = -1;
  for (const e of events) {
    const c = Math.floor(e.seq / SEQ_PER_REVISION);
    if (c !== commit) assertFits(used, `before the commit at etcd revision ${c}`);
    commit = c;
    const r = e.reservation ? byId.get(e.reservation) : undefined;
    if (!r) continue;
    const sign =
      e.to === 'granted' && e.from !== 'granted' ? 1 : e.from === 'granted' && e.to !== 'granted' ? -1 : 0;
    for (const [k, v] of Object.entries(r.requests)) used[k] = (used[k] ?? 0) + sign * v;
  }
  assertFits(used, 'after the last commit');
  // The active index is exactly the set of active reservation records.
  const active = (await raw.getAll().prefix(keys.activePrefix(instance)).keys()).length;
  assert.equal(active, all.filter((r) => r.state === 'queued' || r.state === 'granted').length);
  return { commits: markers.length, peakCpu };
}

interface Tally {
  granted: number;
  rejected: number;
  ledgerErrors: number;
  /** Distinct RRM_ERR_LEDGER messages seen (endpoints elided). */
  messages: Set<string>;
  pairsDone: number[];
}

/** reserve → (hold) → release, with an idempotency key so a lost reply can be settled. */
async function pair(
  ledger: CoreLedger,
  key: string,
  pid: number,
  tally: Tally,
  stop?: () => boolean,
): Promise<void> {
  let outcome;
  let token: string | undefined;
  try {
    const res = await ledger.reserve(
      request({
        target: 'i1',
        requests: { cpu: 300 + (pid % 5) * 100, memory: 512 + (pid % 3) * 256 },
        waitMs: 0,
        holder: holder(pid),
        idempotencyKey: key,
      }),
    );
    outcome = res.outcome;
    token = res.token;
  } catch (e) {
    if (!isRrmError(e) || e.code !== 'RRM_ERR_LEDGER') throw e;
    tally.ledgerErrors++;
    tally.messages.add(e.message.replace(/^etcd ledger at [^:]+(:\d+)?(, [^,:]+:\d+)*: /, ''));
    // Did it commit? The idempotency key says; release it as admin if so.
    for (let i = 0; i < 40; i++) {
      try {
        const r = await ledger.store.byIdempotencyKey(key);
        if (r && (r.state === 'granted' || r.state === 'queued')) await ledger.release(r.id, { admin: true });
        return;
      } catch (e2) {
        if (!isRrmError(e2) || e2.code !== 'RRM_ERR_LEDGER') throw e2;
        tally.ledgerErrors++;
        tally.messages.add(e2.message);
        if (stop?.() && i > 20) throw e2;
        await sleep(200);
      }
    }
    return;
  }
  if (outcome.kind === 'rejected') {
    tally.rejected++;
    return;
  }
  assert.equal(outcome.kind, 'granted');
  tally.granted++;
  if (pid % 4 === 0) await sleep(Math.random() * 3);
  for (let i = 0; ; i++) {
    try {
      const done = await ledger.release(outcome.reservation.id, { token });
      assert.equal(done.state, 'released');
      tally.pairsDone.push(Date.now());
      return;
    } catch (e) {
      if (!isRrmError(e) || e.code !== 'RRM_ERR_LEDGER' || i > 40) throw e;
      tally.ledgerErrors++;
      tally.messages.add(e.message);
      await sleep(200);
    }
  }
}

function report(t: TestContext, label: string, stats: EtcdStoreStats, extra: Record<string, unknown>): void {
  const line = `${label}: ${JSON.stringify({ ...extra, ...stats })}`;
  t.diagnostic(line);
  console.log(`# ${line}`);
}

test('4 clients × 50 concurrent reserve/release on one instance never over-allocate', async (t) => {
  const prefix = uniquePrefix('contention');
  const { stores, ledgers } = await clients(4, prefix);
  const tally: Tally = { granted: 0, rejected: 0, ledgerErrors: 0, messages: new Set(), pairsDone: [] };
  const perClient = 50;
  const workers = 5;
  const t0 = performance.now();
  await Promise.all(
    ledgers.flatMap((ledger, c) =>
      Array.from({ length: workers }, async (_, w) => {
        for (let i = 0; i < perClient / workers; i++) {
          const pid = c * 1000 + w * 100 + i;
          await pair(ledger, `${prefix}${pid}`, pid, tally);
        }
      }),
    ),
  );
  const ms = performance.now() - t0;
  assert.equal(tally.granted + tally.rejected, 4 * perClient);
  assert.equal(tally.ledgerErrors, 0);
  assert.ok(tally.granted > 0);
  const history = await verifyHistory(prefix);
  const active = await (ledgers[0] as CoreLedger).list({ instance: 'i1', states: ['granted', 'queued'] });
  assert.deepEqual(active, []);
  const stats = totals(stores);
  report(t, 'contention', stats, {
    ms: Math.round(ms),
    granted: tally.granted,
    rejected: tally.rejected,
    pairsPerSec: Math.round((tally.pairsDone.length / ms) * 1000),
    reservesPerSec: Math.round(((4 * perClient) / ms) * 1000),
    ...history,
  });
});

test('killing a follower, then the leader: work continues after the election, nothing granted twice', async (t) => {
  const prefix = uniquePrefix('failover');
  const { stores, ledgers } = await clients(4, prefix);
  const tally: Tally = { granted: 0, rejected: 0, ledgerErrors: 0, messages: new Set(), pairsDone: [] };
  let stopped = false;
  const running = Promise.all(
    ledgers.flatMap((ledger, c) =>
      Array.from({ length: 3 }, async (_, w) => {
        for (let i = 0; !stopped; i++) {
          const pid = c * 100_000 + w * 10_000 + i;
          await pair(ledger, `${prefix}${pid}`, pid, tally, () => stopped);
        }
      }),
    ),
  );
  const timeline: Record<string, number> = {};
  const t0 = Date.now();
  try {
    await sleep(700);
    const first = await cluster.leader();
    assert.notEqual(first, undefined, 'the cluster has a leader');
    const follower = [0, 1, 2].find((m) => m !== first) as number;
    await cluster.kill(follower);
    timeline.followerKilled = Date.now() - t0;
    const beforeFollower = tally.pairsDone.length;
    await sleep(1200);
    assert.ok(tally.pairsDone.length > beforeFollower, 'work continues with one follower down');
    await cluster.start(follower);
    await cluster.waitHealthy();
    timeline.followerBack = Date.now() - t0;

    const leader = (await cluster.leader()) as number;
    assert.notEqual(leader, undefined);
    await cluster.kill(leader);
    const killedAt = Date.now();
    timeline.leaderKilled = killedAt - t0;
    for (;;) {
      const now = await cluster.leader();
      if (now !== undefined && now !== leader) break;
      await sleep(50);
    }
    timeline.newLeader = Date.now() - t0;
    await sleep(1500);
    const afterElection = tally.pairsDone.filter((at) => at > killedAt).length;
    assert.ok(afterElection > 0, 'work continues after the election');
    await cluster.start(leader);
    await cluster.waitHealthy();
    timeline.leaderBack = Date.now() - t0;
    await sleep(500);
  } finally {
    stopped = true;
    await running;
  }
  const history = await verifyHistory(prefix);
  const active = await (ledgers[0] as CoreLedger).list({ instance: 'i1', states: ['granted', 'queued'] });
  assert.deepEqual(
    active.map((r) => r.id),
    [],
    'every reservation was released in the end',
  );
  report(t, 'failover', totals(stores), {
    ms: Date.now() - t0,
    pairs: tally.pairsDone.length,
    rejected: tally.rejected,
    ledgerErrorsSeenByWorkers: tally.ledgerErrors,
    messages: [...tally.messages],
    timeline,
    ...history,
  });
});

test('with two of three members down, calls fail with RRM_ERR_LEDGER within seconds; after restart work resumes', async (t) => {
  const prefix = uniquePrefix('quorum');
  const store = openStore(prefix, { timeoutMs: 3000, rpcTimeoutMs: 1000 });
  const ledger = new CoreLedger(store, env);
  await ledger.ensureInstance({ id: 'i1', capacity: ALLOCATABLE, allocatable: ALLOCATABLE });
  const a = await ledger.reserve(request({ target: 'i1', requests: { cpu: 500 }, holder: holder(1) }));
  assert.equal(a.outcome.kind, 'granted');
  const leader = (await cluster.leader()) as number;
  const other = [0, 1, 2].find((m) => m !== leader) as number;

  // Lose quorum between the read and the commit of a transaction: the commit cannot complete.
  const lostId = newReservationId();
  const t0 = Date.now();
  const lost = await store
    .transact('i1', (snap) => {
      void cluster.kill(leader);
      void cluster.kill(other);
      const step = submit(
        snap,
        {
          id: lostId,
          tokenHash: hashToken('t'),
          request: request({ target: 'i1', requests: { cpu: 500 }, holder: holder(2) }),
        },
        Date.now(),
      );
      return { transition: step, result: step.outcome };
    })
    .then(
      () => 'committed' as const,
      (e: unknown) => e,
    );
  const commitMs = Date.now() - t0;
  if (lost !== 'committed') {
    assert.ok(isRrmError(lost) && lost.code === 'RRM_ERR_LEDGER', `got ${String(lost)}`);
    assert.ok(lost.message.includes(cluster.endpoints[0] as string), lost.message);
  }
  assert.ok(commitMs < 6000, `the commit gave up after ${commitMs} ms`);

  const timings: Record<string, number> = { commitMs };
  const expectLedgerError = async (what: string, p: Promise<unknown>) => {
    const t0 = Date.now();
    await assert.rejects(p, (e: unknown) => {
      assert.ok(isRrmError(e), String(e));
      assert.equal(e.code, 'RRM_ERR_LEDGER');
      assert.match(e.message, /127\.0\.0\.1:\d+/);
      return true;
    });
    timings[what] = Date.now() - t0;
    assert.ok(timings[what]! < 6000, `${what} took ${timings[what]} ms to fail`);
  };
  await Promise.all([
    expectLedgerError(
      'reserveMs',
      ledger.reserve(request({ target: 'i1', requests: { cpu: 100 }, holder: holder(3) })),
    ),
    expectLedgerError('readMs', ledger.get(a.outcome.reservation.id)),
    expectLedgerError('releaseMs', ledger.release(a.outcome.reservation.id, { token: a.token })),
    expectLedgerError('eventsMs', ledger.events({ reservation: a.outcome.reservation.id })),
  ]);

  await Promise.all([cluster.start(leader), cluster.start(other)]);
  await cluster.waitHealthy();

  // Nothing half-written: the lost transaction is there completely or not at all.
  const keys = new EtcdKeys(prefix);
  const record = await store.reservation(lostId);
  const activeKey = await raw.get(keys.active('i1', lostId)).string();
  const indexed = await store.events({ reservation: lostId });
  if (record) {
    assert.equal(record.state, 'granted');
    assert.ok(activeKey !== null);
    assert.ok(indexed.length > 0);
  } else {
    assert.equal(activeKey, null);
    assert.deepEqual(indexed, []);
    assert.notEqual(lost, 'committed');
  }
  // Work resumes.
  const b = await ledger.reserve(request({ target: 'i1', requests: { cpu: 500 }, holder: holder(4) }));
  assert.equal(b.outcome.kind, 'granted');
  assert.equal((await ledger.release(a.outcome.reservation.id, { token: a.token })).state, 'released');
  assert.equal((await ledger.release(b.outcome.reservation.id, { token: b.token })).state, 'released');
  if (record) await ledger.release(lostId, { admin: true });
  await verifyHistory(prefix);
  report(t, 'quorum-loss', store.stats(), { ...timings, lostCommit: record ? 'applied' : 'not applied' });
});

test('an idempotency key is taken once when two clients race for it', async () => {
  const prefix = uniquePrefix('idempotency');
  const { stores } = await clients(2, prefix);
  const attempt = (store: EtcdStore, pid: number) => {
    const id = newReservationId();
    return store
      .transact('i1', (snap) => {
        const step = submit(
          snap,
          {
            id,
            tokenHash: hashToken('t'),
            request: request({
              target: 'i1',
              requests: { cpu: 100 },
              holder: holder(pid),
              idempotencyKey: 'same',
            }),
          },
          Date.now(),
        );
        return { transition: step, result: id };
      })
      .then(
        (x) => ({ ok: x }),
        (e: unknown) => ({ err: e }),
      );
  };
  const results = await Promise.all([attempt(stores[0] as EtcdStore, 1), attempt(stores[1] as EtcdStore, 2)]);
  const ok = results.filter((r): r is { ok: string } => 'ok' in r);
  const failed = results.filter((r): r is { err: unknown } => 'err' in r);
  assert.equal(ok.length, 1);
  assert.equal(failed.length, 1);
  const err = failed[0]?.err;
  assert.ok(isRrmError(err) && err.code === 'RRM_ERR_BAD_REQUEST', String(err));
  assert.equal((await (stores[0] as EtcdStore).byIdempotencyKey('same'))?.id, ok[0]?.ok);
  const active = await (stores[1] as EtcdStore).list({ instance: 'i1', states: ['granted'] });
  assert.deepEqual(
    active.map((r) => r.id),
    [ok[0]?.ok],
  );
});

test('a commit whose reply was lost is settled by its marker and never applied twice', async () => {
  const prefix = uniquePrefix('lost-reply');
  const { stores, ledgers } = await clients(2, prefix);
  const [store, other] = stores as [EtcdStore, EtcdStore];
  const [ledger, otherLedger] = ledgers as [CoreLedger, CoreLedger];
  // Intercept this store's commits (Txns with a compare); its reads pass through.
  const kv = (store as unknown as { client: Etcd3 }).client.kv;
  const real = kv.txn.bind(kv);
  let fault: 'none' | 'lose-reply' | 'resend' | 'lose-reply-then-other-commits' = 'none';
  kv.txn = async (req: ITxnRequest, opts) => {
    const f = fault;
    if ((req.compare?.length ?? 0) === 0 || f === 'none') return real(req, opts);
    fault = 'none';
    const first = await real(req, opts);
    assert.equal(first.succeeded, true);
    if (f === 'resend') return real(req, opts); // what a client-side retry would do: its compare now fails
    if (f === 'lose-reply-then-other-commits') {
      const o = await otherLedger.reserve(
        request({ target: 'i1', requests: { cpu: 100 }, holder: holder(99) }),
      );
      assert.equal(o.outcome.kind, 'granted');
    }
    throw new GRPCUnavailableError('simulated: the reply was lost');
  };
  const ids: string[] = [];
  for (const f of ['lose-reply', 'resend', 'lose-reply-then-other-commits'] as const) {
    fault = f;
    const r = await ledger.reserve(
      request({ target: 'i1', requests: { cpu: 300 }, holder: holder(ids.length + 1) }),
    );
    assert.equal(fault, 'none', `${f} was exercised`);
    assert.equal(r.outcome.kind, 'granted', f);
    ids.push(r.outcome.reservation.id);
  }
  assert.equal(store.stats().recoveredCommits, 3);
  const events = await other.events({ instance: 'i1' });
  for (const id of ids) {
    assert.equal(
      events.filter((e) => e.reservation === id && e.type === 'granted').length,
      1,
      `${id} granted once`,
    );
  }
  const snap = await other.snapshot('i1');
  assert.equal(snap?.reservations.length, 4);
  assert.equal(snap?.instance.revision, 4);
  await verifyHistory(prefix);
});
