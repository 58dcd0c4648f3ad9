/**
 * The ledger conformance suite, unchanged, against the etcd store on a real 3-member cluster.
 * Each `create()` gets a fresh key prefix; `reopen` is a second client on the same prefix.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreLedger } from '../../src/ledger/core-ledger.js';
import { SqliteStore } from '../../src/ledger/sqlite/sqlite-store.js';
import type { Reservation } from '../../src/model/reservation.js';
import { Etcd3 } from 'etcd3';
import { EtcdStore } from '../../src/ledger/etcd/etcd-store.js';
import type { Store } from '../../src/ledger/ledger.js';
import { startEtcdCluster, uniquePrefix, type EtcdCluster } from '../support/etcd-cluster.js';
import { request } from '../support/core-fixtures.js';
import { ledgerConformance } from '../support/ledger-conformance.js';

const holder = (pid: number) => ({ host: 'test-host', pid, startTime: 0, owner: 'tester' });

let cluster: Promise<EtcdCluster> | undefined;

/** A CoreLedger environment whose holders all live. */
const LIVE_HOLDERS = {
  now: Date.now,
  hostname: 'test-host',
  isHolderAlive: () => true,
  reclaimWork: async () => undefined,
  forceAfterMs: 60_000,
};
const opened: EtcdStore[] = [];

function open(hosts: readonly string[], prefix: string): Store {
  const store = new EtcdStore({ hosts, prefix });
  opened.push(store);
  return store;
}

after(async () => {
  await Promise.all(opened.map((s) => s.close()));
  await (await cluster?.catch(() => undefined))?.close();
});

ledgerConformance({
  name: 'etcd',
  async create() {
    cluster ??= startEtcdCluster();
    const { endpoints } = await cluster;
    const prefix = uniquePrefix('conformance');
    return { store: open(endpoints, prefix), reopen: async () => open(endpoints, prefix) };
  },
});

test('etcd: a commit by another client wakes watchers; unsubscribing stops them', async () => {
  cluster ??= startEtcdCluster();
  const { endpoints } = await cluster;
  const prefix = uniquePrefix('watch');
  const watching = open(endpoints, prefix);
  const writer = new CoreLedger(open(endpoints, prefix), LIVE_HOLDERS);
  await writer.ensureInstance({ id: 'i1', capacity: { cpu: 1000 }, allocatable: { cpu: 1000 } });
  let calls = 0;
  let wake: () => void = () => undefined;
  const stop = watching.watch(() => {
    calls++;
    wake();
  });
  await sleep(300); // the watch stream is established asynchronously
  const woken = new Promise<void>((resolve) => (wake = resolve));
  const before = calls;
  const r = await writer.reserve(request({ target: 'i1', requests: { cpu: 100 }, holder: holder(1) }));
  await Promise.race([
    woken,
    sleep(3000).then(() => assert.fail('the watcher was not called within 3 s of a commit')),
  ]);
  assert.ok(calls > before);
  stop();
  await sleep(200);
  const after = calls;
  await writer.release(r.outcome.reservation.id, { token: r.token });
  await sleep(500);
  assert.equal(calls, after, 'no calls after unsubscribing');
});

test('etcd: reads answer like SQLite for the same history (lists, event paging, snapshots)', async () => {
  cluster ??= startEtcdCluster();
  const { endpoints } = await cluster;
  const dir = mkdtempSync(join(tmpdir(), 'rrm-parity-'));
  const sqlite = new SqliteStore(join(dir, 'ledger.db'));
  // A tiny page size makes the newest-first paging cross many pages.
  const etcd = new EtcdStore({ hosts: endpoints, prefix: uniquePrefix('parity'), pageSize: 3 });
  opened.push(etcd);
  try {
    const [fromSqlite, fromEtcd] = await Promise.all([script(sqlite), script(etcd)]);
    assert.deepEqual(fromEtcd, fromSqlite);
  } finally {
    await sqlite.close();
  }
});

