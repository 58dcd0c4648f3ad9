/**
 * Fleet mode on a real 3-member etcd: placement for `target: any` across 20 instances under 20
 * concurrent clients, checked by replaying every etcd revision of the run; preemption confined to
 * one instance; down instances take nothing new and their reservations end.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Etcd3, type IKeyValue } from 'etcd3';
import { acquire } from '../../src/client/acquire.js';
import { CoreLedger, type LedgerEnvironment } from '../../src/ledger/core-ledger.js';
import { EtcdKeys } from '../../src/ledger/etcd/etcd-keys.js';
import { EtcdStore } from '../../src/ledger/etcd/etcd-store.js';
import { INSTANCE_DOWN_REASON } from '../../src/admission/transitions.js';
import { isRrmError } from '../../src/model/errors.js';
import { ANY_INSTANCE, type Reservation, type ReservationRequest } from '../../src/model/reservation.js';
import { request } from '../support/core-fixtures.js';
import { startEtcdCluster, uniquePrefix, type EtcdCluster } from '../support/etcd-cluster.js';

const env: LedgerEnvironment = {
  now: Date.now,
  hostname: 'fleet-test',
  isHolderAlive: () => true,
  reclaimWork: async () => undefined,
  forceAfterMs: 60_000,
};
const holder = { host: 'fleet-test', pid: process.pid, startTime: 0, owner: 'fleet' };
const GiB = 2 ** 30;
/**
 * Short leases, so that a reservation whose reply was lost in an election is reclaimed soon. The
 * clients hold for milliseconds and renew nothing: a grant whose release an election delays past
 * its lease has expired by then, which is also an end with a reason.
 */
const LEASE_MS = 5_000;

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

function ledger(prefix: string): CoreLedger {
  const store = new EtcdStore({ hosts: cluster.endpoints, prefix, timeoutMs: 15_000 });
  opened.push(store);
  return new CoreLedger(store, env);
}

/** Grants a whole 1-CPU instance to a holder (a time limit makes it promise an earlier start). */
async function fillInstance(
  l: CoreLedger,
  target: string,
  timeLimitMs?: number,
): Promise<{ id: string; token: string }> {
  const { outcome, token } = await l.reserve(
    request({ target, requests: { cpu: 1000 }, holder, timeLimitMs }),
  );
  assert.equal(outcome.kind, 'granted');
  return { id: outcome.reservation.id, token };
}

function any(
  over: Partial<ReservationRequest> & { requests: ReservationRequest['requests'] },
): ReservationRequest {
  return request({
    target: ANY_INSTANCE,
    placement: { selector: {}, strategy: 'least-allocated' },
    holder,
    ...over,
  });
}

/**
 * Replays every revision of the run from etcd's history (a watch from revision 1): after each
 * revision, Σ granted ≤ allocatable on every instance, and no reservation is granted twice.
 */
async function replay(prefix: string): Promise<{ revisions: number; grants: number; peak: number }> {
  const keys = new EtcdKeys(prefix);
  const sentinel = `${prefix}zz-end-of-run`;
  await raw.put(sentinel).value('1');
  const state = new Map<string, string>();
  const grantedOnce = new Map<string, number>();
  let revisions = 0;
  let peak = 0;
  const check = (rev: string, touched: Set<string>): void => {
    revisions++;
    for (const inst of touched) {
      const rec = state.get(keys.instance(inst));
      if (!rec) continue;
      const alloc = (JSON.parse(rec) as { allocatable: Record<string, number> }).allocatable;
      const used: Record<string, number> = {};
      for (const [k, v] of state) {
        if (!k.startsWith(keys.activePrefix(inst))) continue;
        const r = JSON.parse(v) as Reservation;
        if (r.state !== 'granted') continue;
        for (const [d, n] of Object.entries(r.requests)) used[d] = (used[d] ?? 0) + n;
      }
      for (const [d, n] of Object.entries(used)) {
        assert.ok(
          n <= (alloc[d] ?? 0),
          `revision ${rev}: ${inst} has ${d} ${n} granted > allocatable ${alloc[d]}`,
        );
      }
      peak = Math.max(peak, (used.cpu ?? 0) / (alloc.cpu ?? 1));
    }
  };
  await new Promise<void>((resolve, reject) => {
    let rev = '';
    let touched = new Set<string>();
    const apply = (kv: IKeyValue, type: 'put' | 'delete'): boolean => {
      const key = kv.key.toString();
      if (kv.mod_revision !== rev) {
        if (rev) check(rev, touched);
        rev = kv.mod_revision;
        touched = new Set();
      }
      if (key === sentinel) return true;
      const activeRest = key.startsWith(`${prefix}active/`)
        ? key.slice(`${prefix}active/`.length)
        : undefined;
      if (activeRest !== undefined) touched.add(decodeURIComponent(activeRest.split('/')[0] as string));
      if (type === 'delete') {
        state.delete(key);
        return false;
      }
      const value = kv.value.toString();
      if (activeRest !== undefined) {
        const r = JSON.parse(value) as Reservation;
        const before = state.get(key);
        const was = before ? (JSON.parse(before) as Reservation).state : undefined;
        if (r.state === 'granted' && was !== 'granted') {
          const n = (grantedOnce.get(r.id) ?? 0) + 1;
          grantedOnce.set(r.id, n);
          assert.equal(n, 1, `revision ${kv.mod_revision}: ${r.id} granted a second time`);
        }
      }
      state.set(key, value);
      return false;
    };
    void raw
      .watch()
      .prefix(prefix)
      .startRevision('1')
      .create()
      .then((w) => {
        w.on('data', (res) => {
          try {
            for (const e of res.events) {
              if (apply(e.kv, e.type === 'Delete' ? 'delete' : 'put')) {
                check(rev, touched);
                void w.cancel();
                return resolve();
              }
            }
          } catch (err) {
            void w.cancel();
            reject(err);
          }
        });
        w.on('error', reject);
      }, reject);
  });
  return { revisions, grants: grantedOnce.size, peak };
}

