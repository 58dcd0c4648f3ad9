/**
 * Property-based tests of the pure core: random sequences of submit, release, victim stop,
 * holder death, lease expiry and capacity changes, checking the ledger's invariants after each.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { compareQueue } from '../src/admission/queue-order.js';
import { schedule } from '../src/admission/schedule.js';
import { applyTransition, type InstanceSnapshot, type Transition } from '../src/admission/snapshot.js';
import {
  acknowledgePause,
  findReclaimable,
  reap,
  release,
  setAllocatable,
  submit,
} from '../src/admission/transitions.js';
import { heldBy } from '../src/admission/holdings.js';
import { isRrmError } from '../src/model/errors.js';
import type { Reservation } from '../src/model/reservation.js';
import { BUILTIN_DIMENSIONS, fits, sum } from '../src/model/vector.js';
import { emptySnapshot, request } from './support/core-fixtures.js';

const PRIORITIES = [100, 500, 800, 1000];

const vectorArb = fc.record(
  {
    cpu: fc.integer({ min: 0, max: 3000 }),
    memory: fc.integer({ min: 0, max: 3000 }),
    'dpkg-lock': fc.integer({ min: 0, max: 1 }),
  },
  { requiredKeys: [] },
);

const opArb = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('submit' as const),
      // CPU-only requests are what a pause can make room for.
      requests: fc.oneof(vectorArb, fc.record({ cpu: fc.integer({ min: 1, max: 3000 }) })),
      mode: fc.constantFrom('hard' as const, 'soft' as const),
      priority: fc.constantFrom(...PRIORITIES),
      failFast: fc.boolean(),
      preemptible: fc.oneof(
        { weight: 3, arbitrary: fc.constant(true) },
        { weight: 1, arbitrary: fc.constant(false) },
      ),
      mayPreempt: fc.oneof(
        { weight: 3, arbitrary: fc.constant(true) },
        { weight: 1, arbitrary: fc.constant(false) },
      ),
      timeLimit: fc.option(fc.integer({ min: 1, max: 50 }), { nil: undefined }),
      onPreempt: fc.constantFrom('requeue' as const, 'pause' as const),
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('release' as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('victims-stop' as const) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('victims-pause' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('holder-dies' as const), pick: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('time-passes' as const),
      ms: fc.integer({ min: 1, max: 40_000 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('capacity' as const),
      cpu: fc.integer({ min: 0, max: 6000 }),
      memory: fc.integer({ min: 0, max: 6000 }),
    }),
  },
);

type Op = typeof opArb extends fc.Arbitrary<infer T> ? T : never;

function checkCapacity(snap: InstanceSnapshot): void {
  const granted = sum(snap.reservations.map(heldBy));
  for (const [dim, n] of Object.entries(granted)) {
    assert.ok(
      n <= (snap.instance.allocatable[dim] ?? 0),
      `${dim}: granted ${n} > allocatable ${snap.instance.allocatable[dim] ?? 0}`,
    );
  }
  // A paused grant holds its memory, disk and named resources; its CPU, disk I/O and network are
  // handed on, so the invariant counts what each hard grant holds.
  const hard = sum(snap.reservations.filter((r) => r.state === 'granted' && r.mode === 'hard').map(heldBy));
  assert.ok(fits(hard, snap.instance.allocatable), 'Σ hard grants ≤ allocatable');
}

/**
 * A lower-ranked grant made while a waiter ahead of it was queued must never delay that waiter:
 * at every later state, taking all such overtakers away would not let any waiter they overtook start.
 */
function checkNotDelayed(snap: InstanceSnapshot, overtook: Map<string, Set<string>>): void {
  const queuedIds = new Set(snap.reservations.filter((r) => r.state === 'queued').map((r) => r.id));
  const overtakers = snap.reservations.filter(
    (r) => r.state === 'granted' && [...(overtook.get(r.id) ?? [])].some((h) => queuedIds.has(h)),
  );
  if (overtakers.length === 0) return;
  const ids = new Set(overtakers.map((o) => o.id));
  const replay = schedule({ ...snap, reservations: snap.reservations.filter((r) => !ids.has(r.id)) }, 0);
  for (const r of replay.upserts) {
    if (r.state !== 'granted') continue;
    const by = overtakers.filter((o) => overtook.get(o.id)?.has(r.id));
    assert.equal(
      by.length,
      0,
      `${r.id} (priority ${r.priority}) is delayed by ${by.map((b) => `${b.id}/${b.priority}`).join(',')}`,
    );
  }
}

