/**
 * Placement for `target: "any"` (src/placement/place.ts, CoreLedger.reserve → place): the pure
 * ranking over 1 to 10,000 synthetic instance snapshots beside the admission simulation it is
 * built on (one `submit` per instance), then reserve+release pairs per second on a real 3-member
 * etcd cluster on loopback (test/support/etcd-cluster.ts) with 20 instances and 8 workers, each
 * with its own store: placed on any instance, placed within a label selector, and the explicit
 * target baseline (no placement), alternating within each round.
 */
import { randomBytes } from 'node:crypto';
import { Etcd3 } from 'etcd3';
import { applyTransition, type InstanceRecord, type InstanceSnapshot } from '../../src/admission/snapshot.js';
import { submit } from '../../src/admission/transitions.js';
import { CoreLedger } from '../../src/ledger/core-ledger.js';
import { EtcdStore } from '../../src/ledger/etcd/etcd-store.js';
import { ANY_INSTANCE, type PlacementSpec, type ReservationRequest } from '../../src/model/reservation.js';
import type { ResourceVector } from '../../src/model/vector.js';
import { enoughToScore, rankInstances } from '../../src/placement/place.js';
import { findEtcdBinary, startEtcdCluster, type EtcdCluster } from '../../test/support/etcd-cluster.js';
import { mdTable, Skip, type Aim, type Scenario } from '../lib/scenario.js';
import { fmt, median, nowMs, quantile, round, summarize, type Summary } from '../lib/stats.js';
import { barChart } from '../lib/svg.js';

const MiB = 2 ** 20;
const T0 = 1_700_000_000_000;

// ---- pure ranking --------------------------------------------------------------------------

const RANK_SIZES = [1, 20, 100, 1000, 10_000] as const;
const GRANTS_PER_INSTANCE = 4;
const RANK_ALLOCATABLE: ResourceVector = { cpu: 8_000, memory: 16_384 * MiB };
const RANK_SPEC: PlacementSpec = { selector: {}, strategy: 'least-allocated' };

type RankContender = 'rank' | 'submit-floor';
const RANK_LABEL: Record<RankContender, string> = {
  rank: '`rankInstances` (filter, simulate, score, sort)',
  'submit-floor': 'a linear scan: one `submit` per instance (the simulation alone)',
};

interface CallStats {
  /** Median over rounds of calls per second. */
  readonly callsPerSec: number;
  readonly rounds: number[];
  /** Per call, µs, over every call of every round. */
  readonly usP50: number;
  readonly usP99: number;
  readonly n: number;
}

interface RankRow {
  readonly instances: number;
  readonly rank: CallStats;
  readonly floor: CallStats;
  /** Median over rounds of (floor calls/s ÷ rank calls/s): how many floors one ranking costs. */
  readonly rankOverFloor: number;
}

// ---- etcd ------------------------------------------------------------------------------------

const INSTANCES = 20;
const WORKERS = 8;
const ALLOCATABLE = { cpu: 1_000_000, memory: 2 ** 50 };

type Contender = 'any' | 'explicit' | 'any-zone-a';
const CONTENDERS: readonly Contender[] = ['any', 'explicit', 'any-zone-a'];
const LABEL: Record<Contender, string> = {
  any: '`target: any`, selector {}, least-allocated (placement over 20 instances)',
  explicit: 'explicit target `i<w % 20>`: each worker its own instance (no placement)',
  'any-zone-a': '`target: any`, selector {zone: a} (placement over 10 instances)',
};

interface Row {
  readonly contender: Contender;
  /** Instances the contender may land on. */
  readonly eligible: number;
  readonly workers: number;
  /** reserve+release pairs/s (= reservations/s), median over rounds. */
  readonly opsPerSec: number;
  readonly rounds: number[];
  readonly errors: number;
  readonly lastError?: string;
  readonly latency: Summary;
  /** Store counters per pair, summed over the workers' stores, over all windows. */
  readonly commitsPerPair: number;
  readonly conflictsPerPair: number;
  readonly staleCachePerPair: number;
  /** etcd's own count of the calls it handled in the windows, per pair. */
  readonly rangePerPair: number;
  readonly txnPerPair: number;
  readonly raftWritesPerPair: number;
  /** CPU ms of the bench process (clients, ranking, JSON) per pair. */
  readonly cpuMsPerPair: number;
  /** Distinct instances granted on in the windows, and the busiest one's share of the grants. */
  readonly instancesUsed: number;
  readonly topShare: number;
}