test('20 instances × 20 clients × 2,000 reservations with mixed targets, a member then the leader killed: every revision replayed, none over-allocated, every request accounted for', async (t) => {
  const prefix = uniquePrefix('fleet');
  const admin = ledger(prefix);
  const alloc = { cpu: 2000, memory: 4 * GiB };
  const regs = [];
  for (let i = 0; i < 20; i++) {
    const id = `i${String(i).padStart(2, '0')}`;
    await admin.ensureInstance({
      id,
      capacity: alloc,
      allocatable: alloc,
      labels: { zone: i < 10 ? 'a' : 'b' },
    });
    regs.push(
      await admin.store.register(
        id,
        { host: 'fleet-test', pid: process.pid, since: Date.now(), driver: 'none' },
        30_000,
      ),
    );
  }
  const CLIENTS = 20;
  const PER_CLIENT = 100;
  const outcomes = new Map<string, number>();
  const count = (k: string): void => void outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
  const placedOn = new Map<string, number>();
  let rnd = 12345;
  const random = (): number => (rnd = (rnd * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const started = Date.now();
  let running = true;
  const marks = new Map<string, number>();
  const grantTimes: number[] = [];
  // Chaos beside the clients: a follower killed and brought back, then the leader.
  const chaos = (async () => {
    const timeline: string[] = [];
    const at = (what: string) => {
      marks.set(what, Date.now());
      timeline.push(`${what} ${((Date.now() - started) / 1000).toFixed(1)} s`);
    };
    await sleep(2_500);
    const leader = await cluster.leader();
    const follower = [0, 1, 2].find((m) => m !== leader) as number;
    await cluster.kill(follower);
    at('follower killed');
    await sleep(2_500);
    await cluster.start(follower);
    await cluster.waitHealthy();
    at('follower back');
    if (!running) return timeline;
    const second = (await cluster.leader()) as number;
    await cluster.kill(second);
    at('leader killed');
    while ((await cluster.leader()) === undefined) await sleep(50);
    at('new leader');
    await sleep(2_500);
    await cluster.start(second);
    await cluster.waitHealthy();
    at('old leader back');
    return timeline;
  })();
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      const me = ledger(prefix);
      for (let n = 0; n < PER_CLIENT; n++) {
        const kind = random();
        const cpu = 200 + Math.floor(random() * 9) * 100;
        const memory = Math.floor((0.25 + random()) * GiB);
        const waitMs = random() < 0.4 ? 0 : 2_000;
        const base = {
          leaseMs: LEASE_MS,
          requests: { cpu, memory },
          waitMs,
          priority: Math.floor(random() * 3),
          mayPreempt: false,
        };
        const req =
          kind < 0.45
            ? any(base)
            : kind < 0.65
              ? any({ ...base, placement: { selector: { zone: 'a' }, strategy: 'most-allocated' } })
              : kind < 0.9
                ? request({ ...base, target: `i0${Math.floor(random() * 3)}`, holder })
                : kind < 0.95
                  ? any({ ...base, requests: { cpu: 2500 } })
                  : any({ ...base, placement: { selector: { zone: 'nowhere' }, strategy: 'balanced' } });
        try {
          const got = await acquire(me, req, { pollMs: 200 });
          assert.equal(got.reservation.state, 'granted');
          grantTimes.push(Date.now());
          placedOn.set(got.handle.instance, (placedOn.get(got.handle.instance) ?? 0) + 1);
          await new Promise((r) => setTimeout(r, random() * 10));
          let ended: Reservation | undefined;
          for (let tries = 0; !ended; tries++) {
            try {
              ended = await me.release(got.handle.id, { token: got.handle.token });
            } catch (e) {
              // An election outlasted the call's budget: release is idempotent, so ask again.
              if (!isRrmError(e) || e.code !== 'RRM_ERR_LEDGER' || tries > 5) throw e;
            }
          }
          assert.ok(ended.state === 'released' || ended.state === 'expired', ended.state);
          count(ended.state === 'released' ? 'granted-and-released' : 'granted-lease-lapsed');
        } catch (e) {
          if (!isRrmError(e)) throw e;
          assert.ok(e.message.length > 10, `a reason: ${e.message}`);
          if (e.code === 'RRM_ERR_WAIT_TIMEOUT') count('timed-out');
          else if (e.code === 'RRM_ERR_LEDGER') count('ledger-unavailable');
          else if (
            ['RRM_ERR_CAPACITY_SHORT', 'RRM_ERR_UNSATISFIABLE', 'RRM_ERR_NO_INSTANCE'].includes(e.code)
          )
            count(`rejected:${e.code}`);
          else throw e;
        }
      }
    }),
  );
  running = false;
  const timeline = await chaos;
  const seconds = (Date.now() - started) / 1000;
  const total = [...outcomes.values()].reduce((a, b) => a + b, 0);
  assert.equal(total, CLIENTS * PER_CLIENT, 'every request ended one way or another');
  // The leader was killed while the clients ran, and work went on under the new one.
  const elected = marks.get('new leader');
  assert.ok(elected !== undefined, `the leader was killed mid-run: ${timeline.join(', ')}`);
  const afterElection = grantTimes.filter((t) => t > elected).length;
  assert.ok(afterElection >= 100, `${afterElection} grants after the election`);
  // An election may cost a few calls their budget; it must stay a few.
  const unavailable = (outcomes.get('ledger-unavailable') ?? 0) + (outcomes.get('granted-lease-lapsed') ?? 0);
  assert.ok(unavailable <= CLIENTS * PER_CLIENT * 0.02, `${unavailable} requests lost to the elections`);
  assert.ok((outcomes.get('granted-and-released') ?? 0) > 1000, 'most requests were granted');
  assert.ok((outcomes.get('rejected:RRM_ERR_UNSATISFIABLE') ?? 0) > 0, 'too-large requests are rejected');
  assert.ok((outcomes.get('rejected:RRM_ERR_NO_INSTANCE') ?? 0) > 0, 'unmatched selectors are rejected');
  assert.ok(placedOn.size >= 12, `placement spread work over the fleet (${placedOn.size} instances)`);
  // A request whose reply an election swallowed may have left a reservation: its lease runs out.
  if (outcomes.has('ledger-unavailable')) {
    await sleep(LEASE_MS + 500);
    for (let i = 0; i < 20; i++) await admin.sweep(`i${String(i).padStart(2, '0')}`);
  }
  const left = await admin.list({ states: ['granted', 'queued'], limit: 100_000 });
  assert.deepEqual(
    left.map((r) => r.id),
    [],
    'nothing is left granted or queued',
  );
  const history = await replay(prefix);
  assert.ok(history.grants >= (outcomes.get('granted-and-released') ?? 0));
  t.diagnostic(
    `${total} requests in ${seconds.toFixed(1)} s: ${JSON.stringify(Object.fromEntries(outcomes))}; ` +
      `${history.revisions} revisions replayed, ${history.grants} grants, peak CPU share ${(history.peak * 100).toFixed(0)}%; ` +
      timeline.join(', '),
  );
  await Promise.all(regs.map((r) => r.stop()));
});

