import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { applyTransition, type InstanceSnapshot } from '../../src/admission/snapshot.js';
import { submit } from '../../src/admission/transitions.js';
import type { PlacementSpec, PlacementStrategy, ReservationRequest } from '../../src/model/reservation.js';
import type { ResourceVector } from '../../src/model/vector.js';
import {
  classify,
  enoughToScore,
  rankInstances,
  score,
  STRATEGIES,
  type Ranking,
} from '../../src/placement/place.js';
import { emptySnapshot, request } from '../support/core-fixtures.js';

type Over = Parameters<typeof request>[0];

/** An instance with `grants` submitted in order at time 0 (those that do not fit stay queued). */
function inst(id: string, allocatable: ResourceVector, grants: Over[] = [], labels = {}): InstanceSnapshot {
  const e = emptySnapshot(allocatable, id);
  let s: InstanceSnapshot = { ...e, instance: { ...e.instance, labels } };
  grants.forEach((g, i) => {
    const step = submit(s, { id: `${id}-r${i}`, tokenHash: 't', request: request({ ...g, target: id }) }, 0);
    s = applyTransition(s, step);
  });
  return s;
}
const spec = (strategy: PlacementStrategy = 'least-allocated', selector = {}): PlacementSpec => ({
  selector,
  strategy,
});
const any = (over: Over): ReservationRequest => request({ target: 'any', ...over });
const near = (got: number, want: number) => assert.ok(Math.abs(got - want) < 1e-9, `${got} ≠ ${want}`);
const fitsOf = (r: Ranking) => r.candidates.map((c) => `${c.instance}:${c.fit}`).join(' ');

test('least-allocated spreads to the emptier instance, most-allocated packs the fuller one', () => {
  const full = inst('full', { cpu: 1000, memory: 1000 }, [{ requests: { cpu: 600, memory: 600 } }]);
  const empty = inst('empty', { cpu: 1000, memory: 1000 });
  const q = any({ requests: { cpu: 200, memory: 200 } });
  assert.deepEqual([...STRATEGIES].sort(), ['balanced', 'least-allocated', 'most-allocated']);
  near(score('least-allocated', empty, q.requests), 80);
  near(score('least-allocated', full, q.requests), 20);
  near(score('most-allocated', full, q.requests), 80);
  const least = rankInstances([full, empty], q, spec('least-allocated'), 0);
  assert.equal(fitsOf(least), 'empty:grant full:grant');
  const most = rankInstances([empty, full], q, spec('most-allocated'), 0);
  assert.equal(fitsOf(most), 'full:grant empty:grant');
});

test('balanced prefers the instance whose cpu and memory use would be even', () => {
  const skewed = inst('a-skewed', { cpu: 1000, memory: 1000 }, [{ requests: { cpu: 600 } }]);
  const even = inst('b-even', { cpu: 1000, memory: 1000 }, [{ requests: { cpu: 300, memory: 300 } }]);
  const q = any({ requests: { cpu: 100, memory: 100 } });
  // used after placement: skewed 0.7 / 0.1 (spread 0.3), even 0.4 / 0.4 (spread 0)
  near(score('balanced', skewed, q.requests), 70);
  near(score('balanced', even, q.requests), 100);
  assert.equal(rankInstances([skewed, even], q, spec('balanced'), 0).candidates[0]?.instance, 'b-even');
  // same mean use: least-allocated ties and falls back to the instance name
  assert.equal(
    rankInstances([even, skewed], q, spec('least-allocated'), 0).candidates[0]?.instance,
    'a-skewed',
  );
});

test('a request with no dimension the instance has scores 100', () => {
  assert.equal(score('most-allocated', inst('x', { cpu: 1000 }), {}), 100);
  assert.equal(score('least-allocated', inst('x', { cpu: 1000 }), { gpu: 0 }), 100);
});

