/**
 * One reservation's cgroup(s): the same cgroup name in every hierarchy the host layout uses.
 * File I/O lives here; parsing is in stat-files.ts, joining in join-script.ts.
 */
import type { ResourceVector } from '../model/vector.js';
import * as path from 'node:path';
import { errno, type CgroupFs } from './cgroup-fs.js';
import type { Slot, Usage } from './enforcer.js';
import type { CgroupVersion, KillMethod, Role } from './host-layout.js';
import { buildJoinArgv } from './join-script.js';
import {
  parseBlkioServiceBytes,
  parseFlatKeyed,
  parseIoStat,
  parseProcs,
  parseSingleValue,
} from './stat-files.js';
import { waitUntil } from './wait.js';

export interface PlacedDir {
  readonly kind: CgroupVersion;
  readonly dir: string;
}

export interface SlotDirs {
  readonly id: string;
  readonly roles: Readonly<Record<Role, PlacedDir | null>>;
  /** The reservation's cgroup2 directory when the layout uses cgroup2 at all. */
  readonly v2Dir: string | null;
  readonly kill: KillMethod;
  /** Every directory the process joins, one per hierarchy, in join order. */
  readonly join: readonly string[];
}

const KILL_TIMEOUT_MS = 5_000;
const RMDIR_TIMEOUT_MS = 2_000;

export class CgroupSlot implements Slot {
  readonly enforced = true;
  readonly cgroupDirs: readonly string[];
  private sampledPeak = 0;
  private final: Usage | null = null;
  private destroying: Promise<void> | null = null;

  constructor(
    private readonly fs: CgroupFs,
    private readonly dirs: SlotDirs,
    readonly notes: readonly string[],
    /** The caps written at creation; empty for a slot reopened by id (nothing is known of them then). */
    readonly limits: ResourceVector,
    private readonly afterDestroy: () => void,
  ) {
    this.cgroupDirs = dirs.join;
  }

  get id(): string {
    return this.dirs.id;
  }

  wrap(argv: readonly string[]): string[] {
    if (this.final !== null) throw new Error(`reservation ${this.id}: cgroup already destroyed`);
    return buildJoinArgv(
      this.dirs.join.map((d) => path.join(d, 'cgroup.procs')),
      argv,
    );
  }

  async freeze(): Promise<void> {
    await this.setFrozen(true);
  }

  async thaw(): Promise<void> {
    await this.setFrozen(false);
  }

  private setFrozen(frozen: boolean, timeoutMs?: number): Promise<void> {
    const f = this.dirs.roles.freezer;
    if (f === null) return Promise.reject(new Error(`reservation ${this.id}: no freezer on this host`));
    if (f.kind === 'v2') {
      this.fs.write(path.join(f.dir, 'cgroup.freeze'), frozen ? '1' : '0');
      return waitUntil(
        () => parseFlatKeyed(this.fs.read(path.join(f.dir, 'cgroup.events'))).frozen === (frozen ? 1 : 0),
        `${f.dir} ${frozen ? 'frozen' : 'thawed'}`,
        { timeoutMs },
      );
    }
    const state = path.join(f.dir, 'freezer.state');
    const want = frozen ? 'FROZEN' : 'THAWED';
    this.fs.write(state, want);
    // The v1 freezer may stay in FREEZING; the documented remedy is to write FROZEN again.
    return waitUntil(() => this.fs.read(state).trim() === want, `${state} = ${want}`, {
      timeoutMs,
      nudge: () => this.fs.write(state, want),
    });
  }

  private pids(): number[] {
    const all = new Set<number>();
    for (const d of this.dirs.join) {
      try {
        for (const p of parseProcs(this.fs.read(path.join(d, 'cgroup.procs')))) all.add(p);
      } catch (e) {
        if (errno(e) !== 'ENOENT') throw e;
      }
    }
    return [...all];
  }

  async kill(): Promise<void> {
    if (!this.dirs.join.some((d) => this.fs.exists(d))) return;
    const v2 = this.dirs.v2Dir;
    const killFile = v2 === null ? null : path.join(v2, 'cgroup.kill');
    const useKillFile = this.dirs.kill === 'cgroup.kill' && killFile !== null && this.fs.exists(killFile);
    const freezer = this.dirs.roles.freezer;
    if (useKillFile) {
      this.fs.write(killFile, '1');
    } else if (freezer !== null) {
      // Stop forks racing the signal loop. A v2-frozen task still dies on SIGKILL; a v1-frozen one
      // only once thawed, which signalAll() does after signalling.
      await this.setFrozen(true, 1_000).catch(() => undefined);
    }
    const signalAll = (): void => {
      for (const pid of this.pids()) {
        if (pid === process.pid) {
          throw new Error(
            `reservation ${this.id}: refusing to kill this process (pid ${pid}), it is in the cgroup`,
          );
        }
        if (pid <= 1) continue;
        try {
          process.kill(pid, 'SIGKILL');
        } catch (e) {
          if (errno(e) !== 'ESRCH') throw e;
        }
      }
      if (freezer?.kind === 'v1' && this.fs.exists(freezer.dir)) {
        this.fs.write(path.join(freezer.dir, 'freezer.state'), 'THAWED');
      }
    };
    if (!useKillFile) signalAll();
    await waitUntil(() => this.pids().length === 0, `cgroup of ${this.id} empty after SIGKILL`, {
      timeoutMs: KILL_TIMEOUT_MS,
      nudge: signalAll,
    });
    // Leave the cgroup usable (a later process must not start frozen).
    if (freezer !== null && this.fs.exists(freezer.dir)) {
      this.fs.write(
        path.join(freezer.dir, freezer.kind === 'v2' ? 'cgroup.freeze' : 'freezer.state'),
        freezer.kind === 'v2' ? '0' : 'THAWED',
      );
    }
  }