test('fleet preemption picks one instance: the lowest-priority, fewest victims', async () => {
  const prefix = uniquePrefix('fleet-preempt');
  const l = ledger(prefix);
  const alloc = { cpu: 2000 };
  for (const id of ['x', 'y', 'z']) await l.ensureInstance({ id, capacity: alloc, allocatable: alloc });
  const grant = async (target: string, cpu: number, priority: number): Promise<Reservation> => {
    const { outcome } = await l.reserve(request({ target, requests: { cpu }, priority, holder }));
    assert.equal(outcome.kind, 'granted');
    return outcome.reservation;
  };
  const x = await grant('x', 2000, 5);
  const y1 = await grant('y', 1000, 1);
  const y2 = await grant('y', 1000, 1);
  const z = await grant('z', 2000, 1);
  const { outcome } = await l.reserve(any({ requests: { cpu: 2000 }, priority: 10 }));
  assert.equal(outcome.kind, 'queued');
  assert.equal(
    outcome.reservation.instance,
    'z',
    'one victim of priority 1 beats two (y) and priority 5 (x)',
  );
  assert.equal(outcome.kind === 'queued' && outcome.status.victims.join(), z.id);
  for (const other of [x, y1, y2]) assert.equal((await l.get(other.id))?.preemptRequestedAt, undefined);
  assert.ok((await l.get(z.id))?.preemptRequestedAt, 'the victim is asked to stop');
  await l.release(z.id, { token: '', admin: true });
  assert.equal((await l.get(outcome.reservation.id))?.state, 'granted', 'granted once the victim stopped');
});

