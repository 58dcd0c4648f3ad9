/**
 * History: measured runs per manager, package set, version and instance class, in its own SQLite
 * file (`<stateDir>/history.db`, WAL, migrations by user_version). `record` after each run;
 * `recommend` looks for evidence from the most specific to the least:
 *   1. the same packages at the same versions on the same instance class,
 *   2. the same packages at the same major versions (any class),
 *   3. each package on its own (single-package runs), combined: max of memory and CPU, sum of disk and time.
 * With fewer than `minSamples` usable runs at every level there is no recommendation.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import type { PackageRef } from '../model/reservation.js';
import type { ResourceVector } from '../model/vector.js';
import type { ProfilePart } from './profile.js';
import {
  DEFAULT_RECOMMEND,
  recommend,
  type MeasuredSample,
  type Recommendation,
  type RecommendOptions,
} from './recommend.js';

export interface Measured {
  readonly peakMemoryBytes?: number | null;
  readonly cpuUsageUsec?: number | null;
  readonly wallMs: number;
  readonly readBytes?: number | null;
  readonly writeBytes?: number | null;
  readonly oomKills?: number | null;
  readonly exitCode: number;
  /** Disk space the install added, when the caller measured it. */
  readonly diskBytes?: number | null;
}

export interface HistorySample {
  /** The packages the run installed, versions as resolved (resolveInstallProfile's `packages`). */
  readonly packages: readonly PackageRef[];
  readonly requests: ResourceVector;
  readonly limits?: ResourceVector;
  readonly measured: Measured;
  /** Defaults to the local machine's class. */
  readonly instanceClass?: string;
  /** When the run ended; defaults to now. */
  readonly at?: number;
  readonly reservationId?: string;
}

/** `<cpus>c-<memory GiB>Gi`: machines of one class measure alike. */
export function localInstanceClass(): string {
  return instanceClassOf(cpus().length, totalmem());
}

export function instanceClassOf(cpuCount: number, memoryBytes: number): string {
  return `${cpuCount}c-${Math.round(memoryBytes / 2 ** 30)}Gi`;
}

function major(version: string | undefined): string {
  if (!version) return '*';
  const m = /^(?:\d+:)?(\d+)/.exec(version);
  return m ? (m[1] as string) : version;
}

export function setKey(packages: readonly PackageRef[], versions: 'exact' | 'major' | 'any'): string {
  return packages
    .map((p) =>
      versions === 'any'
        ? p.name
        : `${p.name}@${versions === 'exact' ? (p.version ?? '*') : major(p.version)}`,
    )
    .sort()
    .join(' ');
}

function managerOf(packages: readonly PackageRef[]): string {
  return packages[0]?.manager ?? 'unknown';
}

const MIGRATIONS: readonly string[] = [
  `CREATE TABLE samples (
     id INTEGER PRIMARY KEY,
     at INTEGER NOT NULL,
     manager TEXT NOT NULL,
     exact_key TEXT NOT NULL,
     major_key TEXT NOT NULL,
     names_key TEXT NOT NULL,
     package_count INTEGER NOT NULL,
     instance_class TEXT NOT NULL,
     packages TEXT NOT NULL,
     requests TEXT NOT NULL,
     limits TEXT,
     peak_memory_bytes INTEGER,
     cpu_usage_usec INTEGER,
     wall_ms INTEGER NOT NULL,
     read_bytes INTEGER,
     write_bytes INTEGER,
     disk_bytes INTEGER,
     oom_kills INTEGER,
     exit_code INTEGER NOT NULL,
     reservation_id TEXT
   );
   CREATE INDEX samples_exact ON samples (manager, exact_key, instance_class, at);
   CREATE INDEX samples_major ON samples (manager, major_key, at);
   CREATE INDEX samples_names ON samples (manager, names_key, at);`,
];

interface Row {
  at: number;
  peak_memory_bytes: number | null;
  cpu_usage_usec: number | null;
  wall_ms: number;
  disk_bytes: number | null;
  oom_kills: number | null;
  exit_code: number;
  limits: string | null;
}

function toSample(r: Row): MeasuredSample {
  const limits = r.limits ? (JSON.parse(r.limits) as Record<string, number>) : {};
  return {
    at: r.at,
    peakMemoryBytes: r.peak_memory_bytes,
    cpuUsageUsec: r.cpu_usage_usec,
    wallMs: r.wall_ms,
    diskBytes: r.disk_bytes,
    oomKills: r.oom_kills,
    exitCode: r.exit_code,
    memoryLimit: limits.memory ?? null,
  };
}

export type HistoryBasis = 'exact' | 'major' | 'any-version' | 'per-package';

export interface HistoryRecommendation extends Recommendation {
  readonly basis: HistoryBasis;
  readonly instanceClass: string;
}

export interface HistoryOptions {
  readonly recommend?: Partial<RecommendOptions>;
  /** Samples kept per package set (oldest dropped). */
  readonly keepPerSet?: number;
}

