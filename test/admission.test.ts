import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planPreemption } from '../src/admission/preemption.js';
import { applyTransition, type InstanceSnapshot } from '../src/admission/snapshot.js';
import { heldBy } from '../src/admission/holdings.js';
import {
  acknowledgePause,
  findReclaimable,
  reap,
  release,
  setAllocatable,
  submit,
  waitStatus,
} from '../src/admission/transitions.js';
import type { Reservation } from '../src/model/reservation.js';
import { emptySnapshot, request } from './support/core-fixtures.js';

let n = 0;
function add(snap: InstanceSnapshot, over: Parameters<typeof request>[0], now = 0) {
  const id = `r${++n}`;
  const step = submit(snap, { id, tokenHash: `t-${id}`, request: request(over) }, now);
  return { snap: applyTransition(snap, step), step, id };
}
const admin = { admin: true, name: 'test' };
const state = (snap: InstanceSnapshot, id: string): string | undefined =>
  snap.reservations.find((r) => r.id === id)?.state;

test('grants what fits, queues the rest with the shortfall per dimension', () => {
  let s = emptySnapshot({ cpu: 2000, memory: 4096 });
  const a = add(s, { requests: { cpu: 1500, memory: 1024 } });
  s = a.snap;
  assert.equal(a.step.outcome.kind, 'granted');
  const b = add(s, { requests: { cpu: 1000, memory: 1024 } });
  assert.equal(b.step.outcome.kind, 'queued');
  if (b.step.outcome.kind !== 'queued') return;
  assert.deepEqual(b.step.outcome.status.shortfall, [
    { dimension: 'cpu', need: 1000, free: 500, short: 500 },
  ]);
  assert.equal(b.step.outcome.status.position, 1);
});

test('fail-fast is rejected with the shortfall and what waits ahead, and leaves no queue entry', () => {
  let s = emptySnapshot({ cpu: 1000 });
  s = add(s, { requests: { cpu: 1000 } }).snap;
  const w = add(s, { requests: { cpu: 500 } });
  s = w.snap;
  const f = add(s, { requests: { cpu: 500 }, waitMs: 0 });
  assert.equal(f.step.outcome.kind, 'rejected');
  if (f.step.outcome.kind !== 'rejected') return;
  assert.equal(f.step.outcome.code, 'RRM_ERR_CAPACITY_SHORT');
  assert.deepEqual(f.step.outcome.ahead, [w.id]);
  assert.equal(state(f.snap, f.id), undefined);
});

test('a request larger than allocatable is unsatisfiable at once', () => {
  const s = emptySnapshot({ cpu: 1000, 'dpkg-lock': 1 });
  const r = add(s, { requests: { cpu: 500, gpu: 1 } });
  assert.equal(r.step.outcome.kind, 'rejected');
  if (r.step.outcome.kind === 'rejected') assert.equal(r.step.outcome.code, 'RRM_ERR_UNSATISFIABLE');
});

test('a critical waiter queued after five batch waiters is served first', () => {
  let s = emptySnapshot({ cpu: 1000 });
  const running = add(s, { requests: { cpu: 1000 }, preemptible: false });
  s = running.snap;
  const batch: string[] = [];
  for (let i = 0; i < 5; i++) {
    const b = add(s, { requests: { cpu: 1000 }, priority: 100 }, i + 1);
    s = b.snap;
    batch.push(b.id);
  }
  const crit = add(s, { requests: { cpu: 1000 }, priority: 1000 }, 10);
  s = crit.snap;
  assert.equal(waitStatus(s, crit.id, 10)?.position, 1);
  const done = release(s, { id: running.id, caller: admin }, 20);
  s = applyTransition(s, done);
  assert.equal(state(s, crit.id), 'granted');
  for (const b of batch) assert.equal(state(s, b), 'queued');
});

test('backfill takes only what no waiter ahead needs', () => {
  let s = emptySnapshot({ cpu: 2000, memory: 1000 });
  s = add(s, { requests: { cpu: 1500, memory: 100 }, preemptible: false }).snap;
  const head = add(s, { requests: { cpu: 1000, memory: 100 }, priority: 800 });
  s = head.snap;
  // Needs cpu the head is short of: must wait even though it would fit.
  const greedy = add(s, { requests: { cpu: 500 }, priority: 100 });
  s = greedy.snap;
  assert.equal(state(s, greedy.id), 'queued');
  // Needs only memory the head leaves over: may go now.
  const small = add(s, { requests: { memory: 800 }, priority: 100 });
  assert.equal(state(small.snap, small.id), 'granted');
  const big = add(small.snap, { requests: { memory: 200 }, priority: 100 });
  assert.equal(state(big.snap, big.id), 'queued', 'would eat into the memory the head needs');
});

