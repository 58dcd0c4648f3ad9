/**
 * The pure decision core, in-process: admissions, releases and preemption plans per second versus
 * the number of active grants on the instance, each beside a plain linear scan that answers the
 * same question from the same snapshot (the floor for recomputing from a snapshot). Also the cost
 * of an admission versus the depth of the queue ahead of it.
 * Placement (target: any over many instances) is measured by the placement scenario.
 */
import { planPreemption, type Preemptor } from '../../src/admission/preemption.js';
import type { InstanceSnapshot } from '../../src/admission/snapshot.js';
import { release, submit, type SubmitInput } from '../../src/admission/transitions.js';
import type { Reservation, ReservationRequest } from '../../src/model/reservation.js';
import type { ResourceVector } from '../../src/model/vector.js';
import { mdTable, type Scenario } from '../lib/scenario.js';
import { fmt, interleaved, round } from '../lib/stats.js';
import { lineChart } from '../lib/svg.js';

const MiB = 2 ** 20;
const T0 = 1_700_000_000_000;
const PER_GRANT: ResourceVector = { cpu: 100, memory: 64 * MiB };

interface Row {
  readonly n: number;
  readonly rrm: number;
  readonly baseline?: number;
  /** baseline ops/s ÷ rrm ops/s: how many times the linear scan is faster. */
  readonly ratio?: number;
  readonly outcome?: string;
}

export interface DecisionCoreData {
  readonly admission: Row[];
  readonly release: Row[];
  readonly preemption: Row[];
  readonly preemptingAdmission: Row[];
  readonly queue: { readonly grants: number; readonly rows: Row[] };
  readonly rounds: number;
  readonly minMs: number;
}

function grant(i: number, withDeadline: boolean): Reservation {
  return {
    id: `rsv_g${i}`,
    instance: 'bench',
    state: 'granted',
    mode: i % 4 === 0 ? 'soft' : 'hard',
    priority: i % 3 === 0 ? 100 : 500,
    requests: PER_GRANT,
    preemptible: true,
    mayPreempt: true,
    onPreempt: 'requeue',
    packages: [{ manager: 'npm', name: `pkg-${i}` }],
    holder: { host: 'bench', pid: 1000 + i, startTime: 0, owner: 'bench' },
    tokenHash: `h${i}`,
    arrival: i + 1,
    createdAt: T0,
    grantedAt: T0,
    grantSeq: i + 1,
    leaseMs: 30_000,
    leaseExpiresAt: T0 + 60_000,
    ...(withDeadline ? { timeLimitMs: 600_000 + i, deadline: T0 + 600_000 + i } : {}),
    attempt: 1,
  };
}

function snapshot(
  n: number,
  headroom: ResourceVector,
  extra: Reservation[] = [],
  deadlines = false,
): InstanceSnapshot {
  const grants = Array.from({ length: n }, (_, i) => grant(i, deadlines));
  const allocatable = {
    cpu: n * (PER_GRANT.cpu as number) + (headroom.cpu ?? 0),
    memory: n * (PER_GRANT.memory as number) + (headroom.memory ?? 0),
  };
  return {
    instance: {
      id: 'bench',
      capacity: allocatable,
      allocatable,
      revision: 1,
      seq: n + extra.length,
      labels: {},
    },
    reservations: [...grants, ...extra],
  };
}

function request(over: Partial<ReservationRequest>): ReservationRequest {
  return {
    packages: [{ manager: 'npm', name: 'sharp' }],
    requests: PER_GRANT,
    target: 'bench',
    mode: 'hard',
    priority: 500,
    preemptible: true,
    mayPreempt: true,
    onPreempt: 'requeue',
    leaseMs: 30_000,
    holder: { host: 'bench', pid: 1, startTime: 0, owner: 'bench' },
    ...over,
  };
}

const input = (q: ReservationRequest): SubmitInput => ({ id: 'rsv_new', tokenHash: 'h', request: q });