export interface PlacementData {
  readonly ranking: {
    readonly rounds: number;
    readonly minMs: number;
    readonly grantsPerInstance: number;
    readonly rows: RankRow[];
  };
  readonly fleet: {
    readonly members: number;
    readonly dataOn: string;
    readonly instances: number;
    readonly workers: number;
    readonly windowMs: number;
    readonly rounds: number;
    readonly rows: Row[];
  };
}

function request(target: string, placement?: PlacementSpec): ReservationRequest {
  return {
    packages: [],
    target,
    ...(placement ? { placement } : {}),
    mode: 'hard',
    priority: 500,
    preemptible: true,
    mayPreempt: true,
    onPreempt: 'requeue',
    leaseMs: 30_000,
    holder: { host: 'bench', pid: 1, startTime: 0, owner: 'bench' },
    requests: { cpu: 10 },
  };
}

/**
 * Instance `i` with GRANTS_PER_INSTANCE grants made by the admission core's own `submit`, of sizes
 * that differ between instances (so scores differ and the sort has work to do); zone a/b alternate.
 */
function syntheticSnapshot(i: number): InstanceSnapshot {
  const instance: InstanceRecord = {
    id: `i${i}`,
    capacity: RANK_ALLOCATABLE,
    allocatable: RANK_ALLOCATABLE,
    revision: 0,
    seq: 0,
    labels: { zone: i % 2 === 0 ? 'a' : 'b' },
  };
  let snap: InstanceSnapshot = { instance, reservations: [] };
  for (let k = 0; k < GRANTS_PER_INSTANCE; k++) {
    const step = submit(
      snap,
      {
        id: `rsv_${i}_${k}`,
        tokenHash: `h${i}.${k}`,
        request: {
          ...request(instance.id),
          packages: [{ manager: 'npm', name: `pkg-${i}-${k}` }],
          requests: { cpu: 100 * (1 + ((i * 7 + k * 3) % 10)), memory: 256 * MiB * (1 + ((i + k) % 8)) },
        },
      },
      T0 + k,
    );
    if (step.outcome.kind !== 'granted') throw new Error(`synthetic grant ${i}/${k}: ${step.outcome.kind}`);
    snap = applyTransition(snap, step);
  }
  return snap;
}

/** Calls `fn` for at least `minMs` (and 3 times), recording each call's µs into `us`. */
function timedCalls(fn: (i: number) => unknown, minMs: number, us: number[]): { calls: number; ms: number } {
  let sink: unknown;
  let calls = 0;
  const start = nowMs();
  let t = start;
  do {
    sink = fn(calls++);
    const t2 = nowMs();
    if (us.length < 200_000) us.push((t2 - t) * 1000);
    t = t2;
  } while (t - start < minMs || calls < 3);
  if (sink === Symbol.for('never')) us.push(NaN); // keep the result alive
  return { calls, ms: t - start };
}

