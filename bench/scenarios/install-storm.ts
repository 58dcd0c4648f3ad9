/**
 * Install storm: 12 installs of a fixture "native build" (one CPU busy, ~1.5 GiB resident, a few
 * seconds) at once on a box of 2 CPUs and 4 GiB (a memory cgroup), plus a `critical` install 5 s
 * later, three ways: all at once, serialised with flock(1), and through `rrm run` on an instance
 * whose allocatable is 2 CPU / 4 GiB. Reports failures (OOM kills), makespan against a lower bound,
 * and how long the critical install waited to start.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { MemoryCgroup } from '../lib/cgroup.js';
import { FIXTURE, which } from '../lib/env.js';
import { launch, timed, type Exit, type Spawned } from '../lib/proc.js';
import { mdTable, Skip, type Aim, type Scenario } from '../lib/scenario.js';
import { fmt, median, nowMs, round, sleep } from '../lib/stats.js';
import { timeline, type Lane, type Span } from '../lib/svg.js';

const GiB = 2 ** 30;
const CGROUP = 'rrm-bench-storm';
const BOX = { cpus: 2, memoryBytes: 4 * GiB };

type Contender = 'all-at-once' | 'flock' | 'rrm';

const DESCRIBE: Record<Contender, string> = {
  'all-at-once': 'all at once: every install started immediately',
  flock: 'flock(1): `flock <lock file> <install>`, one at a time (the usual CI serialisation)',
  rrm: '`rrm run --cpu 1 --memory 1.6Gi -- <install>` (critical: `--priority critical`) on `rrm capacity set --cpu 2 --memory 4Gi`',
};

interface FixtureLine {
  readonly ev: 'start' | 'end' | 'term';
  readonly name: string;
  readonly pid: number;
  readonly startedAt: number;
  readonly at: number;
  readonly cpuMs?: number;
  readonly gibSeconds?: number;
  readonly maxRssBytes?: number;
  readonly reservation?: string | null;
}

export interface Install {
  readonly name: string;
  readonly critical: boolean;
  /** Seconds since the storm started (t0). */
  readonly submitS: number;
  readonly exitS: number;
  readonly code: number | null;
  readonly signal: string | null;
  /** Each attempt's process start, and its end (completed, stopped by SIGTERM, or the exit). */
  readonly attempts: ReadonlyArray<{
    readonly startS: number;
    readonly endS: number;
    readonly how: 'done' | 'stopped' | 'killed';
  }>;
  readonly failed: boolean;
}

export interface ContenderResult {
  readonly contender: Contender;
  readonly makespanS: number;
  /** When the first install's process started (s since t0): start-up and admission cost up front. */
  readonly firstStartS: number;
  readonly failures: number;
  readonly oomKills: number;
  readonly restarts: number;
  readonly cgroupPeakBytes?: number;
  readonly criticalWaitS?: number;
  readonly criticalDoneS?: number;
  readonly timedOut: boolean;
  /** 1-minute load average just before this contender's storm (the machine is shared). */
  readonly load1: number;
  readonly installs: Install[];
  /** rrm only: where the critical install's wait went, from the ledger's events (seconds). */
  readonly criticalBreakdown?: {
    readonly toSubmitS: number;
    readonly queuedS: number;
    readonly grantToStartS: number;
  };
}

export interface StormData {
  readonly installs: number;
  readonly criticalAtS: number;
  readonly fixture: { readonly memMiB: number; readonly work: number; readonly itersPerSec: number };
  readonly solo: {
    readonly wallS: number;
    readonly cpuS: number;
    readonly gibS: number;
    readonly maxRssBytes: number;
    readonly runs: number;
  };
  /** Two installs side by side in the box, nothing else running: each one's wall and CPU seconds. */
  readonly pair: { readonly wallS: number; readonly cpuS: number };
  readonly lowerBound: {
    readonly cpuS: number;
    readonly memS: number;
    readonly longestS: number;
    readonly boundS: number;
  };
  readonly contenders: ContenderResult[];
  readonly cgroup: string;
  readonly skipped?: string;
}