/** The floor: one pass summing what the grants hold, then a per-dimension comparison. */
function linearAdmit(snap: InstanceSnapshot, need: ResourceVector): boolean {
  const used: Record<string, number> = {};
  for (const r of snap.reservations) {
    if (r.state !== 'granted') continue;
    for (const k in r.requests) used[k] = (used[k] ?? 0) + (r.requests[k] as number);
  }
  const alloc = snap.instance.allocatable;
  for (const k in need) if ((need[k] as number) > (alloc[k] ?? 0) - (used[k] ?? 0)) return false;
  return true;
}

/** The floor for releasing: find the grant, then recompute what is free (as linearAdmit does). */
function linearRelease(snap: InstanceSnapshot, id: string): number {
  let found = -1;
  const used: Record<string, number> = {};
  snap.reservations.forEach((r, i) => {
    if (r.id === id) found = i;
    else if (r.state === 'granted')
      for (const k in r.requests) used[k] = (used[k] ?? 0) + (r.requests[k] as number);
  });
  return found + (used.cpu ?? 0);
}

/** Greedy victim choice: eligible grants, lowest priority / soft / newest first, taken until it fits. */
function greedyVictims(snap: InstanceSnapshot, p: Preemptor, free: ResourceVector): string[] | null {
  const eligible = snap.reservations.filter(
    (r) =>
      r.state === 'granted' && r.preemptible && r.priority < p.priority && r.preemptRequestedAt === undefined,
  );
  eligible.sort(
    (a, b) =>
      a.priority - b.priority ||
      (a.mode === 'soft' ? 0 : 1) - (b.mode === 'soft' ? 0 : 1) ||
      (b.grantSeq ?? 0) - (a.grantSeq ?? 0),
  );
  const avail: Record<string, number> = { ...free };
  const fitsNow = (): boolean => {
    for (const k in p.requests) if ((p.requests[k] as number) > (avail[k] ?? 0)) return false;
    return true;
  };
  const out: string[] = [];
  for (const v of eligible) {
    if (fitsNow()) return out;
    out.push(v.id);
    for (const k in v.requests) avail[k] = (avail[k] ?? 0) + (v.requests[k] as number);
  }
  return fitsNow() ? out : null;
}