export class HistoryStore {
  private readonly db: Database.Database;
  private readonly options: RecommendOptions;
  private readonly keepPerSet: number;

  constructor(path: string, opts: HistoryOptions = {}) {
    mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.pragma('synchronous = NORMAL');
    this.migrate();
    this.options = { ...DEFAULT_RECOMMEND, ...(opts.recommend ?? {}) };
    this.keepPerSet = opts.keepPerSet ?? 200;
  }

  static open(stateDir: string, opts?: HistoryOptions): HistoryStore {
    return new HistoryStore(join(stateDir, 'history.db'), opts);
  }

  /** History is best effort: a state directory another user owns just means no learned profile. */
  static tryOpen(stateDir: string): HistoryStore | undefined {
    try {
      return HistoryStore.open(stateDir);
    } catch {
      return undefined;
    }
  }

  /** Records a run that ended by itself; learning never fails the install, so errors are swallowed. */
  learn(
    packages: readonly PackageRef[],
    run: FinishedRun,
    grant: { id: string; granted: ResourceVector; limits: ResourceVector },
  ): void {
    try {
      this.record(sampleFromRun(packages, run, grant.granted, grant.limits, grant.id));
    } catch {
      // a full disk or a locked file costs one sample, not the install
    }
  }

  private migrate(): void {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    for (let v = version; v < MIGRATIONS.length; v++) {
      this.db
        .transaction(() => {
          this.db.exec(MIGRATIONS[v] as string);
          this.db.pragma(`user_version = ${v + 1}`);
        })
        .immediate();
    }
  }