/** Runs one fixed history on a store and returns what its reads say, ids and times normalized away. */
async function script(store: Store): Promise<unknown> {
  const ledger = new CoreLedger(store, LIVE_HOLDERS);
  const labels = new Map<string, string>();
  const label = (id: string | undefined) => {
    if (id === undefined) return undefined;
    if (!labels.has(id)) labels.set(id, `r${labels.size}`);
    return labels.get(id);
  };
  const step = async <T>(p: Promise<T>): Promise<T> => {
    const v = await p;
    await sleep(3); // distinct createdAt, so newest-first order is fully determined
    return v;
  };
  await ledger.ensureInstance({ id: 'i1', capacity: { cpu: 2000 }, allocatable: { cpu: 2000 } });
  await ledger.ensureInstance({ id: 'i2', capacity: { cpu: 1000 }, allocatable: { cpu: 1000 } });
  const a = await step(ledger.reserve(request({ target: 'i1', requests: { cpu: 1500 }, holder: holder(1) })));
  const b = await step(
    ledger.reserve(request({ target: 'i1', requests: { cpu: 1000 }, priority: 100, holder: holder(2) })),
  );
  await step(ledger.reserve(request({ target: 'i1', requests: { cpu: 800 }, waitMs: 0, holder: holder(3) })));
  const d = await step(ledger.reserve(request({ target: 'i2', requests: { cpu: 500 }, holder: holder(4) })));
  await step(
    ledger.reserve(request({ target: 'i1', requests: { cpu: 100 }, priority: 50, holder: holder(5) })),
  );
  await step(
    ledger.recordEvent({
      instance: 'i1',
      reservation: a.outcome.reservation.id,
      type: 'measured',
      reason: 'peak',
      by: 'test',
      data: { memory: 1 },
    }),
  );
  await step(ledger.release(a.outcome.reservation.id, { token: a.token }));
  await step(ledger.release(d.outcome.reservation.id, { token: d.token }));
  for (let i = 0; i < 6; i++) {
    const r = await step(
      ledger.reserve(request({ target: 'i2', requests: { cpu: 10 }, holder: holder(10 + i) })),
    );
    if (i % 2 === 0) await step(ledger.release(r.outcome.reservation.id, { token: r.token }));
  }
  const ev = (es: { type: string; from?: string; to?: string; reason: string; instance: string }[]) =>
    es.map((e) => ({
      ...e,
      seq: undefined,
      at: undefined,
      reservation: label((e as { reservation?: string }).reservation),
    }));
  const rs = (list: Reservation[]) =>
    list.map((r) => ({
      id: label(r.id),
      instance: r.instance,
      state: r.state,
      requests: r.requests,
      priority: r.priority,
      arrival: r.arrival,
      grantSeq: r.grantSeq,
      reason: r.reason,
    }));
  const all = await ledger.events();
  const snap = await store.snapshot('i1');
  return {
    events: ev(all),
    last7: ev(await ledger.events({ limit: 7 })),
    i2last5: ev(await ledger.events({ instance: 'i2', limit: 5 })),
    ofB: ev(await ledger.events({ reservation: b.outcome.reservation.id })),
    ofA: ev(await ledger.events({ reservation: a.outcome.reservation.id })),
    after5: ev(await ledger.events({ afterSeq: all[5]?.seq })),
    after5last4: ev(await ledger.events({ afterSeq: all[5]?.seq, limit: 4 })),
    ascending: all.every((e, i) => i === 0 || e.seq > (all[i - 1]?.seq ?? 0)),
    list: rs(await ledger.list()),
    list3: rs(await ledger.list({ limit: 3 })),
    listI1: rs(await ledger.list({ instance: 'i1' })),
    released: rs(await ledger.list({ states: ['released'] })),
    activeI2: rs(await ledger.list({ instance: 'i2', states: ['granted', 'queued'] })),
    snapshot: { instance: snap?.instance, reservations: rs([...(snap?.reservations ?? [])]) },
    instances: await ledger.instances(),
  };
}

test('etcd: an ended reservation’s keys are bound to the retention lease and deleted by etcd; active ones stay', async () => {
  cluster ??= startEtcdCluster();
  const { endpoints } = await cluster;
  const prefix = uniquePrefix('retention');
  const store = new EtcdStore({ hosts: endpoints, prefix, retentionMs: 2_000 });
  opened.push(store);
  const ledger = new CoreLedger(store, LIVE_HOLDERS);
  await ledger.ensureInstance({ id: 'i1', capacity: { cpu: 1000 }, allocatable: { cpu: 1000 } });
  const keep = await ledger.reserve(request({ requests: { cpu: 100 }, target: 'i1', holder: holder(1) }));
  const ended = await ledger.reserve({
    ...request({ requests: { cpu: 100 }, target: 'i1', holder: holder(2) }),
    idempotencyKey: 'retention-key',
  });
  assert.equal(ended.outcome.kind, 'granted');
  const endedId = ended.outcome.kind === 'granted' ? ended.outcome.reservation.id : '';
  const keepId = keep.outcome.kind === 'granted' ? keep.outcome.reservation.id : '';
  await ledger.release(endedId, { token: ended.token });

  const raw = new Etcd3({ hosts: [...endpoints] });
  try {
    const leaseOf = async (key: string): Promise<string | undefined> => {
      const res = await raw.get(key).exec();
      return res.kvs[0]?.lease;
    };
    assert.notEqual(await leaseOf(store.keys.reservation(endedId)), '0', 'the ended record has a lease');
    assert.notEqual(await leaseOf(store.keys.idempotency('retention-key')), '0');
    assert.equal(await leaseOf(store.keys.reservation(keepId)), '0', 'an active record has none');
    // TTL: the retention plus an eighth of it, rounded up to whole seconds (3 s); etcd checks
    // expiries every 500 ms.
    const deadline = Date.now() + 15_000;
    while ((await ledger.get(endedId)) !== undefined) {
      assert.ok(Date.now() < deadline, 'the ended record was not deleted by its lease');
      await sleep(250);
    }
    assert.equal(await raw.get(store.keys.idempotency('retention-key')).string(), null);
    const kept = await ledger.get(keepId);
    assert.equal(kept?.state, 'granted', 'the active reservation is untouched');
    // Its expiry is rrm's own: the grant is live and renewable however long etcd keeps leases.
    assert.equal((await ledger.renew(keepId, keep.token)).state, 'granted');
  } finally {
    raw.close();
  }
});
