/**
 * Profile evaluation: predicted versus measured peak memory, CPU time and disk for real installs.
 *
 * Each corpus package is installed several times through the real `rrm run` CLI (a fresh temporary
 * prefix for npm; install then purge for apt), with RRM_STATE_DIR in a temporary directory. Before
 * the first run it is profiled *cold* (registry / apt metadata, no history); each run's cgroup
 * measurement is recorded in history.db; after three runs it is profiled *warm* (history) and run
 * once more. The table compares cold with run 1 and warm with the last run.
 *
 *   npm run eval:profiles                      # the whole corpus (≈ 11 min on 2 CPUs)
 *   node dist/eval/profiles.js --quick         # 4 npm + 2 apt packages, 4 runs each
 *   node dist/eval/profiles.js --only npm --runs 4 --packages is-number@7.0.0,express@4.21.1
 *
 * Writes eval/results/profiles.json and eval/results/profiles.md (or --out DIR).
 * Runs are measured with a generous --memory-limit and --cpu-limit so the cap does not shape the
 * peak it measures. Disk is what landed: node_modules for npm, the files of the new dpkg packages
 * for apt. Peak memory is the cgroup's (on cgroup v1 it includes the page cache of written files).
 */
import { spawn, spawnSync } from 'node:child_process';
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { compileConfig } from '../src/config.js';
import type { PackageRef } from '../src/model/reservation.js';
import { HistoryStore } from '../src/profiles/history.js';
import { resolveContext, resolveInstallProfile } from '../src/profiles/resolve.js';
import type { ResourceProfile } from '../src/profiles/profile.js';

const HERE = import.meta.dirname;
const RRM = resolve(HERE, '../bin/rrm.js');
const MiB = 2 ** 20;

const NPM_CORPUS: readonly { spec: string; kind: 'plain' | 'scripts' | 'native' }[] = [
  { spec: 'is-number@7.0.0', kind: 'plain' },
  { spec: 'lodash@4.17.21', kind: 'plain' },
  { spec: 'chalk@4.1.2', kind: 'plain' },
  { spec: 'uuid@9.0.1', kind: 'plain' },
  { spec: 'commander@12.1.0', kind: 'plain' },
  { spec: 'axios@1.7.7', kind: 'plain' },
  { spec: 'express@4.21.1', kind: 'plain' },
  { spec: 'react-dom@18.3.1', kind: 'plain' },
  { spec: 'typescript@5.6.3', kind: 'plain' },
  { spec: 'webpack@5.95.0', kind: 'plain' },
  { spec: 'eslint@9.13.0', kind: 'plain' },
  { spec: 'nodemon@3.1.7', kind: 'plain' },
  { spec: 'esbuild@0.24.0', kind: 'scripts' },
  { spec: 'core-js@3.38.1', kind: 'scripts' },
  { spec: 'cpu-features@0.0.10', kind: 'native' },
  { spec: 'bcrypt@5.1.1', kind: 'native' },
  { spec: 'better-sqlite3@12.4.1', kind: 'native' },
];
const APT_CORPUS: readonly string[] = ['sl', 'figlet', 'tree', 'pv', 'cowsay'];
const QUICK_NPM = ['is-number@7.0.0', 'express@4.21.1', 'esbuild@0.24.0', 'cpu-features@0.0.10'];
const QUICK_APT = ['sl', 'figlet'];

interface Measurement {
  readonly exitCode: number;
  readonly wallMs: number;
  readonly peakMemoryBytes?: number;
  readonly cpuUsageUsec?: number;
  readonly oomKills?: number;
  readonly diskBytes: number;
}

interface Prediction {
  readonly memory?: number;
  readonly memorySource?: string;
  readonly cpuMs?: number;
  readonly cpuMsSource?: string;
  readonly disk?: number;
  readonly diskSource?: string;
  readonly wallMs?: number;
}

