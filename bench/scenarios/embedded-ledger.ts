/**
 * The embedded ledger (CoreLedger over SqliteStore): reserve+release pairs per second from one
 * process and from 8 contending processes, beside baselines measured in the same run:
 *   - json+flock: a JSON ledger file serialised with flock(2) (python3; see baselines/json-flock.py),
 *     with and without fsync;
 *   - flock(1) in a bash loop (see baselines/flock-loop.sh);
 *   - rrm with `synchronous: 'full'` (an fsync per commit);
 * plus the disk's raw fsync rate, pairs/s versus the number of active grants, and wake latency
 * from a release's commit to a waiting process holding its grant.
 */
import {
  closeSync,
  existsSync,
  fdatasyncSync,
  fsyncSync,
  mkdirSync,
  openSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { benchRequest, INSTANCE, openBenchLedger, selfHolder } from '../lib/bench-ledger.js';
import { BASELINES, fsTypeOf, which, workerPath } from '../lib/env.js';
import { LineChild } from '../lib/lines.js';
import { mdTable, type Aim, type Scenario } from '../lib/scenario.js';
import { fmt, median, nowMs, round, sleep, summarize, type Summary } from '../lib/stats.js';
import { barChart, lineChart } from '../lib/svg.js';
import type { Reservation } from '../../src/model/reservation.js';

const MiB = 2 ** 20;
const ALLOCATABLE = { cpu: 1_000_000, memory: 1024 * 1024 * MiB };
/** Debian's python3 when present (a pyenv shim or the like otherwise). */
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : (which('python3') ?? 'python3');

type Contender = 'rrm' | 'rrm-fsync' | 'json-flock' | 'json-flock-fsync' | 'bash-flock';

const LABEL: Record<Contender, string> = {
  rrm: 'rrm (SQLite WAL, synchronous=NORMAL, the default)',
  'rrm-fsync': 'rrm (SQLite WAL, synchronous=FULL: fsync per commit)',
  'json-flock': 'JSON file + flock(2) (python3)',
  'json-flock-fsync': 'JSON file + flock(2) + fsync (python3)',
  'bash-flock': 'flock(1) in a bash loop',
};

interface Throughput {
  readonly contender: Contender;
  readonly procs: number;
  readonly pairsPerSec: number;
  readonly rounds: number[];
  readonly errors: number;
  readonly latency?: Summary;
  /** Bytes written by the contenders' write calls per pair (/proc/<pid>/io wchar; pwrite to the WAL included). */
  readonly bytesPerPair?: number;
}

export interface EmbeddedLedgerData {
  readonly dir: string;
  readonly fs: string;
  readonly windowMs: number;
  readonly rounds: number;
  readonly fsync: { readonly fdatasyncOverwritePerSec: number; readonly fsyncAppendPerSec: number };
  readonly throughput: Throughput[];
  readonly vsGrants: ReadonlyArray<{ readonly grants: number; readonly pairsPerSec: number }>;
  readonly wake: {
    readonly samples: number;
    readonly pollMs: number;
    readonly rrm: Summary;
    readonly inotify: Summary;
    readonly releaseCall: Summary;
    readonly slowerThan100ms: number;
  };
}

/** Starts `procs` workers of one contender on a fresh ledger, runs one window, returns pairs/s. */
async function window(
  contender: Contender,
  procs: number,
  dir: string,
  windowMs: number,
  setup: (path: string) => Promise<void>,
): Promise<{ pairsPerSec: number; errors: number; lat: number[]; bytesPerPair?: number }> {
  mkdirSync(dir, { recursive: true });
  const children: LineChild[] = [];
  const path = join(dir, 'ledger.db');
  if (contender === 'rrm' || contender === 'rrm-fsync') await setup(path);
  else if (contender !== 'bash-flock')
    writeFileSync(join(dir, 'ledger.json'), JSON.stringify({ allocatable: ALLOCATABLE, seq: 0, grants: {} }));
  for (let i = 0; i < procs; i++) {
    if (contender === 'rrm' || contender === 'rrm-fsync') {
      const args = { path, synchronous: contender === 'rrm' ? 'normal' : 'full', durationMs: windowMs };
      children.push(new LineChild(process.execPath, [workerPath('ledger-pairs'), JSON.stringify(args)]));
    } else if (contender === 'bash-flock') {
      children.push(new LineChild('bash', [join(BASELINES, 'flock-loop.sh'), dir, String(windowMs)]));
    } else {
      const args = { dir, durationMs: windowMs, fsync: contender === 'json-flock-fsync' };
      children.push(new LineChild(PYTHON, [join(BASELINES, 'json-flock.py'), JSON.stringify(args)]));
    }
  }
  try {
    for (const c of children) await c.next();
    for (const c of children) c.send('go');
    const results = [];
    for (const c of children)
      results.push(
        await c.next<{
          pairs: number;
          errors: number;
          elapsedMs: number;
          lat: number[];
          writtenBytes?: number;
        }>(windowMs + 60_000),
      );
    const pairs = results.reduce((a, r) => a + r.pairs, 0);
    const elapsed = Math.max(...results.map((r) => r.elapsedMs));
    return {
      pairsPerSec: (pairs / elapsed) * 1000,
      errors: results.reduce((a, r) => a + r.errors, 0),
      lat: results.flatMap((r) => r.lat),
      ...(results.every((r) => r.writtenBytes !== undefined)
        ? { bytesPerPair: results.reduce((a, r) => a + (r.writtenBytes ?? 0), 0) / Math.max(1, pairs) }
        : {}),
    };
  } finally {
    await Promise.all(children.map((c) => c.close()));
  }
}

async function createLedger(path: string, grants = 0): Promise<void> {
  const ledger = openBenchLedger(path);
  await ledger.ensureInstance({ id: INSTANCE, capacity: ALLOCATABLE, allocatable: ALLOCATABLE });
  if (grants > 0) {
    // Background grants held by a live holder on another host (not reaped), set up in one commit.
    const now = Date.now();
    const holder = { host: 'elsewhere', pid: 1, startTime: 0, owner: 'bench' };
    await ledger.store.transact(INSTANCE, (snap) => {
      const upserts: Reservation[] = Array.from({ length: grants }, (_, i) => ({
        id: `rsv_bg${i}`,
        instance: INSTANCE,
        state: 'granted',
        mode: 'hard',
        priority: 500,
        requests: { cpu: 10, memory: MiB },
        preemptible: true,
        mayPreempt: true,
        onPreempt: 'requeue',
        packages: [{ manager: 'npm', name: `bg-${i}` }],
        holder,
        tokenHash: 'x',
        arrival: i + 1,
        createdAt: now,
        grantedAt: now,
        grantSeq: i + 1,
        leaseMs: 3_600_000,
        leaseExpiresAt: now + 3_600_000,
        attempt: 1,
      }));
      return {
        transition: { instance: { ...snap.instance, seq: snap.instance.seq + grants }, upserts, events: [] },
        result: undefined,
      };
    });
  }
  await ledger.close();
}

function rawFsync(dir: string, ms: number): { fdatasyncOverwritePerSec: number; fsyncAppendPerSec: number } {
  const block = Buffer.alloc(4096, 7);
  const rate = (file: string, op: (fd: number, i: number) => void): number => {
    const fd = openSync(join(dir, file), 'w');
    try {
      op(fd, 0);
      let i = 1;
      const start = nowMs();
      while (nowMs() - start < ms) op(fd, i++);
      return ((i - 1) / (nowMs() - start)) * 1000;
    } finally {
      closeSync(fd);
    }
  };
  return {
    fdatasyncOverwritePerSec: rate('overwrite.dat', (fd) => {
      writeSync(fd, block, 0, block.length, 0);
      fdatasyncSync(fd);
    }),
    fsyncAppendPerSec: rate('append.dat', (fd, i) => {
      writeSync(fd, block, 0, block.length, i * block.length);
      fsyncSync(fd);
    }),
  };
}

async function wakeLatency(
  dir: string,
  samples: number,
  pollMs: number,
): Promise<EmbeddedLedgerData['wake']> {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'ledger.db');
  await createLedger(path);
  const ledger = openBenchLedger(path);
  await ledger.setAllocatable(INSTANCE, { cpu: 1000 }, { cpu: 1000 }, 'bench');
  const waiter = new LineChild(process.execPath, [
    workerPath('ledger-waiter'),
    JSON.stringify({ path, pollMs }),
  ]);
  const holder = selfHolder();
  const rrm: number[] = [];
  const inotify: number[] = [];
  const releaseCall: number[] = [];
  const touch = join(dir, 'touched');
  const fd = openSync(touch, 'w');
  try {
    await waiter.next();
    for (let i = 0; i < samples; i++) {
      // rrm: we hold the whole instance; the waiter queues; we release; it notices its grant.
      const { outcome, token } = await ledger.reserve(benchRequest({ cpu: 1000 }, holder));
      if (outcome.kind !== 'granted') throw new Error(`wake setup: ${outcome.kind}`);
      waiter.send('wait');
      const q = await waiter.next<{ queued: boolean }>();
      if (!q.queued) throw new Error('wake setup: the waiter was not queued');
      await sleep(30); // let it settle into waiting on the change feed
      const t0 = nowMs();
      await ledger.release(outcome.reservation.id, { token });
      releaseCall.push(nowMs() - t0);
      const g = await waiter.next<{ granted: number }>(pollMs * 5 + 10_000);
      rrm.push(g.granted - t0);
      await waiter.next(); // released
      // The floor: a one-byte write to a watched directory, noticed by another process.
      waiter.send('watch touched');
      await waiter.next(); // watching
      await sleep(30);
      const t1 = nowMs();
      writeSync(fd, Buffer.from('.'), 0, 1, 0);
      const w = await waiter.next<{ woke: number }>();
      inotify.push(w.woke - t1);
    }
  } finally {
    closeSync(fd);
    await waiter.close();
    await ledger.close();
  }
  return {
    samples,
    pollMs,
    rrm: roundSummary(summarize(rrm)),
    inotify: roundSummary(summarize(inotify)),
    releaseCall: roundSummary(summarize(releaseCall)),
    slowerThan100ms: rrm.filter((x) => x > 100).length,
  };
}

