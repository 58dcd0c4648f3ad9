/**
 * Enforcement: puts an install's process tree into a cgroup made for its reservation, maps the
 * reservation onto the cgroup's knobs, and reads back what it used.
 *
 * Interface (all exported from this file):
 *
 *   type DriverName = 'cgroup2' | 'cgroup1' | 'hybrid' | 'none';
 *   type Role = 'cpu' | 'cpuacct' | 'memory' | 'io' | 'freezer';
 *   interface LimitSpec { mode: 'hard' | 'soft'; requests: ResourceVector; limits?: ResourceVector }
 *   interface Usage {
 *     peakMemoryBytes: number | null;  // v1 memory.max_usage_in_bytes; v2 memory.peak, else the
 *                                      // largest memory.current seen by measure() calls
 *     cpuUsageUsec: number | null;     // v1 cpuacct.usage / 1000; v2 cpu.stat usage_usec
 *     readBytes: number | null;        // v1 blkio.throttle.io_service_bytes_recursive; v2 io.stat
 *     writeBytes: number | null;
 *     oomKills: number | null;         // v1 memory.oom_control oom_kill; v2 memory.events oom_kill
 *   }                                  // null = not measurable here (missing controller / advisory)
 *   interface EnforcerReport {
 *     driver: DriverName; reason: string;
 *     controllers: Record<Role, 'v1' | 'v2' | 'missing'>;
 *     kill: 'cgroup.kill' | 'signal-loop' | 'none';
 *     memoryGuarantee: boolean;        // true only with v2 memory (memory.min)
 *     parent: string; parentDirs: string[]; notes: string[];
 *   }
 *   interface Enforcer {
 *     readonly report: EnforcerReport;
 *     describe(): string;              // human-readable report, loud in advisory mode
 *     create(reservationId: string, spec: LimitSpec): Promise<Slot>;  // throws if it exists
 *     open(reservationId: string): Slot | null;    // existing cgroup (restart / reclaim), else null
 *     list(): string[];                // reservation ids with a cgroup under the parent(s)
 *     removeParentIfEmpty(): boolean;  // rmdir the parent(s) if no reservation cgroup is left
 *   }
 *   interface Slot {
 *     readonly id: string;
 *     readonly enforced: boolean;      // false in advisory mode
 *     readonly cgroupDirs: string[];   // one per hierarchy joined
 *     readonly notes: string[];        // knobs skipped for this reservation, and why
 *     wrap(argv: readonly string[]): string[];  // spawn this (no shell): joins, then execs argv
 *     freeze(): Promise<void>; thaw(): Promise<void>;  // resolve once the kernel reports it done
 *     kill(): Promise<void>;           // SIGKILL everything, resolve once cgroup.procs is empty
 *     measure(): Usage;                // after destroy(): the usage captured at destroy time
 *     destroy(): Promise<void>;        // kill leftovers, rmdir in every hierarchy; idempotent
 *   }
 *   interface ProbeOptions {
 *     root?: string;            // default /sys/fs/cgroup; only mounts at/below it count
 *     mountsFile?: string;      // default /proc/self/mounts
 *     parent?: string;          // default 'rrm'
 *     marginFraction?: number;  // default 0.25
 *     ioDevice?: string;        // 'major:minor' that diskIo caps apply to (else not capped, noted)
 *     blockDevices?: string[];  // v1: disks to count I/O on; default real disks in /sys/block
 *     kernelRelease?: string;   // default os.release(); gates cgroup.freeze (5.2) / cgroup.kill (5.14)
 *     fs?: CgroupFs;            // default node:fs; tests pass a fake cgroupfs
 *   }
 *   function probeEnforcer(opts?: ProbeOptions): Enforcer;   // reads only; creates nothing
 *   function effectiveLimits(spec: LimitSpec, marginFraction?: number): ResourceVector;  // limits.ts
 *   function validateCgroupName(name: string, what?: string): string;  // throws TypeError
 *   class EnforcementUnavailableError extends Error   // advisory slot asked to freeze/thaw/kill
 *
 * Drivers: `cgroup2` (pure unified), `cgroup1` (v1 only), `hybrid` (v1 controllers for cpu,
 * cpuacct, memory, blkio; the cgroup2 tree for cgroup.freeze and cgroup.kill, which v1 lacks or
 * does worse), `none` (advisory: argv unchanged, nothing measured, said loudly in describe() and
 * by a process warning at the first create()). The rules per controller are in host-layout.ts.
 *
 * Where things go: <mount>/<parent>/<reservationId> in each hierarchy used (parent `rrm` by
 * default), e.g. /sys/fs/cgroup/memory/rrm/r-42 and /sys/fs/cgroup/unified/rrm/r-42 on a hybrid
 * host, /sys/fs/cgroup/rrm/r-42 on pure cgroup2 (where the root's and the parent's
 * cgroup.subtree_control enable cpu/memory/io). The parent sits at the hierarchy root, not below
 * the calling process's own cgroup: the agent that owns enforcement is meant to run as root.
 * Which hierarchy serves which controller: host-layout.ts. Knob values: write-plan.ts and
 * value-mapping.ts. How wrap() joins before exec: join-script.ts. Limit defaulting: limits.ts.
 */
