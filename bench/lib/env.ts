/**
 * Where things are and what machine this is. The bench runs from any build (dist/bench/run.js,
 * or a private outDir): the compiled workers and the CLI are found next to this module, the
 * non-TypeScript files (fixtures, baselines) and the results under the checkout's bench/.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statfsSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';

/** The compiled bench/ directory (this file is bench/lib/env.js in it). */
export const BENCH_DIST = resolve(import.meta.dirname, '..');

/** The checkout: the first ancestor holding bench/fixtures/native-build.mjs, else $RRM_BENCH_ROOT or the cwd. */
export const ROOT = findRoot();

function findRoot(): string {
  const has = (d: string): boolean => existsSync(join(d, 'bench', 'fixtures', 'native-build.mjs'));
  for (let d = BENCH_DIST; ; d = dirname(d)) {
    if (has(d)) return d;
    if (dirname(d) === d) break;
  }
  for (const d of [process.env.RRM_BENCH_ROOT, process.cwd()]) if (d && has(d)) return resolve(d);
  throw new Error(
    'cannot find the rrm checkout (bench/fixtures/native-build.mjs); run from it or set RRM_BENCH_ROOT',
  );
}

export const BENCH_SRC = join(ROOT, 'bench');
export const FIXTURE = join(BENCH_SRC, 'fixtures', 'native-build.mjs');
export const BASELINES = join(BENCH_SRC, 'baselines');

/** A compiled worker script next to this module: workers/<name>.js. */
export function workerPath(name: string): string {
  return join(BENCH_DIST, 'workers', `${name}.js`);
}

/** The rrm CLI of the same build as the bench (the bundle …/bench/../bin/rrm.js), unless --rrm says otherwise. */
export function defaultCli(): string {
  return resolve(BENCH_DIST, '..', 'bin', 'rrm.js');
}

export interface Machine {
  readonly cpus: number;
  readonly cpuModel: string;
  readonly memoryGiB: number;
  readonly kernel: string;
  readonly node: string;
  readonly sqlite?: string;
  readonly commit?: string;
  /** 1, 5 and 15 minute load averages when the scenario started (others share this machine). */
  readonly loadAvg: readonly number[];
}

export function machine(): Machine {
  let commit: string | undefined;
  try {
    commit = execFileSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    commit = undefined;
  }
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    kernel: release(),
    node: process.version,
    commit,
    loadAvg: loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

/** The filesystem type of the mount holding `path` (longest mount-point prefix in /proc/mounts). */
export function fsTypeOf(path: string): string {
  try {
    let best = '';
    let type = 'unknown';
    for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
      const [, mnt, fstype] = line.split(' ');
      if (!mnt || !fstype) continue;
      const m = mnt.replace(/\\040/g, ' ');
      if ((path === m || path.startsWith(m.endsWith('/') ? m : `${m}/`)) && m.length >= best.length) {
        best = m;
        type = fstype;
      }
    }
    statfsSync(path);
    return type;
  } catch {
    return 'unknown';
  }
}

/** Looks up an executable on PATH (or returns undefined). */
export function which(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    const p = join(dir || '.', name);
    if (existsSync(p)) return p;
  }
  return undefined;
}