const epochNow = (): number => performance.timeOrigin + performance.now();

function readReport(file: string): FixtureLine[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as FixtureLine];
      } catch {
        return [];
      }
    });
}

async function calibrate(): Promise<number> {
  const rates: number[] = [];
  for (let i = 0; i < 3; i++) rates.push(await calibrateOnce());
  return median(rates);
}

async function calibrateOnce(): Promise<number> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [FIXTURE, '--calibrate'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`calibration exited ${code}`));
      resolve((JSON.parse(out) as { itersPerSec: number }).itersPerSec);
    });
  });
}

async function stormOnce(
  contender: Contender,
  cfg: {
    dir: string;
    cli: string;
    installs: number;
    criticalAtMs: number;
    fixtureArgs: string[];
    timeoutMs: number;
    log: (m: string) => void;
  },
): Promise<ContenderResult> {
  const dir = join(cfg.dir, contender);
  mkdirSync(dir, { recursive: true });
  const report = join(dir, 'fixture.jsonl');
  const stateDir = join(dir, 'rrm-state');
  const env: NodeJS.ProcessEnv = { ...process.env, RRM_STATE_DIR: stateDir, RRM_CGROUP_PARENT: CGROUP };
  delete env.RRM_AGENT; // the embedded ledger in stateDir, never an agent
  const fixture = (name: string): string[] => [
    process.execPath,
    FIXTURE,
    '--name',
    name,
    '--report',
    report,
    ...cfg.fixtureArgs,
  ];
  if (contender === 'rrm') {
    const set = await timed([process.execPath, cfg.cli, 'capacity', 'set', '--cpu', '2', '--memory', '4Gi'], {
      env,
      logFile: join(dir, 'capacity.log'),
    });
    if (set.code !== 0)
      throw new Error(`rrm capacity set exited ${set.code}: see ${join(dir, 'capacity.log')}`);
  }
  const argv = (name: string, critical: boolean): string[] => {
    if (contender === 'all-at-once') return fixture(name);
    if (contender === 'flock') return ['flock', join(dir, 'install.lock'), ...fixture(name)];
    return [
      process.execPath,
      cfg.cli,
      'run',
      '--cpu',
      '1',
      '--memory',
      '1.6Gi',
      ...(critical ? ['--priority', 'critical'] : []),
      '--',
      ...fixture(name),
    ];
  };
  const load1 = round(loadavg()[0] ?? 0, 2);
  const cg = await MemoryCgroup.create(CGROUP, BOX.memoryBytes);
  const oom0 = cg.oomKills();
  const offset = epochNow() - nowMs(); // monotonic → epoch
  const t0 = epochNow();
  const procs: Array<{ name: string; critical: boolean; sp: Spawned }> = [];
  const start = (name: string, critical: boolean): void => {
    procs.push({
      name,
      critical,
      sp: launch(cg.wrap(argv(name, critical)), { env, logFile: join(dir, `${name}.log`) }),
    });
  };
  for (let i = 1; i <= cfg.installs; i++) start(`install-${String(i).padStart(2, '0')}`, false);
  await sleep(Math.max(0, cfg.criticalAtMs - (epochNow() - t0)));
  start('critical', true);
  let timedOut = false;
  const all = Promise.all(procs.map((p) => p.sp.done));
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>(
    (resolve) => (timer = setTimeout(() => resolve('timeout'), cfg.timeoutMs)),
  );
  const first = await Promise.race([all, timeout]);
  clearTimeout(timer);
  if (first === 'timeout') {
    timedOut = true;
    cfg.log(`${contender}: timed out after ${cfg.timeoutMs / 1000} s; killing what is left`);
    await cg.remove();
  }
  const exits: Exit[] = await all;
  const oomKills = cg.oomKills() - oom0;
  const cgroupPeakBytes = cg.peakBytes();
  await cg.remove();

  const lines = readReport(report);
  const rel = (epoch: number): number => (epoch - t0) / 1000;
  const installs: Install[] = procs.map((p, i) => {
    const e = exits[i] as Exit;
    const mine = lines.filter((l) => l.name === p.name).sort((a, b) => a.at - b.at);
    const exitS = rel(e.exitedAt + offset);
    const attempts: Array<{ startS: number; endS: number; how: 'done' | 'stopped' | 'killed' }> = [];
    for (const l of mine) {
      if (l.ev === 'start') attempts.push({ startS: rel(l.startedAt), endS: exitS, how: 'killed' });
      else {
        const a = attempts.find(
          (x) => x.how === 'killed' && x.endS === exitS && Math.abs(x.startS - rel(l.startedAt)) < 1e-6,
        );
        if (a) {
          a.endS = rel(l.at);
          a.how = l.ev === 'end' ? 'done' : 'stopped';
        }
      }
    }
    const failed = e.code !== 0 || !mine.some((l) => l.ev === 'end');
    return {
      name: p.name,
      critical: p.critical,
      submitS: round(rel(p.sp.spawnedAt + offset)),
      exitS: round(exitS),
      code: e.code,
      signal: e.signal,
      attempts: attempts.map((a) => ({ startS: round(a.startS), endS: round(a.endS), how: a.how })),
      failed,
    };
  });
  const critical = installs.find((x) => x.critical);
  const firstStart = critical?.attempts[0]?.startS;
  let criticalBreakdown: ContenderResult['criticalBreakdown'];
  const criticalId = lines.find((l) => l.name === 'critical' && l.ev === 'start')?.reservation;
  if (contender === 'rrm' && critical && firstStart !== undefined && criticalId) {
    const events = await historyOf(cfg.cli, env, criticalId);
    const at = (type: string): number | undefined => events.find((e) => e.type === type)?.at;
    const queued = at('queued');
    const granted = at('granted');
    if (queued !== undefined && granted !== undefined) {
      criticalBreakdown = {
        toSubmitS: round(rel(queued) - critical.submitS),
        queuedS: round((granted - queued) / 1000),
        grantToStartS: round(firstStart - rel(granted)),
      };
    }
  }
  return {
    ...(criticalBreakdown ? { criticalBreakdown } : {}),
    contender,
    makespanS: round(Math.max(...installs.map((x) => x.exitS))),
    firstStartS: round(Math.min(...installs.map((x) => x.attempts[0]?.startS ?? Infinity))),
    failures: installs.filter((x) => x.failed).length,
    oomKills,
    restarts: installs.reduce((a, x) => a + Math.max(0, x.attempts.length - 1), 0),
    ...(cgroupPeakBytes !== undefined ? { cgroupPeakBytes } : {}),
    ...(critical && firstStart !== undefined ? { criticalWaitS: round(firstStart - critical.submitS) } : {}),
    ...(critical && !critical.failed ? { criticalDoneS: round(critical.exitS - critical.submitS) } : {}),
    timedOut,
    load1,
    installs,
  };
}