export const decisionCore: Scenario<DecisionCoreData> = {
  name: 'decision-core',
  title: 'Decision core (pure functions, in-process)',

  async run(ctx) {
    const sizes = ctx.quick ? [10, 100, 1_000, 10_000] : [10, 100, 1_000, 10_000, 100_000];
    const rounds = ctx.quick ? 3 : 5;
    const minMs = ctx.quick ? 40 : 200;
    const opts = { rounds, minMs, minIters: 3 };
    const admission: Row[] = [];
    const releaseRows: Row[] = [];
    const preemption: Row[] = [];
    const preemptingAdmission: Row[] = [];
    for (const n of sizes) {
      // Admission of a request that fits, next to n grants.
      const roomy = snapshot(n, { cpu: 10_000, memory: 100 * 64 * MiB });
      const fits = request({});
      const check = submit(roomy, input(fits), T0 + 1).outcome.kind;
      if (check !== 'granted' || !linearAdmit(roomy, fits.requests))
        throw new Error(`admission setup: ${check}`);
      const a = interleaved(
        [
          { name: 'rrm', fn: (i) => submit(roomy, input(fits), T0 + i) },
          { name: 'linear', fn: () => linearAdmit(roomy, fits.requests) },
        ],
        opts,
      );
      admission.push(row(n, a.rrm!.opsPerSec, a.linear!.opsPerSec, check));

      // Release of one grant (release runs the scheduling pass over what is left).
      const victimId = `rsv_g${Math.floor(n / 2)}`;
      const admin = { admin: true, name: 'bench' };
      const r = interleaved(
        [
          { name: 'rrm', fn: (i) => release(roomy, { id: victimId, caller: admin }, T0 + i) },
          { name: 'linear', fn: () => linearRelease(roomy, victimId) },
        ],
        opts,
      );
      releaseRows.push(row(n, r.rrm!.opsPerSec, r.linear!.opsPerSec, 'released'));

      // Preemption plan on a full instance: a critical request needing 2.5 grants' worth.
      const full = snapshot(n, {});
      const preemptor: Preemptor = {
        requests: { cpu: 250, memory: 128 * MiB },
        priority: 1000,
        mode: 'hard',
        mayPreempt: true,
      };
      const plan = planPreemption(preemptor, {}, full.reservations);
      const greedy = greedyVictims(full, preemptor, {});
      if (!plan || !greedy) throw new Error('preemption setup: no plan');
      const p = interleaved(
        [
          { name: 'rrm', fn: () => planPreemption(preemptor, {}, full.reservations) },
          { name: 'greedy', fn: () => greedyVictims(full, preemptor, {}) },
        ],
        opts,
      );
      preemption.push(
        row(n, p.rrm!.opsPerSec, p.greedy!.opsPerSec, `${plan.length} victims (greedy: ${greedy.length})`),
      );

      // The whole admission path when it preempts: submit → schedule → plan → victims marked.
      const critical = request({ priority: 1000, requests: preemptor.requests });
      const q = submit(full, input(critical), T0 + 1).outcome;
      const pa = interleaved([{ name: 'rrm', fn: (i) => submit(full, input(critical), T0 + i) }], opts);
      preemptingAdmission.push({
        n,
        rrm: round(pa.rrm!.opsPerSec, 1),
        outcome: q.kind === 'queued' ? `queued behind ${q.status.victims.length} victims` : q.kind,
      });
      ctx.log(
        `n=${n}: admit ${fmt(a.rrm!.opsPerSec)}/s (linear ${fmt(a.linear!.opsPerSec)}/s), preempt plan ${fmt(p.rrm!.opsPerSec)}/s`,
      );
    }

    // Admission behind W blocked waiters (each estimates its start over the grants' deadlines).
    const grants = 1_000;
    const depths = ctx.quick ? [0, 10, 100] : [0, 10, 100, 1_000];
    const queueRows: Row[] = [];
    for (const w of depths) {
      const waiters: Reservation[] = Array.from({ length: w }, (_, i) => ({
        ...grant(grants + i, false),
        id: `rsv_w${i}`,
        state: 'queued' as const,
        requests: { cpu: 50_000, memory: 64 * MiB },
        mayPreempt: false,
        grantedAt: undefined,
        grantSeq: undefined,
        arrival: grants + i + 1,
      }));
      const snap = snapshot(grants, { cpu: 60_000, memory: 100 * 64 * MiB }, waiters, true);
      const kind = submit(snap, input(request({})), T0 + 1).outcome.kind;
      const m = interleaved([{ name: 'rrm', fn: (i) => submit(snap, input(request({})), T0 + i) }], {
        ...opts,
        rounds: Math.max(2, rounds - 2),
      });
      queueRows.push({ n: w, rrm: round(m.rrm!.opsPerSec, 1), outcome: kind });
      ctx.log(`queue depth ${w}: ${fmt(m.rrm!.opsPerSec)} admissions/s`);
    }

    const at = (rows: Row[], n: number): Row | undefined => rows.find((x) => x.n === n);
    const notes = [
      'Placement (`target: any` over 1 to 10,000 instances, against a linear scan) is measured by the placement scenario.',
      'Each rrm call is the real pure step (`submit`, `release`, `planPreemption` from src/admission) on a prepared snapshot; the result is discarded, so every call decides against the same n grants.',
      'Baselines answer the same question from the same snapshot with plain loops over mutable counters: the linear scan sums what the grants hold and compares; the greedy preemption filters eligible grants, sorts them (lowest priority, soft, newest first) and takes victims until the request fits (it does not reprieve).',
    ];
    const a1k = at(admission, 1_000);
    return {
      data: {
        admission,
        release: releaseRows,
        preemption,
        preemptingAdmission,
        queue: { grants, rows: queueRows },
        rounds,
        minMs,
      },
      notes,
      aims: a1k
        ? [
            {
              aim: 'admission decision, 1,000 active grants',
              target: 'informational',
              measured: `${fmt(a1k.rrm)} /s (${fmt(1e6 / a1k.rrm)} µs); linear scan ${fmt(a1k.ratio)}× faster`,
              met: null,
            },
          ]
        : [],
    };
  },

  render(r, svg) {
    const d = r.data;
    const us = (ops: number): string => fmt(1e6 / ops);
    const table = (rows: Row[], what: string, base: string): string =>
      mdTable(
        ['active grants', `rrm ${what}/s`, 'µs each', `${base}/s`, `${base} is × faster`, 'outcome'],
        rows.map((x) => [
          fmt(x.n),
          fmt(x.rrm),
          us(x.rrm),
          x.baseline !== undefined ? fmt(x.baseline) : '–',
          x.ratio !== undefined ? `${fmt(x.ratio)}×` : '–',
          x.outcome ?? '',
        ]),
      );
    const plot = svg(
      'decision-core',
      lineChart({
        title: 'Decision core: decisions per second vs active grants',
        xLabel: 'active grants on the instance',
        yLabel: 'decisions per second',
        logX: true,
        logY: true,
        series: [
          { name: 'rrm submit (admit)', points: d.admission.map((x) => [x.n, x.rrm]) },
          {
            name: 'linear scan (admit)',
            points: d.admission.map((x) => [x.n, x.baseline ?? NaN]),
            dashed: true,
          },
          { name: 'rrm release', points: d.release.map((x) => [x.n, x.rrm]) },
          { name: 'rrm planPreemption', points: d.preemption.map((x) => [x.n, x.rrm]) },
          { name: 'greedy victims', points: d.preemption.map((x) => [x.n, x.baseline ?? NaN]), dashed: true },
          { name: 'rrm submit (preempting)', points: d.preemptingAdmission.map((x) => [x.n, x.rrm]) },
        ],
      }),
    );
    return [
      `Median of ${d.rounds} interleaved rounds of at least ${d.minMs} ms each.`,
      '',
      `![decisions per second](${plot})`,
      '',
      '**Admission** (`submit` of a request that fits: queue it, run the scheduling pass, grant):',
      '',
      table(d.admission, 'admissions', 'linear scan'),
      '',
      '**Release** (`release` of one grant, then the scheduling pass):',
      '',
      table(d.release, 'releases', 'linear scan'),
      '',
      '**Preemption plan** (`planPreemption` for a critical request needing 2.5 grants on a full instance):',
      '',
      table(d.preemption, 'plans', 'greedy'),
      '',
      '**Admission that preempts** (`submit` of that critical request: schedule, plan, mark the victims):',
      '',
      mdTable(
        ['active grants', 'rrm admissions/s', 'µs each', 'outcome'],
        d.preemptingAdmission.map((x) => [fmt(x.n), fmt(x.rrm), us(x.rrm), x.outcome ?? '']),
      ),
      '',
      `**Admission behind a queue** (${fmt(d.queue.grants)} grants with time limits; W blocked waiters ahead, each of which gets a position and an estimated start):`,
      '',
      mdTable(
        ['waiters ahead', 'rrm admissions/s', 'µs each', 'outcome'],
        d.queue.rows.map((x) => [fmt(x.n), fmt(x.rrm), us(x.rrm), x.outcome ?? '']),
      ),
    ].join('\n');
  },
};

function row(n: number, rrm: number, baseline: number, outcome: string): Row {
  return { n, rrm: round(rrm, 1), baseline: round(baseline, 1), ratio: round(baseline / rrm, 2), outcome };
}