test('a down instance takes nothing new, its reservations end, and a waiter there is placed again', async () => {
  const prefix = uniquePrefix('fleet-down');
  const l = ledger(prefix);
  const alloc = { cpu: 1000 };
  for (const id of ['a', 'b']) await l.ensureInstance({ id, capacity: alloc, allocatable: alloc });
  const regA = await l.store.register('a', { host: 'h', pid: 1, since: Date.now(), driver: 'none' }, 2_000);
  const regB = await l.store.register('b', { host: 'h', pid: 2, since: Date.now(), driver: 'none' }, 2_000);
  const onA = await fillInstance(l, 'a', 60_000);
  const onB = await fillInstance(l, 'b');
  // Both full: the waiter queues on `a`, where a time limit promises the earlier start.
  const moves: string[] = [];
  const waiting = acquire(l, any({ requests: { cpu: 1000 } }), {
    pollMs: 200,
    onMove: (from, to) => moves.push(`${from.instance}->${to.instance}`),
  });
  await new Promise((r) => setTimeout(r, 300));
  const queuedOn = (await l.list({ states: ['queued'] }))[0] as Reservation;
  assert.equal(queuedOn?.instance, 'a');
  await regA.stop(); // the agent of `a` is gone
  const status = await l.instanceStatus();
  assert.deepEqual(
    status.map((s) => [s.instance.id, s.state]),
    [
      ['a', 'down'],
      ['b', 'up'],
    ],
  );
  const refused = await l.reserve(request({ target: 'a', requests: { cpu: 1 }, holder }));
  assert.equal(refused.outcome.kind === 'rejected' && refused.outcome.code, 'RRM_ERR_INSTANCE_DOWN');
  await l.sweep('a'); // any fleet member's sweep (or the waiter's own poll) ends what was there
  for (const id of [onA.id, queuedOn.id]) {
    const r = await l.get(id);
    assert.deepEqual([r?.state, r?.reason], ['expired', INSTANCE_DOWN_REASON]);
  }
  await new Promise((r) => setTimeout(r, 500));
  await l.release(onB.id, { token: onB.token });
  const got = await waiting;
  assert.equal(got.handle.instance, 'b', 'the waiter was placed on the instance that is up');
  assert.deepEqual(moves, ['a->b']);
  await regB.stop();
});

test('a waiter for any is granted on whichever instance frees first, both up', async () => {
  const prefix = uniquePrefix('fleet-first-free');
  const l = ledger(prefix);
  const alloc = { cpu: 1000 };
  for (const id of ['a', 'b']) await l.ensureInstance({ id, capacity: alloc, allocatable: alloc });
  // `a` promises the earlier start (its grant has a time limit), so the waiter queues there;
  // then `b` frees first, and the waiter moves and is granted on `b` long before `a` would free.
  const onA = await fillInstance(l, 'a', 60_000);
  const onB = await fillInstance(l, 'b');
  const moves: string[] = [];
  const waiting = acquire(l, any({ requests: { cpu: 1000 } }), {
    pollMs: 200,
    onMove: (from, to) => moves.push(`${from.instance}->${to.instance}`),
  });
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(((await l.list({ states: ['queued'] }))[0] as Reservation | undefined)?.instance, 'a');
  await l.release(onB.id, { token: onB.token });
  const got = await waiting;
  assert.equal(got.handle.instance, 'b');
  assert.deepEqual(moves, ['a->b']);
  assert.equal((await l.get(onA.id))?.state, 'granted', '`a` is still busy');
  await l.release(got.handle.id, { token: got.handle.token });
  await l.release(onA.id, { token: onA.token });
  assert.deepEqual(await l.list({ states: ['granted', 'queued'] }), [], 'nothing left behind');
});