function measureRanking(rounds: number, minMs: number, log: (msg: string) => void): PlacementData['ranking'] {
  const rankReq: ReservationRequest = {
    ...request(ANY_INSTANCE, RANK_SPEC),
    requests: { cpu: 500, memory: 512 * MiB },
  };
  const now = T0 + 1_000;
  const salts = Array.from({ length: 64 }, () => randomBytes(6).toString('hex'));
  const sets = RANK_SIZES.map((n) => ({
    n,
    snaps: Array.from({ length: n }, (_, i) => syntheticSnapshot(i)),
  }));
  // Sanity: every instance fits, so the ranking holds n grant candidates.
  for (const { n, snaps } of sets) {
    const r = rankInstances(snaps, rankReq, RANK_SPEC, now, new Set(), salts[0]);
    if (r.candidates.length !== enoughToScore(n) || r.candidates.some((c) => c.fit !== 'grant')) {
      throw new Error(`ranking ${n} instances: ${r.candidates.length} candidates`);
    }
  }
  const fns = (snaps: readonly InstanceSnapshot[]): Record<RankContender, (i: number) => unknown> => ({
    rank: (i) => rankInstances(snaps, rankReq, RANK_SPEC, now, new Set(), salts[i & 63]),
    'submit-floor': () => {
      let last: unknown;
      for (const snap of snaps) {
        last = submit(
          snap,
          {
            id: '\u0000probe',
            tokenHash: '',
            request: { ...rankReq, target: snap.instance.id, waitMs: undefined },
          },
          now,
        ).outcome;
      }
      return last;
    },
  });
  const acc = new Map<string, { rounds: number[]; us: number[] }>();
  const key = (n: number, c: RankContender): string => `${n}/${c}`;
  for (const { n, snaps } of sets) {
    const f = fns(snaps);
    for (const c of ['rank', 'submit-floor'] as const) {
      timedCalls(f[c], Math.min(50, minMs), []); // warm-up
      acc.set(key(n, c), { rounds: [], us: [] });
    }
  }
  for (let r = 0; r < rounds; r++) {
    for (const { n, snaps } of sets) {
      const f = fns(snaps);
      for (const c of ['rank', 'submit-floor'] as const) {
        const a = acc.get(key(n, c))!;
        const { calls, ms } = timedCalls(f[c], minMs, a.us);
        a.rounds.push(round((calls / ms) * 1000, 1));
      }
    }
  }
  const stats = (n: number, c: RankContender): CallStats => {
    const a = acc.get(key(n, c))!;
    return {
      callsPerSec: round(median(a.rounds), 1),
      rounds: a.rounds,
      usP50: round(quantile(a.us, 0.5), 2),
      usP99: round(quantile(a.us, 0.99), 2),
      n: a.us.length,
    };
  };
  const rows = RANK_SIZES.map((n): RankRow => {
    const rank = stats(n, 'rank');
    const floor = stats(n, 'submit-floor');
    const perRound = rank.rounds.map((x, i) => (floor.rounds[i] ?? NaN) / x);
    return { instances: n, rank, floor, rankOverFloor: round(median(perRound), 3) };
  });
  for (const x of rows) {
    log(
      `rank ${x.instances} instances: ${fmt(x.rank.usP50)} µs p50, ${fmt(x.rank.usP99)} µs p99, ${fmt(x.rank.callsPerSec)} calls/s (${fmt(x.rankOverFloor)} × the submit floor)`,
    );
  }
  return { rounds, minMs, grantsPerInstance: GRANTS_PER_INSTANCE, rows };
}

// ---- etcd windows ----------------------------------------------------------------------------

interface WindowResult {
  ops: number;
  errors: number;
  lastError: string;
  elapsedMs: number;
  lat: number[];
}

/** `workers` loops calling `op` until the window ends. */
async function runWindow(
  workers: number,
  windowMs: number,
  op: (w: number) => Promise<void>,
): Promise<WindowResult> {
  const lat: number[] = [];
  let ops = 0;
  let errors = 0;
  let lastError = '';
  const start = nowMs();
  const end = start + windowMs;
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      for (let t = nowMs(); t < end;) {
        try {
          await op(w);
          ops++;
        } catch (e) {
          errors++;
          lastError = e instanceof Error ? e.message : String(e);
        }
        const t2 = nowMs();
        if (lat.length < 50_000) lat.push(t2 - t);
        t = t2;
      }
    }),
  );
  return { ops, errors, lastError, elapsedMs: nowMs() - start, lat };
}