interface Row {
  readonly manager: 'npm' | 'apt';
  readonly spec: string;
  readonly kind: string;
  readonly packages: readonly PackageRef[];
  readonly cold: Prediction;
  readonly warm: Prediction;
  readonly runs: readonly Measurement[];
}

function predictionOf(p: ResourceProfile): Prediction {
  return {
    memory: p.requests.memory,
    memorySource: p.sources.memory?.provenance,
    cpuMs: p.estimates?.cpuMs,
    cpuMsSource: p.estimateSources?.cpuMs?.provenance,
    disk: p.requests.disk,
    diskSource: p.sources.disk?.provenance,
    wallMs: p.estimates?.wallMs,
  };
}

function du(path: string): number {
  let total = 0;
  const stack = [path];
  while (stack.length) {
    const d = stack.pop() as string;
    let entries;
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries) {
      const p = join(d, e.name);
      if (e.isDirectory()) stack.push(p);
      else if (e.isFile()) total += statSync(p).size;
    }
  }
  return total;
}

function rrmRun(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; usage?: Record<string, number>; stderr: string }> {
  return new Promise((res) => {
    const child = spawn(
      process.execPath,
      [RRM, 'run', '--json', '--memory-limit', '8Gi', '--cpu-limit', '2', '--', ...argv],
      { env, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => {
      let usage: Record<string, number> | undefined;
      for (const line of stderr.split('\n')) {
        try {
          const ev = JSON.parse(line) as { event?: string; usage?: Record<string, number> };
          if (ev.event === 'released') usage = ev.usage;
        } catch {
          // a line of the command's own
        }
      }
      res({ code, ...(usage ? { usage } : {}), stderr });
    });
  });
}

function installedDebs(): Set<string> {
  const r = spawnSync('dpkg-query', ['-W', '-f', '${Package} ${Status}\n'], { encoding: 'utf8' });
  return new Set(
    r.stdout
      .split('\n')
      .filter((l) => l.endsWith('install ok installed'))
      .map((l) => l.split(' ')[0] as string),
  );
}

function debFilesBytes(pkgs: readonly string[]): number {
  let total = 0;
  for (const pkg of pkgs) {
    const files = spawnSync('dpkg', ['-L', pkg], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
    for (const f of files) {
      try {
        const st = lstatSync(f);
        if (st.isFile()) total += st.size;
      } catch {
        // diverted or removed by a maintainer script
      }
    }
  }
  return total;
}

const APT_ENV = { DEBIAN_FRONTEND: 'noninteractive' };

async function measure(
  manager: 'npm' | 'apt',
  spec: string,
  env: NodeJS.ProcessEnv,
): Promise<{ m: Measurement; argv: string[] }> {
  if (manager === 'npm') {
    const prefix = mkdtempSync(join(tmpdir(), 'rrm-eval-npm-'));
    const argv = ['npm', 'install', '--no-save', '--no-audit', '--no-fund', '--prefix', prefix, spec];
    const r = await rrmRun(argv, env);
    const diskBytes = du(join(prefix, 'node_modules'));
    rmSync(prefix, { recursive: true, force: true });
    return { m: toMeasurement(r, diskBytes), argv };
  }
  const before = installedDebs();
  const argv = ['apt-get', 'install', '-y', '-q', spec];
  const r = await rrmRun(argv, { ...env, ...APT_ENV });
  const added = [...installedDebs()].filter((p) => !before.has(p));
  const diskBytes = debFilesBytes(added);
  if (added.length)
    spawnSync('apt-get', ['purge', '-y', '-q', ...added], {
      env: { ...process.env, ...APT_ENV },
      stdio: 'ignore',
    });
  return { m: toMeasurement(r, diskBytes), argv };
}

function toMeasurement(
  r: { code: number | null; usage?: Record<string, number>; stderr: string },
  diskBytes: number,
): Measurement {
  const u = r.usage ?? {};
  if (r.code !== 0)
    process.stderr.write(`  run failed (exit ${r.code}): ${r.stderr.split('\n').slice(-5).join(' | ')}\n`);
  return {
    exitCode: r.code ?? -1,
    wallMs: u.wallMs ?? 0,
    ...(u.peakMemoryBytes !== undefined ? { peakMemoryBytes: u.peakMemoryBytes } : {}),
    ...(u.cpuUsageUsec !== undefined ? { cpuUsageUsec: u.cpuUsageUsec } : {}),
    ...(u.oomKills !== undefined ? { oomKills: u.oomKills } : {}),
    diskBytes,
  };
}

async function evaluate(
  manager: 'npm' | 'apt',
  spec: string,
  kind: string,
  runs: number,
  state: string,
  env: NodeJS.ProcessEnv,
): Promise<Row> {
  const config = compileConfig(env, { stateDir: state });
  const argvFor = (prefix: string): string[] =>
    manager === 'npm'
      ? ['npm', 'install', '--no-save', '--prefix', prefix, spec]
      : ['apt-get', 'install', '-y', spec];
  const probeDir = mkdtempSync(join(tmpdir(), 'rrm-eval-probe-'));
  const coldCtx = resolveContext(config, env, { history: 'none', cwd: probeDir });
  const cold = await resolveInstallProfile(argvFor(probeDir), { requests: {} }, coldCtx);
  const measured: Measurement[] = [];
  let warm: Prediction = {};
  for (let i = 1; i <= runs; i++) {
    if (i === runs && runs > 3) {
      const history = HistoryStore.open(state);
      const ctx = resolveContext(config, env, { history, cwd: probeDir });
      warm = predictionOf((await resolveInstallProfile(argvFor(probeDir), { requests: {} }, ctx)).profile);
      history.close();
    }
    const samplesBefore = countSamples(state);
    const { m } = await measure(manager, spec, env);
    measured.push(m);
    process.stderr.write(
      `  ${spec} run ${i}: exit ${m.exitCode}, ${(m.wallMs / 1000).toFixed(1)}s, peak ${fmtBytes(m.peakMemoryBytes)}, cpu ${((m.cpuUsageUsec ?? 0) / 1e6).toFixed(1)}s, disk ${fmtBytes(m.diskBytes)}\n`,
    );
    // `rrm run` records every finished install in history.db itself: the warm profile learns from that.
    if (m.exitCode === 0 && countSamples(state) !== samplesBefore + 1)
      throw new Error(`${spec} run ${i}: rrm run recorded no history sample`);
  }
  rmSync(probeDir, { recursive: true, force: true });
  return {
    manager,
    spec,
    kind,
    packages: cold.packages,
    cold: predictionOf(cold.profile),
    warm,
    runs: measured,
  };
}

function countSamples(state: string): number {
  const history = HistoryStore.open(state);
  try {
    return history.count();
  } finally {
    history.close();
  }
}

function fmtBytes(n: number | undefined): string {
  if (n === undefined) return '-';
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)}Gi`;
  if (n >= MiB) return `${(n / MiB).toFixed(1)}Mi`;
  return `${(n / 1024).toFixed(0)}Ki`;
}

function fmtS(ms: number | undefined): string {
  return ms === undefined ? '-' : `${(ms / 1000).toFixed(1)}s`;
}

/** |log2(predicted / measured)|: 0 is exact, 1 is off by a factor of 2. */
function logErr(pred: number | undefined, meas: number | undefined): number | undefined {
  if (!pred || !meas) return undefined;
  return Math.abs(Math.log2(pred / meas));
}

function median(xs: number[]): number | undefined {
  if (!xs.length) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

function summary(rows: readonly Row[]): Record<string, Record<string, number | undefined>> {
  const out: Record<string, Record<string, number | undefined>> = {};
  const dims: [string, (p: Prediction) => number | undefined, (m: Measurement) => number | undefined][] = [
    ['memory', (p) => p.memory, (m) => m.peakMemoryBytes],
    ['cpuTime', (p) => p.cpuMs, (m) => (m.cpuUsageUsec !== undefined ? m.cpuUsageUsec / 1000 : undefined)],
    ['disk', (p) => p.disk, (m) => m.diskBytes],
  ];
  for (const [name, pred, meas] of dims) {
    for (const which of ['cold', 'warm'] as const) {
      const pairs = rows
        .map((r) => {
          const m = which === 'cold' ? r.runs[0] : r.runs[r.runs.length - 1];
          return m && m.exitCode === 0 ? [pred(r[which]), meas(m)] : [undefined, undefined];
        })
        .filter((x): x is [number, number] => x[0] !== undefined && x[1] !== undefined && x[1] > 0);
      const errs = pairs.map(([p, m]) => logErr(p, m) as number);
      out[`${name}.${which}`] = {
        n: pairs.length,
        medianLog2Error: median(errs),
        withinFactor2: pairs.length
          ? pairs.filter(([p, m]) => p >= m / 2 && p <= m * 2).length / pairs.length
          : undefined,
        underPredicted: pairs.length ? pairs.filter(([p, m]) => p < m).length / pairs.length : undefined,
        // The warm aims: within ±20% of the measurement, and never under it by more than 10%.
        within20pct: pairs.length
          ? pairs.filter(([p, m]) => p >= m * 0.8 && p <= m * 1.2).length / pairs.length
          : undefined,
        underBy10pct: pairs.length ? pairs.filter(([p, m]) => p < m * 0.9).length : undefined,
      };
    }
  }
  return out;
}

function pct(x: number | undefined): string {
  return x !== undefined ? `${Math.round(x * 100)}%` : '-';
}

function markdown(
  rows: readonly Row[],
  sum: ReturnType<typeof summary>,
  meta: Record<string, unknown>,
): string {
  const lines = [
    '# Profile evaluation: predicted versus measured',
    '',
    `${String(meta.date)}, ${String(meta.machine)}; ${String(meta.runs)} runs per package through \`rrm run\`. Cold = metadata only, compared with run 1; warm = after 3 recorded runs (history), compared with the last run. Memory predictions are *requests* (history: p90 + 10%), so a warm prediction above the measurement is by design.`,
    '',
    '| package | kind | mem cold | mem warm | mem run1 / last | cpu cold | cpu warm | cpu run1 / last | disk cold | disk warm | disk measured | wall run1 |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of rows) {
    const first = r.runs[0];
    const last = r.runs[r.runs.length - 1];
    const bad = r.runs.some((m) => m.exitCode !== 0) ? ' (failed run)' : '';
    lines.push(
      `| ${r.manager}:${r.spec}${bad} | ${r.kind} | ${fmtBytes(r.cold.memory)} | ${fmtBytes(r.warm.memory)} | ${fmtBytes(first?.peakMemoryBytes)} / ${fmtBytes(last?.peakMemoryBytes)} | ${fmtS(r.cold.cpuMs)} | ${fmtS(r.warm.cpuMs)} | ${fmtS(first?.cpuUsageUsec !== undefined ? first.cpuUsageUsec / 1000 : undefined)} / ${fmtS(last?.cpuUsageUsec !== undefined ? last.cpuUsageUsec / 1000 : undefined)} | ${fmtBytes(r.cold.disk)} | ${fmtBytes(r.warm.disk)} | ${fmtBytes(first?.diskBytes)} | ${fmtS(first?.wallMs)} |`,
    );
  }
  lines.push(
    '',
    '| dimension | n | median \\|log2 error\\| | within 2× | within ±20% | under-predicted | under by > 10% (count) |',
    '| --- | --- | --- | --- | --- | --- | --- |',
  );
  for (const [k, v] of Object.entries(sum))
    lines.push(
      `| ${k} | ${v.n} | ${v.medianLog2Error?.toFixed(2) ?? '-'} | ${pct(v.withinFactor2)} | ${pct(v.within20pct)} | ${pct(v.underPredicted)} | ${v.underBy10pct ?? '-'} |`,
    );
  return `${lines.join('\n')}\n`;
}