import type { ResourceVector } from '../model/vector.js';
import { CgroupEnforcer } from './cgroup-enforcer.js';
import type { CgroupFs } from './cgroup-fs.js';
import type { DriverName, KillMethod, Role } from './host-layout.js';
import { DEFAULT_MARGIN_FRACTION } from './limits.js';
import { NoneEnforcer } from './none-enforcer.js';
import { discoverBlockDevices, probeHost } from './probe.js';

export type { DriverName, KillMethod, Role } from './host-layout.js';
export { effectiveLimits, DEFAULT_MARGIN_FRACTION } from './limits.js';

export interface LimitSpec {
  readonly mode: 'hard' | 'soft';
  readonly requests: ResourceVector;
  /** Caps; absent → defaulted by effectiveLimits (hard: request × (1 + margin) on cpu/memory). */
  readonly limits?: ResourceVector | undefined;
}

export interface Usage {
  readonly peakMemoryBytes: number | null;
  readonly cpuUsageUsec: number | null;
  readonly readBytes: number | null;
  readonly writeBytes: number | null;
  readonly oomKills: number | null;
}

export interface EnforcerReport {
  readonly driver: DriverName;
  readonly reason: string;
  readonly controllers: Readonly<Record<Role, 'v1' | 'v2' | 'missing'>>;
  readonly kill: KillMethod;
  readonly memoryGuarantee: boolean;
  /** Name of the parent cgroup (`rrm` in production). */
  readonly parent: string;
  /** The parent directory in each hierarchy used. */
  readonly parentDirs: readonly string[];
  readonly notes: readonly string[];
}

export interface Enforcer {
  readonly report: EnforcerReport;
  describe(): string;
  create(reservationId: string, spec: LimitSpec): Promise<Slot>;
  open(reservationId: string): Slot | null;
  list(): string[];
  removeParentIfEmpty(): boolean;
}

export interface Slot {
  readonly id: string;
  readonly enforced: boolean;
  readonly cgroupDirs: readonly string[];
  readonly notes: readonly string[];
  /** The caps this slot applies (empty in advisory mode, where nothing is capped). */
  readonly limits: ResourceVector;
  wrap(argv: readonly string[]): string[];
  freeze(): Promise<void>;
  thaw(): Promise<void>;
  kill(): Promise<void>;
  measure(): Usage;
  destroy(): Promise<void>;
}

export interface ProbeOptions {
  /** Enforcement is turned off, and this says why: the advisory driver, nothing probed. */
  readonly disabled?: string;
  /** Where cgroup hierarchies are mounted; only mounts at or below it count. Default /sys/fs/cgroup. */
  readonly root?: string;
  /** Mount table to parse. Default /proc/self/mounts. */
  readonly mountsFile?: string;
  /** Parent cgroup name. Default `rrm`; tests use a unique one. */
  readonly parent?: string;
  /** Default cap margin for hard reservations without limits. Default 0.25. */
  readonly marginFraction?: number;
  /** Block device `major:minor` that diskIo caps apply to; without it diskIo is not capped. */
  readonly ioDevice?: string;
  /**
   * Disks (`major:minor`) whose I/O cgroup v1 should count; default: the real disks in /sys/block.
   * (v1 blkio only counts bytes on devices that carry a throttle rule; see write-plan.ts.)
   */
  readonly blockDevices?: readonly string[];
  /** Kernel release (`uname -r`); default os.release(). Decides cgroup.freeze / cgroup.kill. */
  readonly kernelRelease?: string;
  /** Filesystem access; default node:fs. Tests substitute a fake cgroupfs. */
  readonly fs?: CgroupFs;
}

export class EnforcementUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EnforcementUnavailableError';
  }
}

const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.:@-]{0,127}$/;

/** Reservation ids and the parent name become directory names: one safe path segment. */
export function validateCgroupName(name: string, what = 'reservation id'): string {
  if (!NAME.test(name)) {
    throw new TypeError(
      `invalid ${what} ${JSON.stringify(name)}: use 1-128 of [A-Za-z0-9_.:@-], not starting with . or -`,
    );
  }
  return name;
}

export function probeEnforcer(opts: ProbeOptions = {}): Enforcer {
  const parent = validateCgroupName(opts.parent ?? 'rrm', 'parent');
  const marginFraction = opts.marginFraction ?? DEFAULT_MARGIN_FRACTION;
  if (!Number.isFinite(marginFraction) || marginFraction < 0) {
    throw new RangeError(`marginFraction must be a finite number ≥ 0, got ${marginFraction}`);
  }
  if (opts.ioDevice !== undefined && !/^\d+:\d+$/.test(opts.ioDevice)) {
    throw new TypeError(`ioDevice must be major:minor, got ${JSON.stringify(opts.ioDevice)}`);
  }
  if (opts.disabled !== undefined) {
    const nothing = probeHost({ ...opts, mountsFile: '/dev/null' });
    return new NoneEnforcer({ ...nothing, reason: opts.disabled }, parent);
  }
  const layout = probeHost(opts);
  if (layout.driver === 'none') return new NoneEnforcer(layout, parent);
  const blockDevices =
    layout.roles.io?.kind === 'v1' ? (opts.blockDevices ?? discoverBlockDevices()) : opts.blockDevices;
  return new CgroupEnforcer(layout, {
    parent,
    marginFraction,
    ioDevice: opts.ioDevice,
    blockDevices,
    fs: opts.fs,
  });
}