  measure(): Usage {
    return this.final ?? this.readUsage();
  }

  private readOr<T>(file: string, parse: (text: string) => T): T | null {
    try {
      return parse(this.fs.read(file));
    } catch {
      return null;
    }
  }

  private readUsage(): Usage {
    const { memory, cpuacct, io } = this.dirs.roles;
    let peakMemoryBytes: number | null = null;
    let oomKills: number | null = null;
    if (memory?.kind === 'v1') {
      peakMemoryBytes = this.readOr(path.join(memory.dir, 'memory.max_usage_in_bytes'), parseSingleValue);
      oomKills = this.readOr(
        path.join(memory.dir, 'memory.oom_control'),
        (t) => parseFlatKeyed(t).oom_kill ?? null,
      );
    } else if (memory?.kind === 'v2') {
      const peak = this.readOr(path.join(memory.dir, 'memory.peak'), parseSingleValue);
      const current = this.readOr(path.join(memory.dir, 'memory.current'), parseSingleValue);
      if (current !== null) this.sampledPeak = Math.max(this.sampledPeak, current);
      peakMemoryBytes = peak ?? (current === null ? null : this.sampledPeak);
      oomKills = this.readOr(path.join(memory.dir, 'memory.events'), (t) => parseFlatKeyed(t).oom_kill ?? 0);
    }
    let cpuUsageUsec: number | null = null;
    if (cpuacct?.kind === 'v1') {
      cpuUsageUsec = this.readOr(path.join(cpuacct.dir, 'cpuacct.usage'), (t) =>
        Math.floor(parseSingleValue(t) / 1000),
      );
    } else if (cpuacct?.kind === 'v2') {
      cpuUsageUsec = this.readOr(
        path.join(cpuacct.dir, 'cpu.stat'),
        (t) => parseFlatKeyed(t).usage_usec ?? null,
      );
    }
    let rw: { read: number; write: number } | null = null;
    if (io?.kind === 'v1') {
      rw =
        this.readOr(path.join(io.dir, 'blkio.throttle.io_service_bytes_recursive'), parseBlkioServiceBytes) ??
        this.readOr(path.join(io.dir, 'blkio.throttle.io_service_bytes'), parseBlkioServiceBytes);
    } else if (io?.kind === 'v2') {
      rw = this.readOr(path.join(io.dir, 'io.stat'), (t) => {
        const s = parseIoStat(t);
        return { read: s.rbytes ?? 0, write: s.wbytes ?? 0 };
      });
    }
    return {
      peakMemoryBytes,
      cpuUsageUsec,
      readBytes: rw?.read ?? null,
      writeBytes: rw?.write ?? null,
      oomKills,
    };
  }

  destroy(): Promise<void> {
    this.destroying ??= this.doDestroy().catch((e: unknown) => {
      // Leave the slot retryable: a later destroy() tries again from the start.
      this.destroying = null;
      this.final = null;
      throw e;
    });
    return this.destroying;
  }

  private async doDestroy(): Promise<void> {
    const before = this.readUsage();
    await this.kill();
    const after = this.readUsage();
    // Counters are cumulative, so the post-kill reading is the complete one; fall back per field.
    this.final = Object.freeze({
      peakMemoryBytes: after.peakMemoryBytes ?? before.peakMemoryBytes,
      cpuUsageUsec: after.cpuUsageUsec ?? before.cpuUsageUsec,
      readBytes: after.readBytes ?? before.readBytes,
      writeBytes: after.writeBytes ?? before.writeBytes,
      oomKills: after.oomKills ?? before.oomKills,
    });
    try {
      for (const d of [...this.dirs.join].reverse()) {
        await waitUntil(
          () => {
            try {
              this.fs.rmdir(d);
              return true;
            } catch (e) {
              if (errno(e) === 'ENOENT') return true;
              if (errno(e) === 'EBUSY') return false;
              throw e;
            }
          },
          `rmdir ${d}`,
          { timeoutMs: RMDIR_TIMEOUT_MS },
        );
      }
    } finally {
      this.afterDestroy();
    }
  }
}