test('grants first, then the best single preemption plan, then waits; never-fits apart', () => {
  const mk = (id: string, grants: Over[]) => inst(id, { cpu: 1000 }, grants);
  const snaps = [
    mk('w', [{ requests: { cpu: 1000 }, preemptible: false }]),
    inst('n', { cpu: 500 }),
    mk('p2', [{ requests: { cpu: 1000 }, priority: 300 }]),
    mk('g', []),
    mk('p1', [{ requests: { cpu: 1000 }, priority: 100 }]),
  ];
  const q = any({ requests: { cpu: 1000 }, priority: 900, mode: 'hard', mayPreempt: true });
  const r = rankInstances(snaps, q, spec(), 0);
  assert.equal(fitsOf(r), 'g:grant p1:preempt w:wait');
  assert.deepEqual(r.candidates[1]?.victims, [{ id: 'p1-r0', priority: 100 }]);
  assert.deepEqual(
    r.never.map((c) => c.instance),
    ['n'],
  );
  assert.deepEqual(r.never[0]?.shortfall, [{ dimension: 'cpu', need: 1000, free: 500, short: 500 }]);
  assert.deepEqual(r.excluded, []);
  // without permission to preempt, both preemption instances become waits
  const soft = rankInstances(snaps, { ...q, mode: 'soft' }, spec(), 0);
  assert.equal(fitsOf(soft), 'g:grant p1:wait p2:wait w:wait');
});

test('preemption: the lowest highest-victim priority wins, even with more victims', () => {
  const two = inst('a-two', { cpu: 1000 }, [
    { requests: { cpu: 500 }, priority: 100 },
    { requests: { cpu: 500 }, priority: 100 },
  ]);
  const one = inst('b-one', { cpu: 1000 }, [{ requests: { cpu: 1000 }, priority: 300 }]);
  const q = any({ requests: { cpu: 1000 }, priority: 900 });
  const r = rankInstances([one, two], q, spec(), 0);
  assert.equal(fitsOf(r), 'a-two:preempt');
  assert.deepEqual(r.candidates[0]?.victims.map((v) => v.id).sort(), ['a-two-r0', 'a-two-r1']);
});

test('preemption: with equal top priority, fewer victims wins', () => {
  const two = inst('a-two', { cpu: 1000 }, [
    { requests: { cpu: 500 }, priority: 100 },
    { requests: { cpu: 500 }, priority: 100 },
  ]);
  const one = inst('b-one', { cpu: 1000 }, [{ requests: { cpu: 1000 }, priority: 100 }]);
  const q = any({ requests: { cpu: 1000 }, priority: 900 });
  const r = rankInstances([two, one], q, spec(), 0);
  assert.equal(fitsOf(r), 'b-one:preempt');
  assert.deepEqual(r.candidates[0]?.victims, [{ id: 'b-one-r0', priority: 100 }]);
});

test('waits: fewest waiters ahead, then earliest estimated start', () => {
  const busy = (over: Partial<ReservationRequest> = {}): Over => ({
    requests: { cpu: 1000 },
    preemptible: false,
    ...over,
  });
  // w1 would start earliest (at 100, when its grant ends) but has a waiter ahead
  const queued = inst('w1', { cpu: 2000 }, [
    busy({ requests: { cpu: 2000 }, timeLimitMs: 100 }),
    { requests: { cpu: 1000 } },
  ]);
  const late = inst('w2', { cpu: 1000 }, [busy({ timeLimitMs: 5000 })]);
  const soon = inst('w3', { cpu: 1000 }, [busy({ timeLimitMs: 1000 })]);
  const r = rankInstances([queued, late, soon], any({ requests: { cpu: 1000 } }), spec(), 0);
  assert.deepEqual(
    r.candidates.map((c) => [c.instance, c.fit, c.ahead, c.estimatedStart]),
    [
      ['w3', 'wait', 0, 1000],
      ['w2', 'wait', 0, 5000],
      ['w1', 'wait', 1, 100],
    ],
  );
});