function grant(id: string, over: Partial<Reservation>): Reservation {
  return {
    id,
    instance: 'local',
    state: 'granted',
    mode: 'hard',
    priority: 100,
    requests: { cpu: 1000 },
    preemptible: true,
    mayPreempt: true,
    onPreempt: 'requeue',
    packages: [],
    holder: { host: 'h', pid: 1, startTime: 0, owner: 'o' },
    tokenHash: 'x',
    arrival: 0,
    createdAt: 0,
    grantSeq: 0,
    leaseMs: 1000,
    attempt: 1,
    ...over,
  };
}

test('preemption picks the lowest priority, soft before hard, newest first, never equal or higher', () => {
  const grants = [
    grant('hard-batch-old', { grantSeq: 1 }),
    grant('soft-batch-old', { grantSeq: 2, mode: 'soft' }),
    grant('hard-batch-new', { grantSeq: 3 }),
    grant('normal', { grantSeq: 4, priority: 500 }),
    grant('critical', { grantSeq: 5, priority: 1000 }),
    grant('system-pinned', { grantSeq: 6, priority: 100, preemptible: false }),
  ];
  const p = { requests: { cpu: 1000 }, priority: 800, mode: 'hard' as const, mayPreempt: true };
  assert.deepEqual(
    planPreemption(p, {}, grants)?.map((v) => v.reservation.id),
    ['soft-batch-old'],
  );
  const two = { ...p, requests: { cpu: 2000 } };
  assert.deepEqual(
    planPreemption(two, {}, grants)?.map((v) => v.reservation.id),
    ['soft-batch-old', 'hard-batch-new'],
  );
  const four = { ...p, requests: { cpu: 4000 } };
  assert.deepEqual(
    planPreemption(four, {}, grants)
      ?.map((v) => v.reservation.id)
      .sort(),
    ['hard-batch-new', 'hard-batch-old', 'normal', 'soft-batch-old'],
  );
  assert.equal(
    planPreemption({ ...p, requests: { cpu: 5000 } }, {}, grants),
    null,
    'critical and non-preemptible are never victims',
  );
  assert.equal(planPreemption({ ...p, mayPreempt: false }, {}, grants), null);
  assert.equal(planPreemption({ ...p, mode: 'soft' }, {}, grants), null, 'soft never preempts');
  assert.equal(planPreemption({ ...p, priority: 100 }, {}, grants), null, 'never a victim of equal priority');
});

test('preemption: one larger grant of the same priority rather than several small ones', () => {
  const grants = [
    grant('big-old', { grantSeq: 1, priority: 100, requests: { cpu: 2000 } }),
    grant('small-1', { grantSeq: 2, priority: 100, requests: { cpu: 1000 } }),
    grant('small-2', { grantSeq: 3, priority: 100, requests: { cpu: 1000 } }),
    grant('normal-big', { grantSeq: 4, priority: 500, requests: { cpu: 2000 } }),
  ];
  const p = { requests: { cpu: 2000 }, priority: 800, mode: 'hard' as const, mayPreempt: true };
  // Reprieving the oldest first would leave small-1 and small-2; big-old alone is enough.
  assert.deepEqual(
    planPreemption(p, {}, grants)?.map((v) => v.reservation.id),
    ['big-old'],
  );
  // Never a higher priority to save a victim: with the big batch grant gone, two batch grants
  // are evicted rather than the one normal grant.
  assert.deepEqual(
    planPreemption(p, {}, grants.slice(1))
      ?.map((v) => v.reservation.id)
      .sort(),
    ['small-1', 'small-2'],
  );
});

test('a hard critical request asks a batch grant to stop, and is granted when it has', () => {
  let s = emptySnapshot({ cpu: 1000 });
  const b = add(s, { requests: { cpu: 1000 }, priority: 100 });
  s = b.snap;
  const c = add(s, { requests: { cpu: 1000 }, priority: 1000 }, 5);
  s = c.snap;
  assert.equal(c.step.outcome.kind, 'queued');
  const victim = s.reservations.find((r) => r.id === b.id);
  assert.equal(victim?.preemptRequestedAt, 5);
  assert.equal(victim?.preemptedBy, c.id);
  const stopped = release(
    s,
    { id: b.id, caller: { tokenHash: `t-${b.id}`, admin: false, name: 'holder' } },
    6,
  );
  assert.equal(stopped.outcome.state, 'preempted');
  s = applyTransition(s, stopped);
  assert.equal(state(s, c.id), 'granted');
});

