/**
 * Deciding, per controller, which cgroup hierarchy enforces what. Pure: the facts about the host
 * (mount table, controllers listed by the cgroup2 root, writability, kernel version) come in, a
 * layout comes out. probe.ts gathers the facts.
 *
 * Roles and the rule for each (a controller is bound to at most one hierarchy at a time, so "v2 if
 * the cgroup2 root lists it, else the v1 mount" is unambiguous):
 *   cpu      weights and caps       v2 `cpu` controller, else v1 `cpu`
 *   memory   protection and caps    v2 `memory`, else v1 `memory`
 *   io       weights, caps, bytes   v2 `io`, else v1 `blkio`
 *   cpuacct  CPU time               with the cpu role: v2 cpu.stat; else v1 `cpuacct` (ns precision);
 *                                   else the cgroup2 tree's core cpu.stat (present without controllers)
 *   freezer  freeze/thaw            cgroup2 `cgroup.freeze` (core, kernel ≥ 5.2, needs no controller):
 *                                   frozen tasks stay killable and cgroup.events reports completion;
 *                                   else the v1 `freezer` (a SIGKILLed frozen task only dies on thaw)
 *   kill                            cgroup2 `cgroup.kill` (kernel ≥ 5.14), else a signal loop over
 *                                   cgroup.procs of every hierarchy until all are empty
 * Driver: `none` when neither cpu nor memory can be enforced; otherwise `cgroup2` when every role
 * used is v2, `cgroup1` when every one is v1, `hybrid` when both are in use.
 */
import type { MountEntry } from './mounts.js';

export type DriverName = 'cgroup2' | 'cgroup1' | 'hybrid' | 'none';
export type CgroupVersion = 'v1' | 'v2';
export type Role = 'cpu' | 'cpuacct' | 'memory' | 'io' | 'freezer';
export type KillMethod = 'cgroup.kill' | 'signal-loop' | 'none';
export const ROLES: readonly Role[] = ['cpu', 'cpuacct', 'memory', 'io', 'freezer'];

export interface Placement {
  readonly kind: CgroupVersion;
  /** Mountpoint of the hierarchy (the root cgroup's directory). */
  readonly mount: string;
}

export interface HostLayout {
  readonly driver: DriverName;
  readonly reason: string;
  readonly roles: Readonly<Record<Role, Placement | null>>;
  readonly kill: KillMethod;
  /** The cgroup2 mount that reservations join (for freeze/kill/CPU time/controllers), or null. */
  readonly v2Mount: string | null;
  /** Controllers the cgroup2 root offers (cgroup.controllers). */
  readonly v2Controllers: readonly string[];
  readonly notes: readonly string[];
}

export interface HostFacts {
  readonly mounts: readonly MountEntry[];
  /** Only mounts at or below this path count (e.g. /sys/fs/cgroup). */
  readonly root: string;
  /** Contents of <mountpoint>/cgroup.controllers split on whitespace, or null if unreadable. */
  readonly v2Controllers: (mountpoint: string) => readonly string[] | null;
  readonly writable: (path: string) => boolean;
  /** [major, minor] of the running kernel, or null if unknown (then kernel-version features are off). */
  readonly kernel: readonly [number, number] | null;
}

const V1_CONTROLLERS = new Set([
  'cpu',
  'cpuacct',
  'memory',
  'blkio',
  'freezer',
  'pids',
  'cpuset',
  'devices',
  'net_cls',
  'net_prio',
  'perf_event',
  'hugetlb',
  'rdma',
  'misc',
]);

export function parseKernelRelease(release: string): [number, number] | null {
  const m = /^(\d+)\.(\d+)/.exec(release);
  return m ? [Number(m[1]), Number(m[2])] : null;
}

function atLeast(k: readonly [number, number] | null, major: number, minor: number): boolean {
  return k !== null && (k[0] > major || (k[0] === major && k[1] >= minor));
}

function under(root: string, p: string): boolean {
  const r = root.endsWith('/') && root !== '/' ? root.slice(0, -1) : root;
  return p === r || p.startsWith(r === '/' ? '/' : r + '/');
}