/** What synchronous=FULL adds per commit over NORMAL (ms), from pairs/s of each (two commits per pair). */
function fsyncCostMs(normalPairsPerSec: number, fullPairsPerSec: number): number {
  return (1000 / fullPairsPerSec - 1000 / normalPairsPerSec) / 2;
}

function roundSummary(s: Summary): Summary {
  return {
    n: s.n,
    p50: round(s.p50),
    p90: round(s.p90),
    p99: round(s.p99),
    max: round(s.max),
    mean: round(s.mean),
  };
}

export const embeddedLedger: Scenario<EmbeddedLedgerData> = {
  name: 'embedded-ledger',
  title: 'Embedded ledger (SQLite) versus flock baselines',

  async run(ctx) {
    const windowMs = ctx.quick ? 1_000 : 3_000;
    const rounds = ctx.quick ? 1 : 3;
    const dir = ctx.workDir;
    const python = existsSync(PYTHON) || which('python3') !== undefined;
    const flock = which('flock');
    const contenders: Contender[] = [
      'rrm',
      'rrm-fsync',
      ...(python ? (['json-flock', 'json-flock-fsync'] as const) : []),
      ...(flock ? (['bash-flock'] as const) : []),
    ];
    const missing = [
      ...(python ? [] : ['python3 (JSON+flock baselines)']),
      ...(flock ? [] : ['flock(1) (bash baseline)']),
    ];
    const fsyncRounds: Array<{ fdatasyncOverwritePerSec: number; fsyncAppendPerSec: number }> = [];
    const throughput: Throughput[] = [];
    let k = 0;
    for (const procs of [1, 8]) {
      const per: Record<string, { rounds: number[]; errors: number; lat: number[]; bytes: number[] }> = {};
      for (let r = 0; r < rounds; r++) {
        if (procs === 1) {
          const f = rawFsync(dir, ctx.quick ? 300 : 1_000);
          fsyncRounds.push(f);
          ctx.log(
            `raw: ${fmt(f.fdatasyncOverwritePerSec)} fdatasync/s (overwrite), ${fmt(f.fsyncAppendPerSec)} fsync/s (append)`,
          );
        }
        for (const c of contenders) {
          const w = await window(c, procs, join(dir, `w${k++}`), windowMs, (p) => createLedger(p));
          const acc = (per[c] ??= { rounds: [], errors: 0, lat: [], bytes: [] });
          acc.rounds.push(round(w.pairsPerSec, 1));
          if (w.bytesPerPair !== undefined) acc.bytes.push(w.bytesPerPair);
          acc.errors += w.errors;
          acc.lat.push(...w.lat);
          ctx.log(
            `${procs} proc(s) ${c}: ${fmt(w.pairsPerSec)} pairs/s${w.errors ? ` (${w.errors} errors)` : ''}`,
          );
        }
      }
      for (const c of contenders) {
        const acc = per[c]!;
        throughput.push({
          contender: c,
          procs,
          pairsPerSec: round(median(acc.rounds), 1),
          rounds: acc.rounds,
          errors: acc.errors,
          ...(acc.lat.length ? { latency: roundSummary(summarize(acc.lat)) } : {}),
          ...(acc.bytes.length ? { bytesPerPair: Math.round(median(acc.bytes)) } : {}),
        });
      }
    }

    const fsync = {
      fdatasyncOverwritePerSec: round(median(fsyncRounds.map((f) => f.fdatasyncOverwritePerSec)), 1),
      fsyncAppendPerSec: round(median(fsyncRounds.map((f) => f.fsyncAppendPerSec)), 1),
    };
    const grantCounts = ctx.quick ? [0, 100, 1_000] : [0, 100, 1_000, 10_000];
    const vsGrants: Array<{ grants: number; pairsPerSec: number }> = [];
    for (const n of grantCounts) {
      const w = await window('rrm', 1, join(dir, `g${n}`), windowMs, (p) => createLedger(p, n));
      vsGrants.push({ grants: n, pairsPerSec: round(w.pairsPerSec, 1) });
      ctx.log(`${n} active grants: ${fmt(w.pairsPerSec)} pairs/s`);
    }

    const wake = await wakeLatency(join(dir, 'wake'), ctx.quick ? 15 : 100, 1_000);
    ctx.log(`wake p50 ${wake.rrm.p50} ms p99 ${wake.rrm.p99} ms (inotify floor p50 ${wake.inotify.p50} ms)`);

    const tp = (c: Contender, p: number): number =>
      throughput.find((t) => t.contender === c && t.procs === p)?.pairsPerSec ?? NaN;
    const one = tp('rrm', 1);
    const full1 = tp('rrm-fsync', 1);
    const aims: Aim[] = [
      {
        aim: 'reserve+release pairs/s, one process',
        target: '≥ 20,000',
        measured: `${fmt(one)} (JSON+flock ${fmt(tp('json-flock', 1))})`,
        met: one >= 20_000,
      },
      {
        aim: 'reserve+release pairs/s, 8 processes',
        target: 'informational',
        measured: `${fmt(tp('rrm', 8))} (JSON+flock ${fmt(tp('json-flock', 8))})`,
        met: null,
      },
      {
        aim: 'fsync per commit: commits/s vs raw fsync/s (append)',
        target: 'informational',
        measured: `${fmt(2 * full1)} vs ${fmt(fsync.fsyncAppendPerSec)}; an fsync adds ${fmt(fsyncCostMs(one, full1))} ms per commit (raw: ${fmt(1000 / fsync.fsyncAppendPerSec)} ms)`,
        met: null,
      },
      {
        aim: 'wake latency, release commit → waiter granted',
        target: 'informational',
        measured: `p50 ${fmt(wake.rrm.p50)} ms, p99 ${fmt(wake.rrm.p99)} ms`,
        met: null,
      },
    ];
    return {
      data: { dir, fs: fsTypeOf(dir), windowMs, rounds, fsync, throughput, vsGrants, wake },
      aims,
      notes: [
        ...(missing.length ? [`Not measured here, missing: ${missing.join(', ')}.`] : []),
        'A pair is `CoreLedger.reserve` (sweep + one BEGIN IMMEDIATE transaction) then `CoreLedger.release` (one transaction), each from the real `src/ledger` code with this host’s liveness check; every request fits, so nothing waits for capacity: this measures the ledger, not the queue.',
        'Throughput is Σ pairs over all processes ÷ the window; the processes start together on “go” after they opened the ledger. Each window starts from a fresh ledger. Median over rounds; contenders alternate within a round.',
        'JSON+flock (baselines/json-flock.py) is the fair simplest alternative: flock(2) from python3 (no process per lock), read and parse the JSON ledger, check fit over the active grants, write a temp file and rename it; the fsync variant fsyncs the file and the directory. It keeps no history, queue, leases or events, which rrm does. flock(1) in a bash loop (baselines/flock-loop.sh) forks flock(1) twice per operation around a counter file: the shell-script way, shown for scale.',
        'Raw fsync: 4 KiB overwritten at offset 0 then fdatasync (what a WAL commit costs at best), and 4 KiB appended then fsync, in a loop in the same directory. With synchronous=FULL each rrm pair is two commits, so commits/s = 2 × pairs/s.',
        'Wake latency: this process holds the whole instance, a child process waits for it through the real client (`acquire`: change feed + 1 s poll); t0 is taken just before `release`, t1 when the child’s `acquire` resolves (system-wide monotonic clock). The floor is the same child noticing a one-byte write to a watched directory (fs.watch/inotify).',
      ],
    };
  },

  render(r, svg) {
    const d = r.data;
    const tp = (c: Contender, p: number): Throughput | undefined =>
      d.throughput.find((t) => t.contender === c && t.procs === p);
    const rrm1 = tp('rrm', 1)?.pairsPerSec ?? NaN;
    const rrm8 = tp('rrm', 8)?.pairsPerSec ?? NaN;
    const rows = (Object.keys(LABEL) as Contender[]).map((c) => {
      const a = tp(c, 1);
      const b = tp(c, 8);
      const lat = (t?: Throughput): string =>
        t?.latency ? `${fmt(t.latency.p50)} / ${fmt(t.latency.p99)}` : '–';
      return [
        LABEL[c],
        fmt(a?.pairsPerSec),
        c === 'rrm' ? '1' : `${fmt(rrm1 / (a?.pairsPerSec ?? NaN))}×`,
        lat(a),
        a?.bytesPerPair !== undefined ? fmt(a.bytesPerPair / 1024) : '–',
        fmt(b?.pairsPerSec),
        c === 'rrm' ? '1' : `${fmt(rrm8 / (b?.pairsPerSec ?? NaN))}×`,
        lat(b),
      ];
    });
    const colors: Record<Contender, string> = {
      rrm: '#1f77b4',
      'rrm-fsync': '#6baed6',
      'json-flock': '#d62728',
      'json-flock-fsync': '#ff9896',
      'bash-flock': '#7f7f7f',
    };
    const bars = svg(
      'embedded-ledger-throughput',
      barChart({
        title: 'Embedded ledger: reserve+release pairs per second',
        unit: 'pairs per second (log scale)',
        logX: true,
        bars: [1, 8].flatMap((p) =>
          (Object.keys(LABEL) as Contender[]).map((c) => ({
            label: `${p} proc${p > 1 ? 's' : ''}: ${c}`,
            value: tp(c, p)?.pairsPerSec ?? NaN,
            note: fmt(tp(c, p)?.pairsPerSec),
            color: colors[c],
          })),
        ),
      }),
    );
    const grants = svg(
      'embedded-ledger-grants',
      lineChart({
        title: 'Embedded ledger: pairs per second vs active grants (1 process)',
        xLabel: 'active grants on the instance (+1)',
        yLabel: 'pairs per second',
        logX: true,
        logY: true,
        series: [{ name: 'rrm', points: d.vsGrants.map((g) => [g.grants + 1, g.pairsPerSec]) }],
      }),
    );
    const full = tp('rrm-fsync', 1)?.pairsPerSec ?? NaN;
    return [
      `Scratch directory on ${d.fs}; windows of ${d.windowMs} ms, ${d.rounds} round(s).`,
      '',
      `![pairs per second](${bars})`,
      '',
      mdTable(
        [
          'contender',
          '1 process: pairs/s',
          'rrm ÷ this',
          'ms per pair p50 / p99',
          'KiB written per pair',
          '8 processes: pairs/s',
          'rrm ÷ this',
          'ms per pair p50 / p99',
        ],
        rows,
      ),
      '',
      `**Raw fsync rate** of this disk (measured beside the one-process windows, median): ${fmt(d.fsync.fdatasyncOverwritePerSec)} fdatasync/s (4 KiB overwrite), ${fmt(d.fsync.fsyncAppendPerSec)} fsync/s (4 KiB append). rrm with an fsync per commit does ${fmt(2 * full)} commits/s from one process (${fmt(full)} pairs/s, ${fmt(((2 * full) / d.fsync.fsyncAppendPerSec) * 100)}% of the raw append+fsync rate). The fsync itself adds ${fmt(fsyncCostMs(rrm1, full))} ms per commit over synchronous=NORMAL, against ${fmt(1000 / d.fsync.fsyncAppendPerSec)} ms for a raw append+fsync: the commits get as close to the disk as the disk allows; what separates rrm from the raw rate is its own time per commit without an fsync (${fmt(1000 / rrm1 / 2)} ms with NORMAL).`,
      '',
      '**Versus active grants** (one process; the other grants are held by a live holder on another host):',
      '',
      `![pairs vs grants](${grants})`,
      '',
      mdTable(
        ['active grants', 'pairs/s', 'ms per pair'],
        d.vsGrants.map((g) => [fmt(g.grants), fmt(g.pairsPerSec), fmt(1000 / g.pairsPerSec)]),
      ),
      '',
      `**Wake latency** (${d.wake.samples} samples; poll every ${d.wake.pollMs} ms as the fallback): from just before the holder's \`release\` to the waiting process holding its grant.`,
      '',
      mdTable(
        ['', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms'],
        [
          [
            'rrm: release → waiter granted',
            fmt(d.wake.rrm.p50),
            fmt(d.wake.rrm.p90),
            fmt(d.wake.rrm.p99),
            fmt(d.wake.rrm.max),
          ],
          [
            'of which the `release` call',
            fmt(d.wake.releaseCall.p50),
            fmt(d.wake.releaseCall.p90),
            fmt(d.wake.releaseCall.p99),
            fmt(d.wake.releaseCall.max),
          ],
          [
            'floor: write → fs.watch in another process',
            fmt(d.wake.inotify.p50),
            fmt(d.wake.inotify.p90),
            fmt(d.wake.inotify.p99),
            fmt(d.wake.inotify.max),
          ],
        ],
      ),
      '',
      `${d.wake.slowerThan100ms} of ${d.wake.samples} wake-ups took over 100 ms (a missed change-feed event falls back to the ${d.wake.pollMs} ms poll).`,
    ].join('\n');
  },
};