/** The table as the repository's prettier writes it (so `prettier --check .` passes); as is without prettier. */
async function prettierMarkdown(md: string, path: string): Promise<string> {
  try {
    const prettier = await import('prettier');
    const options = (await prettier.resolveConfig(path)) ?? {};
    return await prettier.format(md, { ...options, filepath: path });
  } catch {
    return md;
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean' },
      only: { type: 'string' },
      runs: { type: 'string' },
      packages: { type: 'string' },
      out: { type: 'string' },
    },
  });
  const runs = Number(values.runs ?? 4);
  if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs: a positive whole number');
  const only = values.only;
  const picked = values.packages?.split(',').filter(Boolean);
  let npm = NPM_CORPUS.filter((p) => (values.quick ? QUICK_NPM.includes(p.spec) : true));
  let apt = values.quick ? QUICK_APT : APT_CORPUS;
  if (picked) {
    npm = picked
      .filter((s) => !APT_CORPUS.includes(s))
      .map((s) => NPM_CORPUS.find((p) => p.spec === s) ?? { spec: s, kind: 'plain' as const });
    apt = picked.filter((s) => APT_CORPUS.includes(s));
  }
  if (only === 'npm') apt = [];
  if (only === 'apt') npm = [];
  const isRoot = process.getuid?.() === 0;
  if (apt.length && !isRoot) {
    process.stderr.write('apt packages need root: skipped\n');
    apt = [];
  }
  const already = installedDebs();
  const aptSkipped = apt.filter((p) => already.has(p));
  apt = apt.filter((p) => !already.has(p));
  const state = mkdtempSync(join(tmpdir(), 'rrm-eval-state-'));
  // Its own cgroup parent: another rrm on this machine reclaiming leftover cgroups under the default
  // parent must not mistake the eval's installs for leftovers.
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    RRM_STATE_DIR: state,
    RRM_CGROUP_PARENT: `rrm-eval-${process.pid}`,
    npm_config_update_notifier: 'false',
  };
  const started = Date.now();
  const rows: Row[] = [];
  for (const p of npm) {
    process.stderr.write(`npm:${p.spec}\n`);
    rows.push(await evaluate('npm', p.spec, p.kind, runs, state, env));
  }
  for (const p of apt) {
    process.stderr.write(`apt:${p}\n`);
    rows.push(await evaluate('apt', p, 'apt', runs, state, env));
  }
  const sum = summary(rows);
  const meta = {
    date: new Date().toISOString(),
    machine: `${(await import('node:os')).cpus().length} CPUs, ${Math.round((await import('node:os')).totalmem() / 2 ** 30)} GiB, node ${process.version}`,
    runs,
    durationS: Math.round((Date.now() - started) / 1000),
    aptSkippedAlreadyInstalled: aptSkipped,
  };
  const outDir = values.out ?? resolve(HERE, '../../eval/results');
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'profiles.json'), `${JSON.stringify({ meta, summary: sum, rows }, null, 2)}\n`);
  const md = await prettierMarkdown(markdown(rows, sum, meta), join(outDir, 'profiles.md'));
  writeFileSync(join(outDir, 'profiles.md'), md);
  process.stdout.write(md);
  process.stdout.write(`\n${meta.durationS}s; results in ${outDir}\n`);
  rmSync(state, { recursive: true, force: true });
  removeCgroupParent(String(env.RRM_CGROUP_PARENT));
}

/** Removes the eval's (empty) parent cgroup under every mounted hierarchy. */
function removeCgroupParent(name: string): void {
  for (const line of readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
    const [, dir, type] = line.split(' ');
    if (!dir || (type !== 'cgroup' && type !== 'cgroup2')) continue;
    try {
      rmdirSync(join(dir, name));
    } catch {
      // not created there, or not empty
    }
  }
}

await main();