test('a victim that asked to pause is paused only where pausing frees enough, and resumes in queue order', () => {
  let s = emptySnapshot({ cpu: 1000, memory: 1000 });
  const b = add(
    s,
    { requests: { cpu: 1000, memory: 500 }, priority: 100, onPreempt: 'pause', timeLimitMs: 100 },
    0,
  );
  s = b.snap;
  const needsCpu = add(s, { requests: { cpu: 1000, memory: 400 }, priority: 1000 }, 10);
  s = needsCpu.snap;
  const victim = s.reservations.find((r) => r.id === b.id) as Reservation;
  assert.equal(victim.preemptAction, 'pause', 'cpu is what is short: pausing is enough');
  const holderOf = (id: string) => ({ tokenHash: `t-${id}`, admin: false, name: 'holder' });
  s = applyTransition(s, acknowledgePause(s, b.id, holderOf(b.id), 20));
  assert.equal(state(s, needsCpu.id), 'granted');
  assert.deepEqual(heldBy(s.reservations.find((r) => r.id === b.id) as Reservation), { memory: 500 });
  s = applyTransition(s, release(s, { id: needsCpu.id, caller: holderOf(needsCpu.id) }, 70));
  const resumed = s.reservations.find((r) => r.id === b.id) as Reservation;
  assert.equal(resumed.pausedAt, undefined);
  assert.equal(resumed.pausedMs, 50);
  assert.equal(resumed.deadline, 150, 'paused time does not count against the time limit');
  // Memory is what is short: pausing frees none, so the victim is evicted.
  let m = emptySnapshot({ cpu: 2000, memory: 1000 });
  const p = add(m, { requests: { cpu: 100, memory: 800 }, priority: 100, onPreempt: 'pause' });
  m = add(p.snap, { requests: { memory: 500 }, priority: 1000 }).snap;
  assert.equal(m.reservations.find((r) => r.id === p.id)?.preemptAction, 'evict');
});

test('a paused grant is asked again, to be evicted, when a later request needs what it still holds', () => {
  let s = emptySnapshot({ cpu: 2000, memory: 1000 });
  const holderOf = (id: string) => ({ tokenHash: `t-${id}`, admin: false, name: 'holder' });
  const b = add(s, { requests: { cpu: 2000, memory: 600 }, priority: 100, onPreempt: 'pause' }, 0);
  s = add(b.snap, { requests: { cpu: 1000, memory: 100 }, priority: 1000 }, 1).snap;
  s = applyTransition(s, acknowledgePause(s, b.id, holderOf(b.id), 2));
  const paused = s.reservations.find((r) => r.id === b.id) as Reservation;
  assert.equal(paused.pausedAt, 2);
  assert.equal(paused.preemptRequestedAt, undefined, 'the pause request is settled');
  const needsMemory = add(s, { requests: { cpu: 1000, memory: 600 }, priority: 1000 }, 3);
  s = needsMemory.snap;
  assert.equal(state(s, needsMemory.id), 'queued', 'not granted while the paused grant holds the memory');
  const asked = s.reservations.find((r) => r.id === b.id) as Reservation;
  assert.equal(asked.preemptAction, 'evict', 'freezing again frees no memory');
  assert.equal(asked.preemptRequestedAt, 3, 'a new request, which the holder must see as new');
  s = applyTransition(s, release(s, { id: b.id, caller: holderOf(b.id) }, 4));
  assert.equal(state(s, needsMemory.id), 'granted');
});

test('a victim that does not stop in time is forced; dead holders and lapsed leases are reclaimed', () => {
  let s = emptySnapshot({ cpu: 1000 });
  const b = add(s, { requests: { cpu: 1000 }, priority: 100 }, 0);
  s = b.snap;
  s = add(s, { requests: { cpu: 1000 }, priority: 1000 }, 1).snap;
  assert.equal(findReclaimable(s, { deadHolders: new Set(), forceAfterMs: 100 }, 50).length, 0);
  const late = findReclaimable(s, { deadHolders: new Set(), forceAfterMs: 100 }, 101);
  assert.deepEqual(
    late.map((r) => [r.reservation.id, r.reservation.state]),
    [[b.id, 'preempted']],
  );
  const dead = findReclaimable(s, { deadHolders: new Set([b.id]), forceAfterMs: 100 }, 2);
  assert.equal(dead[0]?.reservation.state, 'expired');
  const lapsed = findReclaimable(s, { deadHolders: new Set(), forceAfterMs: 1e9 }, 60_000);
  assert.equal(lapsed.length, 2, 'both leases (30 s) lapsed');
  s = applyTransition(s, reap(s, dead, 2));
  assert.equal(s.reservations.find((r) => r.state === 'granted')?.priority, 1000);
});

test('allocatable cannot drop below what is granted; raising it admits waiters', () => {
  let s = emptySnapshot({ cpu: 1000 });
  s = add(s, { requests: { cpu: 1000 } }).snap;
  const w = add(s, { requests: { cpu: 1000 } });
  s = w.snap;
  assert.throws(() => setAllocatable(s, { cpu: 500 }, { cpu: 500 }, 1, 't'), {
    code: 'RRM_ERR_CAPACITY_IN_USE',
  });
  s = applyTransition(s, setAllocatable(s, { cpu: 2000 }, { cpu: 2000 }, 1, 't'));
  assert.equal(state(s, w.id), 'granted');
});

test('release checks the token; a holder cannot release another holder’s grant', () => {
  let s = emptySnapshot({ cpu: 1000 });
  const a = add(s, { requests: { cpu: 100 } });
  s = a.snap;
  assert.throws(() => release(s, { id: a.id, caller: { tokenHash: 'wrong', admin: false, name: 'x' } }, 1), {
    code: 'RRM_ERR_NOT_HOLDER',
  });
});