export function decideLayout(facts: HostFacts): HostLayout {
  const notes: string[] = [];
  const v1 = new Map<string, string>();
  let v2Mount: string | null = null;
  for (const m of facts.mounts) {
    if (!under(facts.root, m.mountpoint)) continue;
    if (m.fstype === 'cgroup') {
      const ctrls = m.options.filter((o) => V1_CONTROLLERS.has(o) && !v1.has(o));
      if (ctrls.length === 0) continue;
      if (!facts.writable(m.mountpoint)) {
        notes.push(`cgroup v1 ${ctrls.join(',')} at ${m.mountpoint} is not writable (not root?); ignored`);
        continue;
      }
      for (const c of ctrls) v1.set(c, m.mountpoint);
    } else if (m.fstype === 'cgroup2') {
      if (v2Mount !== null && v2Mount === facts.root) continue;
      if (!facts.writable(m.mountpoint)) {
        notes.push(`cgroup2 at ${m.mountpoint} is not writable (not root, no delegation?); ignored`);
        continue;
      }
      if (v2Mount === null || m.mountpoint === facts.root) v2Mount = m.mountpoint;
    }
  }
  const v2Controllers = v2Mount === null ? [] : (facts.v2Controllers(v2Mount) ?? []);
  const v2Has = (c: string): boolean => v2Mount !== null && v2Controllers.includes(c);
  const pick = (v2name: string, v1name: string): Placement | null =>
    v2Has(v2name)
      ? { kind: 'v2', mount: v2Mount as string }
      : v1.has(v1name)
        ? { kind: 'v1', mount: v1.get(v1name) as string }
        : null;

  const cpu = pick('cpu', 'cpu');
  const memory = pick('memory', 'memory');
  const io = pick('io', 'blkio');
  const v2Core = v2Mount === null ? null : ({ kind: 'v2', mount: v2Mount } as const);
  const cpuacct: Placement | null =
    cpu?.kind === 'v2'
      ? cpu
      : v1.has('cpuacct')
        ? { kind: 'v1', mount: v1.get('cpuacct') as string }
        : v2Core;
  const v2Freeze = v2Core !== null && atLeast(facts.kernel, 5, 2);
  const freezer: Placement | null = v2Freeze
    ? v2Core
    : v1.has('freezer')
      ? { kind: 'v1', mount: v1.get('freezer') as string }
      : null;
  const roles: Record<Role, Placement | null> = { cpu, cpuacct, memory, io, freezer };
  const anyHierarchy = v2Mount !== null || v1.size > 0;
  const kill: KillMethod =
    v2Core !== null && atLeast(facts.kernel, 5, 14) ? 'cgroup.kill' : anyHierarchy ? 'signal-loop' : 'none';

  const used = ROLES.map((r) => roles[r]).filter((p): p is Placement => p !== null);
  const kinds = new Set(used.map((p) => p.kind));
  if (kill === 'cgroup.kill') kinds.add('v2');

  const where = (r: Role): string => {
    const p = roles[r];
    return p === null ? `${r}: missing` : `${r}: ${p.kind} (${p.mount})`;
  };

  let driver: DriverName;
  let reason: string;
  if (cpu === null && memory === null) {
    driver = 'none';
    const seen =
      v2Mount === null && v1.size === 0
        ? `no writable cgroup hierarchy under ${facts.root}`
        : `no cpu or memory controller available under ${facts.root}` +
          (v2Mount !== null
            ? ` (cgroup2 at ${v2Mount} offers: ${v2Controllers.join(' ') || 'nothing'})`
            : '');
    reason = `${seen}: ADVISORY MODE, reservations are accounted but NOTHING is enforced or measured`;
  } else if (kinds.has('v1') && kinds.has('v2')) {
    driver = 'hybrid';
    reason =
      `cgroup v1 controllers plus a cgroup2 tree at ${v2Mount} ` +
      `(controllers: ${v2Controllers.join(' ') || 'none'}): limits via whichever hierarchy holds each ` +
      `controller, freeze/kill via cgroup2 where v1 lacks it; ` +
      ROLES.map(where).join(', ') +
      `, kill: ${kill}`;
  } else if (kinds.has('v2')) {
    driver = 'cgroup2';
    reason = `unified cgroup2 hierarchy at ${v2Mount} with controllers: ${v2Controllers.join(' ')}`;
  } else {
    driver = 'cgroup1';
    reason = `cgroup v1 hierarchies: ` + ROLES.map(where).join(', ') + `, kill: ${kill}`;
  }

  if (driver !== 'none') {
    for (const r of ROLES)
      if (roles[r] === null) notes.push(`${r} controller missing: not enforced/measured`);
    if (memory?.kind === 'v1') {
      notes.push(
        'memory: cgroup v1 has no memory guarantee; the request becomes memory.soft_limit_in_bytes ' +
          '(a reclaim target under pressure), only the cap (memory.limit_in_bytes) is enforced',
      );
    }
    if (memory?.kind === 'v2') {
      notes.push(
        'memory: requests become memory.min (hard) / memory.low (soft); the rrm parent carries the sum ' +
          'of its children so the protection is effective',
      );
    }
    if (freezer?.kind === 'v2' && v1.has('freezer')) {
      notes.push(
        'freeze uses cgroup2 cgroup.freeze rather than the v1 freezer: frozen tasks stay killable ' +
          'and completion is reported in cgroup.events',
      );
    }
    if (freezer?.kind === 'v1') notes.push('freeze uses the v1 freezer; kill thaws so SIGKILL is delivered');
    if (kill === 'signal-loop') {
      notes.push(
        'no cgroup.kill (kernel < 5.14 or no cgroup2): kill SIGKILLs each pid in cgroup.procs until empty',
      );
    }
    if (io?.kind === 'v1') {
      notes.push(
        'diskIo (v1 blkio): bytes are counted through a never-throttling rule on each disk; buffered ' +
          'writes are flushed by the kernel outside the cgroup, so writeBytes covers direct I/O only',
      );
    }
    if (io !== null) {
      notes.push(
        'diskIo: proportional weight only where an io scheduler honours it; bandwidth caps need ioDevice',
      );
    }
    notes.push('network: reserved and accounted, not enforced');
    notes.push('pids: not limited');
  }
  return { driver, reason, roles, kill, v2Mount: kinds.has('v2') ? v2Mount : null, v2Controllers, notes };
}