test('down instances and label mismatches are excluded; `exclude` removes instances entirely', () => {
  const snaps = [
    { ...inst('down', { cpu: 1000 }, [], { zone: 'a' }), down: true },
    inst('zb', { cpu: 1000 }, [], { zone: 'b' }),
    inst('nolabel', { cpu: 1000 }),
    inst('za', { cpu: 1000 }, [], { zone: 'a' }),
    inst('za2', { cpu: 1000 }, [], { zone: 'a' }),
    inst('small', { cpu: 10 }, [], { zone: 'a' }),
  ];
  const q = any({ requests: { cpu: 100 } });
  const r = rankInstances(snaps, q, spec('least-allocated', { zone: 'a' }), 0, new Set(['za2', 'small']));
  assert.equal(fitsOf(r), 'za:grant');
  assert.deepEqual(r.never, []);
  // Listed by name, wherever the scan started (a salt starts it elsewhere; the list is the same).
  const listed = [
    { instance: 'down', why: 'down' },
    { instance: 'nolabel', why: 'labels' },
    { instance: 'zb', why: 'labels' },
  ];
  assert.deepEqual(r.excluded, listed);
  for (const salt of ['a', 'b', 'c', 'd', 'e', 'f']) {
    const salted = rankInstances(
      snaps,
      q,
      spec('least-allocated', { zone: 'a' }),
      0,
      new Set(['za2', 'small']),
      salt,
    );
    assert.deepEqual(salted.excluded, listed);
  }
  const ne = rankInstances(snaps, q, spec('least-allocated', { zone: '!a' }), 0);
  assert.equal(fitsOf(ne), 'nolabel:grant zb:grant');
  assert.equal(ne.excluded.length, 4);
});

// ---- properties over random fleets ----

const grantArb = fc.record({
  requests: fc.record({ cpu: fc.integer({ min: 0, max: 2500 }), memory: fc.integer({ min: 0, max: 2500 }) }),
  priority: fc.constantFrom(100, 100, 500, 900),
  preemptible: fc.boolean(),
  timeLimitMs: fc.option(fc.integer({ min: 1, max: 10_000 }), { nil: undefined }),
});
const instArb = fc.record({
  allocatable: fc.record(
    { cpu: fc.integer({ min: 500, max: 3000 }), memory: fc.integer({ min: 500, max: 3000 }), gpu: fc.nat(2) },
    { requiredKeys: ['cpu', 'memory', 'gpu'] },
  ),
  grants: fc.array(grantArb, { maxLength: 5 }),
  down: fc.constantFrom(false, false, false, true),
  zone: fc.constantFrom('a', 'b', undefined),
});
const caseArb = fc.record({
  fleet: fc.array(instArb, { minLength: 1, maxLength: 8 }),
  q: fc.record({
    requests: fc.record(
      {
        cpu: fc.integer({ min: 0, max: 2000 }),
        memory: fc.integer({ min: 0, max: 1500 }),
        gpu: fc.constantFrom(0, 0, 0, 1),
      },
      { requiredKeys: [] },
    ),
    priority: fc.constantFrom(100, 500, 900, 1000, 1000),
    mode: fc.constantFrom('hard' as const, 'hard' as const, 'soft' as const),
    mayPreempt: fc.constantFrom(true, true, false),
    waitMs: fc.option(fc.constantFrom(0, 1000), { nil: undefined }),
  }),
  strategy: fc.constantFrom(...STRATEGIES),
  selector: fc.constantFrom({}, { zone: 'a' }, { zone: '!a' }),
  exclude: fc.array(fc.nat(7), { maxLength: 3 }),
});

type Case = typeof caseArb extends fc.Arbitrary<infer T> ? T : never;

function build(c: Case) {
  const snaps = c.fleet.map((f, i) => {
    const s = inst(`i${i}`, f.allocatable, f.grants, f.zone ? { zone: f.zone } : {});
    return f.down ? { ...s, down: true } : s;
  });
  const q = any(c.q);
  const exclude = new Set(c.exclude.map((i) => `i${i}`));
  return { snaps, q, exclude, ranking: rankInstances(snaps, q, spec(c.strategy, c.selector), 7, exclude) };
}

