/**
 * The Ledger's behaviour, written once and run unchanged against every Store: SQLite
 * (test/sqlite-ledger.test.ts) and etcd on a real 3-member cluster (test/etcd/etcd-ledger.test.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CoreLedger } from '../../src/ledger/core-ledger.js';
import type { Store } from '../../src/ledger/ledger.js';
import { request } from './core-fixtures.js';

export interface StoreFactory {
  readonly name: string;
  /** A fresh, empty store; `reopen` gives a second handle on the same ledger (another process's view). */
  create(): Promise<{ store: Store; reopen: () => Promise<Store> }>;
}

function ledgerOn(store: Store, dead = new Set<number>(), killed: number[] = []): CoreLedger {
  return new CoreLedger(store, {
    now: Date.now,
    hostname: 'test-host',
    isHolderAlive: (pid) => !dead.has(pid),
    reclaimWork: async (r) => void (r.pgid !== undefined && killed.push(r.pgid)),
    forceAfterMs: 60_000,
  });
}

const holder = (pid: number) => ({ host: 'test-host', pid, startTime: 0, owner: 'tester' });

export function ledgerConformance(factory: StoreFactory): void {
  const setup = async () => {
    const { store, reopen } = await factory.create();
    const ledger = ledgerOn(store);
    await ledger.ensureInstance({ id: 'i1', capacity: { cpu: 2000 }, allocatable: { cpu: 2000 } });
    return { ledger, store, reopen };
  };

  test(`${factory.name}: reserve, queue, release hands capacity on in queue order`, async () => {
    const { ledger } = await setup();
    const a = await ledger.reserve(request({ target: 'i1', requests: { cpu: 2000 }, holder: holder(1) }));
    assert.equal(a.outcome.kind, 'granted');
    const b = await ledger.reserve(
      request({ target: 'i1', requests: { cpu: 1000 }, priority: 100, holder: holder(2) }),
    );
    const c = await ledger.reserve(
      request({ target: 'i1', requests: { cpu: 2000 }, priority: 800, holder: holder(3), mayPreempt: false }),
    );
    assert.equal(b.outcome.kind, 'queued');
    assert.equal(c.outcome.kind, 'queued');
    if (c.outcome.kind === 'queued') assert.equal(c.outcome.status.position, 1);
    await ledger.release(a.outcome.reservation.id, { token: a.token });
    assert.equal((await ledger.get(c.outcome.reservation.id))?.state, 'granted');
    assert.equal((await ledger.get(b.outcome.reservation.id))?.state, 'queued');
    await ledger.close();
  });

  test(`${factory.name}: release is idempotent and needs the holder's token`, async () => {
    const { ledger } = await setup();
    const a = await ledger.reserve(request({ target: 'i1', requests: { cpu: 100 }, holder: holder(1) }));
    const id = a.outcome.reservation.id;
    await assert.rejects(ledger.release(id, { token: 'forged' }), { code: 'RRM_ERR_NOT_HOLDER' });
    const once = await ledger.release(id, { token: a.token });
    const twice = await ledger.release(id, { token: a.token });
    assert.equal(once.state, 'released');
    assert.deepEqual(twice, once);
    const ended = (await ledger.events({ reservation: id })).filter((e) => e.type === 'released');
    assert.equal(ended.length, 1);
    await assert.rejects(ledger.renew(id, a.token), { code: 'RRM_ERR_NOT_GRANTED' });
    await assert.rejects(ledger.release('rsv_missing', { admin: true }), { code: 'RRM_ERR_NOT_FOUND' });
    await ledger.close();
  });

  test(`${factory.name}: a dead holder is reclaimed, its process group killed before the next grant`, async () => {
    const { store } = await setup();
    const dead = new Set<number>();
    const killed: number[] = [];
    const ledger = ledgerOn(store, dead, killed);
    const a = await ledger.reserve(request({ target: 'i1', requests: { cpu: 2000 }, holder: holder(10) }));
    await ledger.setProcessGroup(a.outcome.reservation.id, a.token, 4242);
    const b = await ledger.reserve(request({ target: 'i1', requests: { cpu: 2000 }, holder: holder(11) }));
    assert.equal(b.outcome.kind, 'queued');
    assert.deepEqual(await ledger.sweep('i1'), []);
    dead.add(10);
    const reclaimed = await ledger.sweep('i1');
    assert.deepEqual(
      reclaimed.map((r) => r.state),
      ['expired'],
    );
    assert.deepEqual(killed, [4242]);
    assert.equal((await ledger.get(b.outcome.reservation.id))?.state, 'granted');
    await ledger.close();
  });

  test(`${factory.name}: grants, queue and events survive reopening`, async () => {
    const { ledger, reopen } = await setup();
    const a = await ledger.reserve(request({ target: 'i1', requests: { cpu: 2000 }, holder: holder(1) }));
    const b = await ledger.reserve(request({ target: 'i1', requests: { cpu: 500 }, holder: holder(2) }));
    await ledger.close();
    const again = ledgerOn(await reopen());
    const active = await again.list({ instance: 'i1', states: ['granted', 'queued'] });
    assert.deepEqual(
      active.map((r) => [r.id, r.state]).sort(),
      [
        [a.outcome.reservation.id, 'granted'],
        [b.outcome.reservation.id, 'queued'],
      ].sort(),
    );
    assert.ok((await again.events({})).length >= 3);
    await again.close();
  });

  test(`${factory.name}: bad decisions abort the transaction and change nothing`, async () => {
    const { ledger, store } = await setup();
    await ledger.reserve(request({ target: 'i1', requests: { cpu: 1500 }, holder: holder(1) }));
    const before = await store.snapshot('i1');
    await assert.rejects(ledger.setAllocatable('i1', { cpu: 1000 }, { cpu: 1000 }, 't'), {
      code: 'RRM_ERR_CAPACITY_IN_USE',
    });
    assert.deepEqual(await store.snapshot('i1'), before);
    await ledger.close();
  });

  test(`${factory.name}: renewal moves the lease on; a lapsed lease is reclaimed and its capacity handed on`, async () => {
    const { ledger } = await setup();
    const a = await ledger.reserve(
      request({ target: 'i1', requests: { cpu: 2000 }, leaseMs: 400, holder: holder(1) }),
    );
    const b = await ledger.reserve(request({ target: 'i1', requests: { cpu: 1000 }, holder: holder(2) }));
    assert.equal(b.outcome.kind, 'queued');
    const id = a.outcome.reservation.id;
    const first = (await ledger.get(id))?.leaseExpiresAt ?? 0;
    await new Promise((r) => setTimeout(r, 250));
    const renewed = await ledger.renew(id, a.token);
    assert.ok((renewed.leaseExpiresAt ?? 0) > first, 'renewal moves the expiry on');
    await assert.rejects(ledger.renew(id, 'forged-token'), { code: 'RRM_ERR_NOT_HOLDER' });
    await new Promise((r) => setTimeout(r, 250));
    assert.deepEqual(await ledger.sweep('i1'), [], 'renewed: not yet expired');
    await new Promise((r) => setTimeout(r, 300));
    const reclaimed = await ledger.sweep('i1');
    assert.deepEqual(
      reclaimed.map((r) => [r.id, r.state]),
      [[id, 'expired']],
    );
    assert.equal((await ledger.get(b.outcome.reservation.id))?.state, 'granted');
    await ledger.close();
  });

  test(`${factory.name}: preemption is two-phase: the victim is asked to stop and keeps its share until it has`, async () => {
    const { ledger } = await setup();
    const batch = await ledger.reserve(
      request({ target: 'i1', requests: { cpu: 2000 }, priority: 100, holder: holder(1) }),
    );
    const critical = await ledger.reserve(
      request({ target: 'i1', requests: { cpu: 1500 }, priority: 1000, holder: holder(2) }),
    );
    assert.equal(critical.outcome.kind, 'queued');
    if (critical.outcome.kind === 'queued')
      assert.deepEqual(critical.outcome.status.victims, [batch.outcome.reservation.id]);
    const victim = await ledger.get(batch.outcome.reservation.id);
    assert.equal(victim?.state, 'granted', 'the victim still holds its share');
    assert.ok(victim?.preemptRequestedAt !== undefined, 'and is asked to stop');
    await ledger.release(batch.outcome.reservation.id, { token: batch.token });
    assert.equal((await ledger.get(batch.outcome.reservation.id))?.state, 'preempted');
    assert.equal((await ledger.get(critical.outcome.reservation.id))?.state, 'granted');
    await ledger.close();
  });

  test(`${factory.name}: a retried create with its idempotency key returns the same reservation`, async () => {
    const { ledger } = await setup();
    const req = {
      ...request({ target: 'i1', requests: { cpu: 100 }, holder: holder(1) }),
      idempotencyKey: 'k-1',
    };
    const first = await ledger.reserve(req, { token: 'token-of-k-1' });
    const again = await ledger.reserve(req, { token: 'token-of-k-1' });
    assert.equal(again.outcome.reservation.id, first.outcome.reservation.id);
    assert.equal(again.outcome.kind, 'granted');
    // The key is bound to its caller's token: another caller cannot take the reservation over.
    await assert.rejects(ledger.reserve(req, { token: 'another-token' }), {
      code: 'RRM_ERR_IDEMPOTENCY_CONFLICT',
    });
    assert.equal((await ledger.list({ instance: 'i1' })).length, 1, 'one reservation, not two');
    await ledger.close();
  });

  test(`${factory.name}: a commit through another handle wakes watchers; unsubscribing stops them`, async () => {
    const { ledger, reopen } = await setup();
    const other = ledgerOn(await reopen());
    let calls = 0;
    let woke: () => void = () => undefined;
    const unwatch = ledger.watch(() => {
      calls++;
      woke();
    });
    await new Promise((r) => setTimeout(r, 100)); // the watch is established
    const wakes = new Promise<void>((r) => (woke = r));
    await other.reserve(request({ target: 'i1', requests: { cpu: 100 }, holder: holder(3) }));
    await Promise.race([
      wakes,
      new Promise((_, reject) => setTimeout(() => reject(new Error('no wake-up within 5 s')), 5_000)),
    ]);
    unwatch();
    const seen = calls;
    await other.reserve(request({ target: 'i1', requests: { cpu: 100 }, holder: holder(4) }));
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(calls, seen, 'no calls after unsubscribing');
    await other.close();
    await ledger.close();
  });

  test(`${factory.name}: concurrent reservations from two handles never over-allocate`, async () => {
    const { ledger, reopen } = await setup();
    const other = ledgerOn(await reopen());
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        (i % 2 ? ledger : other).reserve(
          request({ target: 'i1', requests: { cpu: 300 }, waitMs: 0, holder: holder(100 + i) }),
        ),
      ),
    );
    assert.equal(results.filter((r) => r.outcome.kind === 'granted').length, 6);
    assert.equal(results.filter((r) => r.outcome.kind === 'rejected').length, 34);
    await other.close();
    await ledger.close();
  });
}