function ledgerOn(store: EtcdStore): CoreLedger {
  return new CoreLedger(store, {
    now: Date.now,
    hostname: 'bench',
    isHolderAlive: () => true,
    reclaimWork: async () => undefined,
    forceAfterMs: 60_000,
  });
}

interface EtcdCalls {
  /** KV Range and Txn calls handled, summed over the members (each call is handled by one). */
  range: number;
  txn: number;
  /** Raft proposals committed (the highest count any member reports): every Txn with writes. */
  proposals: number;
}

/** The members' own counters, from their /metrics endpoints (served on the client URLs). */
async function etcdCalls(endpoints: readonly string[]): Promise<EtcdCalls> {
  const texts = await Promise.all(endpoints.map(async (e) => (await fetch(`${e}/metrics`)).text()));
  const out: EtcdCalls = { range: 0, txn: 0, proposals: 0 };
  for (const text of texts) {
    for (const line of text.split('\n')) {
      const m = /^grpc_server_handled_total\{([^}]*)\} (\S+)$/.exec(line);
      if (m && m[1]!.includes('grpc_service="etcdserverpb.KV"')) {
        if (m[1]!.includes('grpc_method="Range"')) out.range += Number(m[2]);
        if (m[1]!.includes('grpc_method="Txn"')) out.txn += Number(m[2]);
      }
      const p = /^etcd_server_proposals_committed_total (\S+)$/.exec(line);
      if (p) out.proposals = Math.max(out.proposals, Number(p[1]));
    }
  }
  return out;
}

interface PlacementWindow extends WindowResult {
  commits: number;
  conflicts: number;
  staleCache: number;
  calls: EtcdCalls;
  /** CPU time of this (the driving) process during the window. */
  cpuMs: number;
  used: Map<string, number>;
}

function requestFor(c: Contender, w: number): ReservationRequest {
  switch (c) {
    case 'any':
      return request(ANY_INSTANCE, { selector: {}, strategy: 'least-allocated' });
    case 'any-zone-a':
      return request(ANY_INSTANCE, { selector: { zone: 'a' }, strategy: 'least-allocated' });
    case 'explicit':
      return request(`i${w % INSTANCES}`);
  }
}

/** One window on a fresh key prefix: 20 instances, a store (client) and CoreLedger per worker. */
async function placementWindow(
  hosts: readonly string[],
  contender: Contender,
  windowMs: number,
): Promise<PlacementWindow> {
  const prefix = `/rrm-bench/placement-${contender}-${randomBytes(4).toString('hex')}/`;
  const stores = Array.from({ length: WORKERS }, () => new EtcdStore({ hosts, prefix }));
  const ledgers = stores.map(ledgerOn);
  try {
    for (let i = 0; i < INSTANCES; i++) {
      await ledgers[0]!.ensureInstance({
        id: `i${i}`,
        capacity: ALLOCATABLE,
        allocatable: ALLOCATABLE,
        labels: { zone: i % 2 === 0 ? 'a' : 'b' },
      });
    }
    const reqs = Array.from({ length: WORKERS }, (_, w) => requestFor(contender, w));
    let used = new Map<string, number>();
    const pair = async (w: number): Promise<void> => {
      const ledger = ledgers[w]!;
      const { outcome, token } = await ledger.reserve(reqs[w]!);
      if (outcome.kind !== 'granted') throw new Error(`not granted: ${outcome.kind}`);
      const at = outcome.reservation.instance;
      used.set(at, (used.get(at) ?? 0) + 1);
      await ledger.release(outcome.reservation.id, { token });
    };
    for (let w = 0; w < WORKERS; w++) await pair(w); // warm each store: connections, cached state
    used = new Map();
    const counters = (): { commits: number; conflicts: number; staleCache: number } =>
      stores.reduce(
        (s, st) => {
          const x = st.stats();
          return {
            commits: s.commits + x.commits,
            conflicts: s.conflicts + x.conflicts,
            staleCache: s.staleCache + x.staleCache,
          };
        },
        { commits: 0, conflicts: 0, staleCache: 0 },
      );
    const before = counters();
    const callsBefore = await etcdCalls(hosts);
    const cpuBefore = process.cpuUsage();
    const r = await runWindow(WORKERS, windowMs, pair);
    const cpu = process.cpuUsage(cpuBefore);
    const callsAfter = await etcdCalls(hosts);
    const after = counters();
    return {
      ...r,
      commits: after.commits - before.commits,
      conflicts: after.conflicts - before.conflicts,
      staleCache: after.staleCache - before.staleCache,
      calls: {
        range: callsAfter.range - callsBefore.range,
        txn: callsAfter.txn - callsBefore.txn,
        proposals: callsAfter.proposals - callsBefore.proposals,
      },
      cpuMs: (cpu.user + cpu.system) / 1000,
      used,
    };
  } finally {
    await Promise.all(stores.map((s) => s.close()));
  }
}