test('property: grants are granted by submit, preempt/wait queue as classified, in rank order', () => {
  fc.assert(
    fc.property(caseArb, (c) => {
      const { snaps, q, ranking } = build(c);
      assert.match(ranking.candidates.map((x) => x.fit[0]).join(''), /^g*p?w*$/);
      ranking.candidates.forEach((cand, i) => {
        const prev = ranking.candidates[i - 1];
        if (prev?.fit === cand.fit && cand.fit === 'grant') assert.ok(prev.score >= cand.score);
        if (prev?.fit === cand.fit && cand.fit === 'wait') assert.ok(prev.ahead <= cand.ahead);
        const snap = snaps.find((s) => s.instance.id === cand.instance) as InstanceSnapshot;
        const real = { ...q, target: cand.instance, waitMs: cand.fit === 'grant' ? q.waitMs : undefined };
        const out = submit(snap, { id: 'real', tokenHash: 'h', request: real }, 7).outcome;
        if (cand.fit === 'grant') return assert.equal(out.kind, 'granted', cand.instance);
        assert.equal(out.kind, 'queued');
        const victims = out.kind === 'queued' ? out.status.victims : [];
        assert.deepEqual(
          cand.victims.map((v) => v.id),
          victims,
        );
        assert.equal(cand.fit === 'preempt', victims.length > 0);
      });
      for (const x of [...ranking.candidates, ...ranking.never]) assert.ok(x.score >= 0 && x.score <= 100);
    }),
    { numRuns: 300 },
  );
});

test('property: never exactly when the request exceeds allocatable; exclusions are exact', () => {
  fc.assert(
    fc.property(caseArb, (c) => {
      const { snaps, q, exclude, ranking } = build(c);
      const where = new Map<string, string>();
      const note = (id: string, what: string) => {
        assert.equal(where.get(id), undefined, `${id} listed twice`);
        where.set(id, what);
      };
      for (const x of ranking.candidates) note(x.instance, 'candidate');
      for (const x of ranking.never) note(x.instance, 'never');
      for (const x of ranking.excluded) note(x.instance, x.why);
      for (const s of snaps) {
        const id = s.instance.id;
        const zone = s.instance.labels.zone;
        const sel = (c.selector as { zone?: string }).zone;
        const labelsOk = sel === undefined || (sel.startsWith('!') ? zone !== sel.slice(1) : zone === sel);
        const tooBig = Object.entries(q.requests).some(([d, n]) => n > (s.instance.allocatable[d] ?? 0));
        const got = where.get(id);
        if (exclude.has(id)) assert.equal(got, undefined, `${id} excluded by caller`);
        else if (s.down) assert.equal(got, 'down');
        else if (!labelsOk) assert.equal(got, 'labels');
        else if (tooBig) assert.equal(got, 'never');
        else if (got === undefined) {
          // only a losing preemption plan is dropped
          assert.equal(classify(s, q, c.strategy, 7).fit, 'preempt');
          assert.equal(ranking.candidates.filter((x) => x.fit === 'preempt').length, 1);
        } else assert.equal(got, 'candidate');
      }
    }),
    { numRuns: 300 },
  );
});

test('in a large fleet the scan stops once enough instances that grant now were found (kube-style sampling)', () => {
  assert.deepEqual([1, 100, 101, 1000, 5000, 10_000].map(enoughToScore), [1, 100, 100, 420, 500, 500]);
  const fleet = Array.from({ length: 1000 }, (_, i) => inst(`n${String(i).padStart(4, '0')}`, { cpu: 1000 }));
  const q = any({ requests: { cpu: 100 } });
  const a = rankInstances(fleet, q, spec(), 0, new Set(), 'salt-a');
  const b = rankInstances(fleet, q, spec(), 0, new Set(), 'salt-b');
  assert.equal(a.candidates.length, 420, 'only as many as are enough were simulated');
  assert.ok(a.candidates.every((c) => c.fit === 'grant'));
  assert.notDeepEqual(
    a.candidates.map((c) => c.instance).sort(),
    b.candidates.map((c) => c.instance).sort(),
    'another salt samples another part of the fleet',
  );
  // When almost nothing fits now, every instance is looked at: the few that grant are found.
  const busy = fleet.map((s, i) =>
    i % 250 === 7 ? s : inst(s.instance.id, { cpu: 1000 }, [{ requests: { cpu: 950 } }]),
  );
  const r = rankInstances(busy, q, spec(), 0, new Set(), 'salt-a');
  assert.deepEqual(
    r.candidates
      .filter((c) => c.fit === 'grant')
      .map((c) => c.instance)
      .sort(),
    ['n0007', 'n0257', 'n0507', 'n0757'],
  );
  assert.equal(r.candidates.length, 1000, 'the others wait');
});