test('invariants hold over random sequences of operations', () => {
  // How often the interesting paths ran over all sequences: a property that never preempts proves nothing.
  const seen = { granted: 0, 'preempt-requested': 0, paused: 0, resumed: 0, preempted: 0 };
  fc.assert(
    fc.property(
      fc.record({ cpu: fc.integer({ min: 1000, max: 6000 }), memory: fc.integer({ min: 1000, max: 6000 }) }),
      fc.array(opArb, { minLength: 20, maxLength: 80, size: 'max' }),
      (alloc, ops: Op[]) => {
        let snap = emptySnapshot({ ...alloc, 'dpkg-lock': 1 });
        let now = 0;
        let n = 0;
        const grantedOnce = new Set<string>();
        const endedOnce = new Set<string>();
        const tokens = new Map<string, string>();
        const overtook = new Map<string, Set<string>>();
        const holderOf = (id: string) => ({ tokenHash: tokens.get(id), admin: false, name: 'h' });
        const pick = (i: number, pred: (r: Reservation) => boolean): Reservation | undefined => {
          const xs = snap.reservations.filter(pred);
          return xs.length ? xs[i % xs.length] : undefined;
        };
        for (const op of ops) {
          now += 1;
          let t: Transition | undefined;
          try {
            switch (op.kind) {
              case 'submit': {
                const id = `r${++n}`;
                tokens.set(id, `t${id}`);
                t = submit(
                  snap,
                  {
                    id,
                    tokenHash: `t${id}`,
                    request: request({
                      requests: op.requests,
                      mode: op.mode,
                      priority: op.priority,
                      waitMs: op.failFast ? 0 : undefined,
                      preemptible: op.preemptible,
                      mayPreempt: op.mayPreempt,
                      timeLimitMs: op.timeLimit,
                      onPreempt: op.onPreempt,
                    }),
                  },
                  now,
                );
                break;
              }
              case 'release': {
                const r = pick(op.pick, () => true);
                if (r) t = release(snap, { id: r.id, caller: holderOf(r.id) }, now);
                break;
              }
              case 'victims-stop': {
                const r = pick(0, (x) => x.preemptRequestedAt !== undefined);
                if (r) t = release(snap, { id: r.id, caller: holderOf(r.id) }, now);
                break;
              }
              case 'victims-pause': {
                const r = pick(0, (x) => x.preemptAction === 'pause' && x.preemptRequestedAt !== undefined);
                if (r) t = acknowledgePause(snap, r.id, holderOf(r.id), now);
                break;
              }
              case 'holder-dies': {
                const r = pick(op.pick, () => true);
                if (r)
                  t = reap(
                    snap,
                    findReclaimable(snap, { deadHolders: new Set([r.id]), forceAfterMs: 10 }, now),
                    now,
                  );
                break;
              }
              case 'time-passes': {
                now += op.ms;
                t = reap(snap, findReclaimable(snap, { deadHolders: new Set(), forceAfterMs: 10 }, now), now);
                break;
              }
              case 'capacity':
                // The no-delay promise is made for the capacity of the moment; a cut renews it.
                if (
                  op.cpu < (snap.instance.allocatable.cpu ?? 0) ||
                  op.memory < (snap.instance.allocatable.memory ?? 0)
                )
                  overtook.clear();
                t = setAllocatable(snap, { cpu: op.cpu, memory: op.memory, 'dpkg-lock': 1 }, {}, now, 't');
                break;
            }
          } catch (e) {
            if (isRrmError(e) && e.code === 'RRM_ERR_CAPACITY_IN_USE') continue; // refused: state unchanged
            throw e;
          }
          if (!t) continue;
          const before = new Map(snap.reservations.map((r) => [r.id, r.state]));
          for (const e of t.events) {
            if (e.type in seen) seen[e.type as keyof typeof seen] += 1;
            if (e.type === 'granted') {
              assert.ok(!grantedOnce.has(e.reservation as string), `${e.reservation} granted twice`);
              grantedOnce.add(e.reservation as string);
            }
            if (['released', 'expired', 'preempted', 'timed-out', 'cancelled'].includes(e.type)) {
              assert.ok(!endedOnce.has(e.reservation as string), `${e.reservation} ended twice`);
              endedOnce.add(e.reservation as string);
            }
          }
          snap = applyTransition(snap, t);
          if (op.kind === 'submit') {
            // A newcomer that ranks ahead of an overtaken waiter takes capacity the promise to that
            // waiter never counted (as a capacity cut does): the promise is made anew from here.
            const x = snap.reservations.find((r) => r.id === `r${n}`);
            if (x)
              for (const h of snap.reservations)
                if (h.state === 'queued' && compareQueue(x, h) < 0)
                  for (const set of overtook.values()) set.delete(h.id);
          }
          checkCapacity(snap);
          for (const w of snap.reservations) {
            if (w.state !== 'granted' || before.get(w.id) === 'granted') continue;
            const ahead = snap.reservations
              .filter((h) => h.state === 'queued' && compareQueue(h, w) < 0)
              .map((h) => h.id);
            if (ahead.length) overtook.set(w.id, new Set(ahead));
          }
          checkNotDelayed(snap, overtook);
          for (const d of BUILTIN_DIMENSIONS) assert.ok((snap.instance.allocatable[d] ?? 0) >= 0);
        }
      },
    ),
    { numRuns: 400 },
  );
  for (const [what, count] of Object.entries(seen))
    assert.ok(count > 0, `no ${what} in any run: ${JSON.stringify(seen)}`);
});