  /** Stores one measured run. Runs without packages are not stored (nothing to key them by). */
  record(sample: HistorySample): number | undefined {
    if (sample.packages.length === 0) return undefined;
    const m = sample.measured;
    const exact = setKey(sample.packages, 'exact');
    const manager = managerOf(sample.packages);
    const at = sample.at ?? Date.now();
    const num = (x: number | null | undefined): number | null =>
      x == null || !Number.isFinite(x) ? null : Math.round(x);
    return this.db
      .transaction(() => {
        const info = this.db
          .prepare(
            `INSERT INTO samples (at, manager, exact_key, major_key, names_key, package_count, instance_class, packages,
             requests, limits, peak_memory_bytes, cpu_usage_usec, wall_ms, read_bytes, write_bytes, disk_bytes,
             oom_kills, exit_code, reservation_id)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          )
          .run(
            at,
            manager,
            exact,
            setKey(sample.packages, 'major'),
            setKey(sample.packages, 'any'),
            sample.packages.length,
            sample.instanceClass ?? localInstanceClass(),
            JSON.stringify(sample.packages),
            JSON.stringify(sample.requests),
            sample.limits ? JSON.stringify(sample.limits) : null,
            num(m.peakMemoryBytes),
            num(m.cpuUsageUsec),
            Math.max(0, Math.round(m.wallMs)),
            num(m.readBytes),
            num(m.writeBytes),
            num(m.diskBytes),
            num(m.oomKills),
            m.exitCode,
            sample.reservationId ?? null,
          );
        this.db
          .prepare(
            `DELETE FROM samples WHERE manager = ? AND exact_key = ? AND id NOT IN
             (SELECT id FROM samples WHERE manager = ? AND exact_key = ? ORDER BY at DESC LIMIT ?)`,
          )
          .run(manager, exact, manager, exact, this.keepPerSet);
        return Number(info.lastInsertRowid);
      })
      .immediate();
  }

  count(): number {
    return (this.db.prepare('SELECT count(*) AS n FROM samples').get() as { n: number }).n;
  }

  samples(
    packages: readonly PackageRef[],
    basis: 'exact' | 'major' | 'any',
    instanceClass?: string,
  ): MeasuredSample[] {
    const manager = managerOf(packages);
    if (basis === 'any')
      return (
        this.db
          .prepare('SELECT * FROM samples WHERE manager = ? AND names_key = ? ORDER BY at')
          .all(manager, setKey(packages, 'any')) as Row[]
      ).map(toSample);
    const rows =
      basis === 'exact'
        ? (this.db
            .prepare(
              `SELECT * FROM samples WHERE manager = ? AND exact_key = ?${instanceClass ? ' AND instance_class = ?' : ''} ORDER BY at`,
            )
            .all(manager, setKey(packages, 'exact'), ...(instanceClass ? [instanceClass] : [])) as Row[])
        : (this.db
            .prepare('SELECT * FROM samples WHERE manager = ? AND major_key = ? ORDER BY at')
            .all(manager, setKey(packages, 'major')) as Row[]);
    return rows.map(toSample);
  }

  /** The recommendation for an install of these packages on this instance class, or undefined. */
  recommend(
    packages: readonly PackageRef[],
    instanceClass: string,
    now: number,
  ): HistoryRecommendation | undefined {
    if (packages.length === 0) return undefined;
    const o = this.options;
    const exactVersions = packages.every((p) => p.version !== undefined);
    if (exactVersions) {
      const r = recommend(this.samples(packages, 'exact', instanceClass), now, o);
      if (r) return { ...r, basis: 'exact', instanceClass };
    }
    if (exactVersions) {
      const r = recommend(this.samples(packages, 'major'), now, o);
      if (r) return { ...r, basis: 'major', instanceClass: 'any', confidence: r.confidence * 0.85 };
    } else {
      // Versions unknown (the registry did not answer): any version measured, less sure.
      const r = recommend(this.samples(packages, 'any'), now, o);
      if (r) return { ...r, basis: 'any-version', instanceClass: 'any', confidence: r.confidence * 0.6 };
    }
    if (packages.length < 2) return undefined;
    const each = packages.map((p) => recommend(this.samples([p], 'major'), now, o));
    if (each.some((x) => x === undefined)) return undefined;
    const rs = each as Recommendation[];
    const maxOf = (get: (r: Recommendation) => number | undefined): number | undefined => {
      const vs = rs.map(get).filter((v): v is number => v !== undefined);
      return vs.length === rs.length ? Math.max(...vs) : undefined;
    };
    const sumOf = (get: (r: Recommendation) => number | undefined): number | undefined => {
      const vs = rs.map(get).filter((v): v is number => v !== undefined);
      return vs.length === rs.length ? vs.reduce((a, b) => a + b, 0) : undefined;
    };
    const pick = (o2: Record<string, number | undefined>): Record<string, number> =>
      Object.fromEntries(Object.entries(o2).filter((e): e is [string, number] => e[1] !== undefined));
    return {
      basis: 'per-package',
      instanceClass: 'any',
      samples: rs.reduce((a, r2) => a + r2.samples, 0),
      weight: rs.reduce((a, r2) => a + r2.weight, 0),
      oomSamples: rs.reduce((a, r2) => a + r2.oomSamples, 0),
      requests: pick({
        memory: maxOf((x) => x.requests.memory),
        cpu: maxOf((x) => x.requests.cpu),
        disk: sumOf((x) => x.requests.disk),
      }),
      limits: pick({ memory: maxOf((x) => x.limits.memory) }),
      estimates: pick({ wallMs: sumOf((x) => x.estimates.wallMs), cpuMs: sumOf((x) => x.estimates.cpuMs) }),
      confidence: Math.min(...rs.map((x) => x.confidence)) * 0.6,
    };
  }

  close(): void {
    this.db.close();
  }
}

/** A recommendation as a profile part (provenance `history`). */
export function historyPart(
  r: HistoryRecommendation,
  options: RecommendOptions = DEFAULT_RECOMMEND,
): ProfilePart {
  const basis =
    r.basis === 'exact'
      ? `same versions on ${r.instanceClass}`
      : r.basis === 'major'
        ? 'same major versions, any instance class'
        : r.basis === 'any-version'
          ? 'any version (the version to install is unknown)'
          : 'each package measured on its own, combined';
  return {
    requests: r.requests,
    limits: r.limits,
    estimates: r.estimates,
    source: {
      provenance: 'history',
      confidence: Number(r.confidence.toFixed(2)),
      note: `p${Math.round(options.percentile * 100)} of ${r.samples} measured run(s) (${basis}) + ${Math.round(options.margin * 100)}%, half-life ${Math.round(options.halfLifeMs / 86_400_000)}d${r.oomSamples ? `; ${r.oomSamples} OOM-killed run(s) counted as limit × ${options.oomBump}` : ''}`,
    },
  };
}

/** What a finished run reports (structurally the runner's RunResult: usage, wall time, exit code). */
export interface FinishedRun {
  readonly usage: {
    readonly peakMemoryBytes: number | null;
    readonly cpuUsageUsec: number | null;
    readonly readBytes: number | null;
    readonly writeBytes: number | null;
    readonly oomKills: number | null;
  };
  readonly wallMs: number;
  /** Time spent frozen (pause preemption): not part of the install's own wall time. */
  readonly pausedMs?: number;
  readonly exitCode: number;
}

/**
 * The sample `rrm run` records after a run that ended by itself (success, failure or OOM kill; not
 * one that was preempted, stopped at its time limit, lost, or could not start).
 */
export function sampleFromRun(
  packages: readonly PackageRef[],
  run: FinishedRun,
  granted: ResourceVector,
  limits: ResourceVector | undefined,
  reservationId?: string,
): HistorySample {
  return {
    packages,
    requests: granted,
    ...(limits ? { limits } : {}),
    measured: { ...run.usage, wallMs: Math.max(0, run.wallMs - (run.pausedMs ?? 0)), exitCode: run.exitCode },
    ...(reservationId ? { reservationId } : {}),
  };
}