/** A reservation's events from `rrm history <id> --json`. */
async function historyOf(
  cli: string,
  env: NodeJS.ProcessEnv,
  id: string,
): Promise<Array<{ type: string; at: number }>> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [cli, 'history', id, '--json'], {
      env,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.on('exit', () => {
      try {
        resolve(JSON.parse(out) as Array<{ type: string; at: number }>);
      } catch {
        resolve([]);
      }
    });
  });
}

export const installStorm: Scenario<StormData> = {
  name: 'install-storm',
  title: 'Install storm: native builds on 2 CPUs and 4 GiB',

  async run(ctx) {
    const why =
      MemoryCgroup.unavailable() ?? (which('flock') ? undefined : 'flock(1) is not installed (util-linux)');
    if (why) throw new Skip(`the install storm needs root, a memory cgroup and flock(1): ${why}`);
    if (!existsSync(ctx.cli)) throw new Error(`rrm CLI not found at ${ctx.cli} (build first, or pass --rrm)`);
    // Quick: 4 installs and the critical one at 3 s, so that it still lands while both slots are busy.
    const installs = ctx.quick ? 4 : 12;
    const criticalAtS = ctx.quick ? 3 : 5;
    const cpuSeconds = ctx.quick ? 0.8 : 2.5;
    const memMiB = 1536;
    const itersPerSec = await calibrate();
    const work = Math.round(itersPerSec * cpuSeconds);
    const fixtureArgs = ['--work', String(work), '--mem-mib', String(memMiB)];
    ctx.log(
      `fixture: ${memMiB} MiB, ${fmt(work)} iterations (${cpuSeconds} s of arithmetic at ${fmt(itersPerSec)}/s)`,
    );

    // Solo runs inside the 4 GiB cgroup: what one install costs with nothing else running.
    const soloRuns = ctx.quick ? 1 : 2;
    const solos: Array<{ wallS: number; cpuS: number; gibS: number; maxRssBytes: number }> = [];
    for (let i = 0; i < soloRuns; i++) {
      const cg = await MemoryCgroup.create(CGROUP, BOX.memoryBytes);
      const report = join(ctx.workDir, `solo-${i}.jsonl`);
      const r = await timed(
        cg.wrap([process.execPath, FIXTURE, '--name', 'solo', '--report', report, ...fixtureArgs]),
      );
      await cg.remove();
      const end = readReport(report).find((l) => l.ev === 'end');
      if (r.code !== 0 || !end) throw new Error(`solo run failed: exit ${r.code} ${r.signal ?? ''}`);
      solos.push({
        wallS: (end.at - end.startedAt) / 1000,
        cpuS: (end.cpuMs ?? 0) / 1000,
        gibS: end.gibSeconds ?? 0,
        maxRssBytes: end.maxRssBytes ?? 0,
      });
    }
    const solo = {
      wallS: round(median(solos.map((s) => s.wallS))),
      cpuS: round(median(solos.map((s) => s.cpuS))),
      gibS: round(median(solos.map((s) => s.gibS))),
      maxRssBytes: median(solos.map((s) => s.maxRssBytes)),
      runs: soloRuns,
    };
    ctx.log(
      `solo: ${solo.wallS} s wall, ${solo.cpuS} CPU-s, ${solo.gibS} GiB-s, peak ${fmt(solo.maxRssBytes / GiB)} GiB`,
    );
    // Two side by side: what the best possible schedule (two at a time) gets per install here.
    const pairCg = await MemoryCgroup.create(CGROUP, BOX.memoryBytes);
    const pairReport = join(ctx.workDir, 'pair.jsonl');
    const pairRuns = await Promise.all(
      [0, 1].map((i) =>
        timed(
          pairCg.wrap([
            process.execPath,
            FIXTURE,
            '--name',
            `pair-${i}`,
            '--report',
            pairReport,
            ...fixtureArgs,
          ]),
        ),
      ),
    );
    await pairCg.remove();
    const pairEnds = readReport(pairReport).filter((l) => l.ev === 'end');
    if (pairRuns.some((r) => r.code !== 0) || pairEnds.length !== 2) throw new Error('pair run failed');
    const pair = {
      wallS: round(median(pairEnds.map((l) => (l.at - l.startedAt) / 1000))),
      cpuS: round(median(pairEnds.map((l) => (l.cpuMs ?? 0) / 1000))),
    };
    ctx.log(`pair: ${pair.wallS} s wall, ${pair.cpuS} CPU-s each`);
    const total = installs + 1;
    const lowerBound = {
      cpuS: round((total * solo.cpuS) / BOX.cpus),
      memS: round((total * solo.gibS) / (BOX.memoryBytes / GiB)),
      longestS: solo.wallS,
      boundS: 0,
    };
    lowerBound.boundS = Math.max(lowerBound.cpuS, lowerBound.memS, lowerBound.longestS);

    const contenders: ContenderResult[] = [];
    for (const c of ['rrm', 'flock', 'all-at-once'] as Contender[]) {
      const r = await stormOnce(c, {
        dir: ctx.workDir,
        cli: ctx.cli,
        installs,
        criticalAtMs: criticalAtS * 1000,
        fixtureArgs,
        timeoutMs: (ctx.quick ? 4 : 6) * total * solo.wallS * 1000 + 60_000,
        log: ctx.log,
      });
      contenders.push(r);
      ctx.log(
        `${c}: makespan ${r.makespanS} s (${fmt(r.makespanS / lowerBound.boundS)}× bound), ${r.failures} failed, ${r.oomKills} OOM kills, ${r.restarts} restarts, critical waited ${r.criticalWaitS ?? '–'} s`,
      );
    }
    const rrm = contenders.find((c) => c.contender === 'rrm');
    const aims: Aim[] = rrm
      ? [
          {
            aim: 'storm through rrm: failures',
            target: '0',
            measured: String(rrm.failures),
            met: rrm.failures === 0,
          },
          {
            aim: 'storm through rrm: makespan / lower bound',
            target: '≤ 1.15',
            measured: `${fmt(rrm.makespanS / lowerBound.boundS)} (${fmt(rrm.makespanS)} s / ${fmt(lowerBound.boundS)} s)`,
            met: rrm.makespanS / lowerBound.boundS <= 1.15,
          },
          {
            aim: 'storm through rrm: critical install started within',
            target: '1 s',
            measured: rrm.criticalWaitS !== undefined ? `${fmt(rrm.criticalWaitS)} s` : 'never started',
            met: rrm.criticalWaitS !== undefined && rrm.criticalWaitS <= 1,
          },
        ]
      : [];
    return {
      data: {
        installs,
        criticalAtS,
        fixture: { memMiB, work, itersPerSec: Math.round(itersPerSec) },
        solo,
        pair,
        lowerBound,
        contenders,
        cgroup: CGROUP,
      },
      aims,
      notes: [
        `The box: a memory cgroup (${CGROUP}, limit 4 GiB, no swap) that every contender's processes join before they exec (\`sh -c 'echo $$ > …/cgroup.procs; exec "$@"'\`), rrm's own processes included; the machine's 2 CPUs are shared as they are. rrm runs with enforcement on and RRM_CGROUP_PARENT=${CGROUP}, so each reservation's cgroup (memory cap = request + 25%) nests inside the 4 GiB box.`,
        'The fixture (bench/fixtures/native-build.mjs) does a fixed amount of integer work on one thread while its heap grows to 1.5 GiB during the first 30% of the work (every page written), and holds it until it exits; contention stretches it as it would a compiler. A SIGTERM ends it at once (rrm stops a preemption victim with SIGTERM).',
        'Lower bound = max(total CPU-seconds / 2 CPUs, total resident GiB-seconds / 4 GiB, longest install), from solo runs of the same fixture in the same cgroup (CPU-seconds include the kernel time spent faulting the pages in), over all installs including the critical one. Preempted work that is redone is not in the bound.',
        'Critical wait: from starting `rrm run` / `flock` / the bare command to the install’s process starting (Node’s start-up, ~0.05–0.1 s, is inside the install in all three).',
        'One storm per contender, one after the other (rrm, flock, all at once); the 1-minute load average before each is in the table, because other work on a shared machine stretches every install. “÷ flock” compares makespans of the same run.',
      ],
    };
  },

  render(r, svg) {
    const d = r.data;
    const lb = d.lowerBound.boundS;
    const colors = {
      waiting: '#e3e3e3',
      ran: '#1f77b4',
      critical: '#9467bd',
      'stopped (preempted)': '#ff7f0e',
      failed: '#d62728',
    };
    const panels = d.contenders.map((c) => ({
      title: `${c.contender}: makespan ${fmt(c.makespanS)} s (${fmt(c.makespanS / lb)}× bound), ${c.failures} failed, ${c.oomKills} OOM kills`,
      markers: [
        { at: d.criticalAtS, label: 'critical arrives' },
        { at: lb, label: 'lower bound' },
      ],
      lanes: c.installs.map((x): Lane => ({
        label: x.name,
        spans: [
          { start: x.submitS, end: x.attempts[0]?.startS ?? x.exitS, kind: 'waiting' },
          ...x.attempts.map((a): Span => ({
            start: a.startS,
            end: a.endS,
            kind:
              a.how === 'stopped'
                ? 'stopped (preempted)'
                : a.how === 'killed'
                  ? 'failed'
                  : x.critical
                    ? 'critical'
                    : 'ran',
          })),
        ],
      })),
    }));
    const plot = svg(
      'install-storm',
      timeline({
        title: `Install storm: ${d.installs} installs + 1 critical on 2 CPUs / 4 GiB`,
        panels,
        colors,
      }),
    );
    const gib = (b?: number): string => (b === undefined ? '–' : fmt(b / GiB));
    return [
      `${d.installs} installs start at t = 0 and a \`critical\` one at t = ${d.criticalAtS} s. One install alone: ${fmt(d.solo.wallS)} s wall, ${fmt(d.solo.cpuS)} CPU-s, ${fmt(d.solo.gibS)} GiB-s, peak RSS ${gib(d.solo.maxRssBytes)} GiB (median of ${d.solo.runs}). Lower bound for all ${d.installs + 1}: max(${fmt(d.lowerBound.cpuS)} s CPU, ${fmt(d.lowerBound.memS)} s memory, ${fmt(d.lowerBound.longestS)} s longest) = **${fmt(lb)} s**. Two installs side by side in the box (nothing else running) take ${fmt(d.pair?.wallS)} s wall and ${fmt(d.pair?.cpuS)} CPU-s each: running two at a time costs more per install than the solo numbers in the bound (both fault 1.5 GiB into one memory cgroup at once).`,
      '',
      mdTable(
        [
          'contender',
          'failed',
          'OOM kills',
          'restarts',
          'first install started s',
          'makespan s',
          '÷ lower bound',
          '÷ flock',
          'critical waited s',
          'critical done after s',
          'box peak GiB',
          'load before',
        ],
        d.contenders.map((c) => [
          c.contender + (c.timedOut ? ' (timed out)' : ''),
          `${c.failures} / ${c.installs.length}`,
          String(c.oomKills),
          String(c.restarts),
          fmt(c.firstStartS),
          fmt(c.makespanS),
          `${fmt(c.makespanS / lb)}×`,
          `${fmt(c.makespanS / (d.contenders.find((x) => x.contender === 'flock')?.makespanS ?? NaN))}×`,
          c.criticalWaitS !== undefined ? fmt(c.criticalWaitS) : 'never',
          c.criticalDoneS !== undefined ? fmt(c.criticalDoneS) : 'failed',
          gib(c.cgroupPeakBytes),
          fmt(c.load1),
        ]),
      ),
      '',
      ...d.contenders.map((c) => `- **${c.contender}**: ${DESCRIBE[c.contender]}.`),
      ...d.contenders
        .filter((c) => c.criticalBreakdown)
        .map(
          (c) =>
            `\nWhere the critical install's ${fmt(c.criticalWaitS)} s under rrm went (from the ledger's events): ${fmt(c.criticalBreakdown!.toSubmitS)} s from starting \`rrm run\` to its request being queued (Node start-up, profile, enforcer probe, ledger open and sweep, on a box whose 2 CPUs are busy), ${fmt(c.criticalBreakdown!.queuedS)} s queued while the preempted victim was stopped and released, ${fmt(c.criticalBreakdown!.grantToStartS)} s from the grant to the install's process starting (cgroup set-up, spawn).`,
        ),
      '',
      `![install storm timeline](${plot})`,
    ].join('\n');
  },
};