export const placement: Scenario<PlacementData> = {
  name: 'placement',
  title: 'Placement (target: any): ranking cost, and placed reservations on etcd versus an explicit target',

  async run(ctx) {
    try {
      findEtcdBinary();
    } catch (e) {
      throw new Skip(e instanceof Error ? e.message.split(':')[0]! : String(e));
    }
    const ranking = measureRanking(ctx.quick ? 3 : 5, ctx.quick ? 100 : 400, ctx.log);

    const windowMs = ctx.quick ? 1_000 : 3_000;
    const rounds = ctx.quick ? 1 : 3;
    const t0 = nowMs();
    const cluster: EtcdCluster = await startEtcdCluster({ size: 3, timeoutMs: 30_000 });
    ctx.log(`3-member etcd cluster up in ${fmt(nowMs() - t0)} ms: ${cluster.endpoints.join(' ')}`);
    const client = new Etcd3({ hosts: [...cluster.endpoints] });
    try {
      await client.put('/rrm-bench/warm').value('1').exec();
      // Discarded windows first, one per contender, so that the first measured one does not pay
      // the new cluster's warm-up (connections, raft, the backend's first pages, V8's JIT).
      for (const c of CONTENDERS) await placementWindow(cluster.endpoints, c, windowMs / 3);
      const acc: Record<
        string,
        {
          rounds: number[];
          errors: number;
          lastError?: string;
          lat: number[];
          pairs: number;
          commits: number;
          conflicts: number;
          staleCache: number;
          calls: EtcdCalls;
          cpuMs: number;
          used: Map<string, number>;
        }
      > = {};
      for (let r = 0; r < rounds; r++) {
        // Rotate who goes first from round to round, so no contender always follows the same one.
        const order = CONTENDERS.map((_, i) => CONTENDERS[(i + r) % CONTENDERS.length]!);
        for (const c of order) {
          const w = await placementWindow(cluster.endpoints, c, windowMs);
          const ops = (w.ops / w.elapsedMs) * 1000;
          const a = (acc[c] ??= {
            rounds: [],
            errors: 0,
            lat: [],
            pairs: 0,
            commits: 0,
            conflicts: 0,
            staleCache: 0,
            calls: { range: 0, txn: 0, proposals: 0 },
            cpuMs: 0,
            used: new Map(),
          });
          a.rounds.push(round(ops, 1));
          a.errors += w.errors;
          if (w.lastError) a.lastError = w.lastError;
          a.lat.push(...w.lat);
          a.pairs += w.ops;
          a.commits += w.commits;
          a.conflicts += w.conflicts;
          a.staleCache += w.staleCache;
          a.calls.range += w.calls.range;
          a.calls.txn += w.calls.txn;
          a.calls.proposals += w.calls.proposals;
          a.cpuMs += w.cpuMs;
          for (const [i, k] of w.used) a.used.set(i, (a.used.get(i) ?? 0) + k);
          ctx.log(
            `${WORKERS} workers ${c}: ${fmt(ops)} pairs/s, p50 ${fmt(median(w.lat))} ms, ${w.used.size} instance(s), ${fmt(w.conflicts / Math.max(1, w.ops))} conflicts/pair, ${fmt(w.staleCache / Math.max(1, w.ops))} stale-cache commits/pair, etcd ${fmt(w.calls.range / Math.max(1, w.ops))} Range + ${fmt(w.calls.txn / Math.max(1, w.ops))} Txn (${fmt(w.calls.proposals / Math.max(1, w.ops))} raft writes)/pair, ${fmt(w.cpuMs / Math.max(1, w.ops))} ms bench CPU/pair${w.errors ? ` (${w.errors} errors: ${w.lastError})` : ''}`,
          );
        }
      }
      const rows: Row[] = CONTENDERS.map((c) => {
        const a = acc[c]!;
        const s = summarize(a.lat);
        const per = (x: number): number => round(x / Math.max(1, a.pairs), 3);
        const grants = [...a.used.values()];
        const total = grants.reduce((x, y) => x + y, 0);
        return {
          contender: c,
          eligible: c === 'any' ? INSTANCES : c === 'any-zone-a' ? INSTANCES / 2 : 1,
          workers: WORKERS,
          opsPerSec: round(median(a.rounds), 1),
          rounds: a.rounds,
          errors: a.errors,
          ...(a.lastError ? { lastError: a.lastError } : {}),
          latency: {
            n: s.n,
            p50: round(s.p50),
            p90: round(s.p90),
            p99: round(s.p99),
            max: round(s.max),
            mean: round(s.mean),
          },
          commitsPerPair: per(a.commits),
          conflictsPerPair: per(a.conflicts),
          staleCachePerPair: per(a.staleCache),
          rangePerPair: per(a.calls.range),
          txnPerPair: per(a.calls.txn),
          raftWritesPerPair: per(a.calls.proposals),
          cpuMsPerPair: per(a.cpuMs),
          instancesUsed: a.used.size,
          topShare: round(total ? Math.max(...grants) / total : NaN, 3),
        };
      });
      const get = (c: Contender): number => rows.find((x) => x.contender === c)?.opsPerSec ?? NaN;
      const callsOf = (c: Contender): string => {
        const x = rows.find((y) => y.contender === c);
        return x
          ? `${fmt(x.rangePerPair + x.txnPerPair)} etcd calls per pair (${fmt(x.rangePerPair)} Range, ${fmt(x.txnPerPair)} Txn), ${fmt(x.raftWritesPerPair)} of them raft writes, ${fmt(x.commitsPerPair)} successful commits`
          : 'not measured';
      };
      const busy = (c: Contender): string => {
        const x = rows.find((y) => y.contender === c);
        return x ? `${fmt((x.opsPerSec * x.cpuMsPerPair) / 10)}%` : '–';
      };
      const ratio = get('any') / get('explicit');
      const at = (n: number): RankRow | undefined => ranking.rows.find((r) => r.instances === n);
      const growth = (at(10_000)?.rank.usP50 ?? NaN) / (at(1000)?.rank.usP50 ?? NaN);
      const linear = (at(10_000)?.floor.usP50 ?? NaN) / (at(1000)?.floor.usP50 ?? NaN);
      const aims: Aim[] = [
        {
          aim: 'placement grows sub-linearly with the instances (µs per placement, 10,000 ÷ 1,000 instances)',
          target: '< 10× (a linear scan: 10×)',
          measured: `${fmt(growth)}× (the linear scan beside it: ${fmt(linear)}×)`,
          met: Number.isFinite(growth) ? growth < 10 : null,
        },
        {
          aim: `placement (any) reservations/s vs explicit target, ${WORKERS} workers, ${INSTANCES} instances`,
          target: '≥ 50%',
          measured: `${fmt(ratio * 100)}% (${fmt(get('any'))} vs ${fmt(get('explicit'))} pairs/s)`,
          met: Number.isFinite(ratio) ? ratio >= 0.5 : null,
        },
      ];
      return {
        data: {
          ranking,
          fleet: {
            members: cluster.size,
            dataOn: '/dev/shm (tmpfs) when present',
            instances: INSTANCES,
            workers: WORKERS,
            windowMs,
            rounds,
            rows,
          },
        },
        aims,
        notes: [
          `Ranking: \`rankInstances(snaps, request, {selector: {}, strategy: "least-allocated"}, now, new Set(), salt)\` from src/placement/place.ts, in-process, over ${RANK_SIZES.join(', ')} synthetic instance snapshots (8 CPU, 16 GiB; zone a/b alternating), each with ${GRANTS_PER_INSTANCE} grants made by the admission core's own \`submit\` (sizes vary between instances so scores differ), for a request of 500m CPU and 512 MiB that fits everywhere: every instance is a grant candidate. Above 100 instances the ranking stops once enough grant candidates were found (the kube-scheduler's adaptive sampling, \`enoughToScore\`: 420 of 1,000, 500 of 10,000), so it grows sub-linearly while the linear scan simulates every instance. The salt comes from a fixed list of 64 (CoreLedger draws 6 random bytes per round; that is not counted). Beside it, the floor: the same probe \`submit\` on every snapshot, which is what \`classify\` runs per instance; rank ÷ floor (the median over rounds of the per-round ratio of calls/s) shows what filtering, scoring and sorting add: near 1, the ranking is the simulation. Calls/s is the median over ${ranking.rounds} rounds of at least ${ranking.minMs} ms, sizes and contenders alternating within each round; µs per call is p50/p99 over every timed call (the p99 includes garbage collection and, on this shared machine, other processes' time slices).`,
          `Fleet: three etcd members on this machine (Debian etcd-server 3.4, heartbeat 50 ms, election 500 ms) on loopback with their data dirs on /dev/shm, driven from one Node thread, as in the fleet scenario. Each window starts on a fresh key prefix under /rrm-bench/ with ${INSTANCES} instances i0…i${INSTANCES - 1} (allocatable 1,000,000m CPU and 2^50 bytes, so every request is granted at once; label zone a on even, b on odd ids) and ${WORKERS} workers, each with its own EtcdStore (etcd client) and CoreLedger, as separate hosts would be. Each worker loops \`reserve\` of 10m CPU (hard, priority 500, lease 30 s) then \`release\` with its token. Prefixes are deleted and the cluster killed at the end.`,
          `\`explicit\` (the no-placement baseline): worker w reserves on its own instance i<w % 20>. The reservation's Txn commits on the state this store committed last there (no other writer touches that instance, so the compare holds and no read is needed for it); \`release\` commits one Txn the same way; whatever reads CoreLedger does around them (looking up the target or the reservation) come on top, as counted here. Measured by etcd itself (its /metrics, summed over the members, per pair): ${callsOf('explicit')}. That is the least a placed pair can cost: it does the same, plus placement.`,
          `\`any\`: \`reserve\` with \`target: "any"\` goes to CoreLedger.place: \`store.snapshots()\` reads every instance record, every active reservation and the agents/alive keys in ONE read Txn (four ranges at one revision); \`rankInstances\` ranks them in-process (least-allocated: the emptiest first, ties shuffled by a random salt); the request is then submitted on the best through \`store.transact\`. There this store's last-commit state of that instance is often stale (another worker committed there since), so the commit tried on it fails its compare and its else branch returns the fresh state: it stands in for a read, but as a Txn with writes it goes through raft (the stale-cache column); and a worker that commits there between that read and the commit makes it decide again on the state the else branch returned (the conflicts column). \`release\` as above (its commit can meet a stale cache too). Measured: ${callsOf('any')}; so placement adds the all-instances read Txn, the ranking, and the stale-cache and conflict retries.`,
          `Where the time goes: the bench process (one Node thread: the ${WORKERS} etcd clients, JSON, the ranking) kept ${busy('any')} of one core busy in \`any\` windows, ${busy('explicit')} in \`explicit\` and ${busy('any-zone-a')} in \`any-zone-a\` (pairs/s × its CPU ms per pair); near 100% the driving process, not etcd, sets the rate, and every etcd call costs it gRPC work.`,
          '`any-zone-a`: the same with selector {zone: a}, which leaves 10 of the 20 instances: the 8 workers crowd fewer instances, so more of their submissions land where another worker just committed.',
          'Pairs/s is the median over rounds; contenders alternate within each round (any, explicit, any-zone-a, the first rotating from round to round), after one discarded warm-up window per contender. Latency is per pair. Bench CPU is this process’s own CPU time (etcd clients, JSON, ranking) per pair: the three etcd members share the same cores. Commits, conflicts and stale-cache commits are the EtcdStore counters summed over the workers’ stores, per pair; etcd calls are the members’ grpc_server_handled_total for KV Range and Txn (each call is handled by the one member it is sent to, so the sum over members counts each once), raft writes the delta of etcd_server_proposals_committed_total; "instances used" is how many distinct instances the window’s grants landed on.',
        ],
      };
    } finally {
      await client
        .delete()
        .prefix('/rrm-bench/')
        .exec()
        .catch(() => undefined);
      client.close();
      await cluster.close();
    }
  },

  render(r, svg) {
    const d = r.data;
    const f = d.fleet;
    const explicit = f.rows.find((x) => x.contender === 'explicit')?.opsPerSec ?? NaN;
    const bars = svg(
      'placement',
      barChart({
        title: `Placement on etcd: reservations per second, ${f.workers} workers, ${f.instances} instances`,
        unit: 'reserve+release pairs/s',
        bars: f.rows.map((x) => ({
          label: x.contender,
          value: x.opsPerSec,
          note: `${fmt(x.opsPerSec)} (${fmt((x.opsPerSec / explicit) * 100)}%)`,
          color: x.contender === 'explicit' ? '#7f7f7f' : x.contender === 'any' ? '#1f77b4' : '#6baed6',
        })),
      }),
    );
    return [
      `Ranking: ${d.ranking.grantsPerInstance} grants per instance, median of ${d.ranking.rounds} round(s) of at least ${d.ranking.minMs} ms.`,
      '',
      mdTable(
        ['instances', 'contender', 'µs per call p50 / p99', 'calls/s', 'rank ÷ floor'],
        d.ranking.rows.flatMap((x) =>
          (['rank', 'submit-floor'] as const).map((c) => {
            const s = c === 'rank' ? x.rank : x.floor;
            return [
              String(x.instances),
              RANK_LABEL[c],
              `${fmt(s.usP50)} / ${fmt(s.usP99)}`,
              fmt(s.callsPerSec),
              c === 'rank' ? `${fmt(x.rankOverFloor)}×` : '1',
            ];
          }),
        ),
      ),
      '',
      `Fleet: ${f.members}-member etcd cluster on loopback, data on ${f.dataOn}; ${f.instances} instances, ${f.workers} workers with a store each; windows of ${f.windowMs} ms, ${f.rounds} round(s).`,
      '',
      `![placement](${bars})`,
      '',
      mdTable(
        [
          'contender',
          'pairs/s',
          '÷ explicit',
          'ms per pair p50 / p99',
          'etcd Range + Txn per pair (raft writes)',
          'bench CPU ms per pair',
          'commits / conflicts / stale-cache per pair',
          'instances used (top share)',
          'errors',
        ],
        f.rows.map((x) => [
          LABEL[x.contender],
          fmt(x.opsPerSec),
          x.contender === 'explicit' ? '1' : `${fmt((x.opsPerSec / explicit) * 100)}%`,
          `${fmt(x.latency.p50)} / ${fmt(x.latency.p99)}`,
          `${fmt(x.rangePerPair)} + ${fmt(x.txnPerPair)} (${fmt(x.raftWritesPerPair)})`,
          fmt(x.cpuMsPerPair),
          `${fmt(x.commitsPerPair)} / ${fmt(x.conflictsPerPair)} / ${fmt(x.staleCachePerPair)}`,
          `${x.instancesUsed} (${fmt(x.topShare * 100)}%)`,
          String(x.errors),
        ]),
      ),
    ].join('\n');
  },
};
