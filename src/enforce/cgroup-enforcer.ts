/**
 * The enforcing drivers (cgroup2, cgroup1, hybrid): one class, parameterised by the host layout,
 * because the drivers differ only in which hierarchy serves which role. Creates
 * <mount>/<parent>/<id> in every hierarchy used, writes the plan for the version each role lives
 * in, and keeps the parent's aggregates in step with its children:
 *   - cpu weight/shares of the parent = sum of its children's (default when empty), so the
 *     reservations as a group compete with the rest of the host in proportion to what they hold;
 *   - v2 memory.min / memory.low of the parent = sum of its children's: protection below a parent
 *     is only effective up to the parent's own protection.
 */
import type { ResourceVector } from '../model/vector.js';
import * as path from 'node:path';
import { errno, nodeCgroupFs, type CgroupFs } from './cgroup-fs.js';
import { CgroupSlot, type PlacedDir, type SlotDirs } from './cgroup-slot.js';
import { describeReport } from './describe.js';
import {
  validateCgroupName,
  type Enforcer,
  type EnforcerReport,
  type LimitSpec,
  type Slot,
} from './enforcer.js';
import { ROLES, type CgroupVersion, type HostLayout, type Role } from './host-layout.js';
import { effectiveLimits } from './limits.js';
import { aggregateWeight, V1_DEFAULT_SHARES, V2_DEFAULT_WEIGHT } from './value-mapping.js';
import { planV1, planV2, type PlannedWrite } from './write-plan.js';
import { parseSingleValue } from './stat-files.js';

export interface CgroupEnforcerOptions {
  readonly parent: string;
  readonly marginFraction: number;
  readonly ioDevice?: string | undefined;
  /** Disks (`major:minor`) whose I/O v1 blkio should count (see write-plan.ts). */
  readonly blockDevices?: readonly string[] | undefined;
  readonly fs?: CgroupFs | undefined;
}

/** v2 controller names that must be enabled in subtree_control for a role. */
const V2_CONTROLLER: Partial<Record<Role, string>> = { cpu: 'cpu', memory: 'memory', io: 'io' };

interface Hierarchy {
  readonly kind: CgroupVersion;
  readonly mount: string;
}

export class CgroupEnforcer implements Enforcer {
  readonly report: EnforcerReport;
  private readonly fs: CgroupFs;
  private readonly parent: string;
  private readonly hierarchies: readonly Hierarchy[];

  constructor(
    private readonly layout: HostLayout,
    private readonly opts: CgroupEnforcerOptions,
  ) {
    this.fs = opts.fs ?? nodeCgroupFs;
    this.parent = opts.parent;
    const hs: Hierarchy[] = [];
    const add = (kind: CgroupVersion, mount: string): void => {
      if (!hs.some((h) => h.mount === mount)) hs.push({ kind, mount });
    };
    // cgroup2 first: a process that fails to join there has not yet been moved anywhere else.
    if (layout.v2Mount !== null) add('v2', layout.v2Mount);
    for (const r of ROLES) {
      const p = layout.roles[r];
      if (p !== null) add(p.kind, p.mount);
    }
    this.hierarchies = hs;
    const controllers = Object.fromEntries(
      ROLES.map((r) => [r, layout.roles[r]?.kind ?? 'missing']),
    ) as Record<Role, 'v1' | 'v2' | 'missing'>;
    this.report = Object.freeze({
      driver: layout.driver,
      reason: layout.reason,
      controllers,
      kill: layout.kill,
      memoryGuarantee: layout.roles.memory?.kind === 'v2',
      parent: this.parent,
      parentDirs: hs.map((h) => path.join(h.mount, this.parent)),
      notes: [...layout.notes],
    });
  }

  describe(): string {
    return describeReport(this.report);
  }

  private parentDir(mount: string): string {
    return path.join(mount, this.parent);
  }

  private dirsFor(id: string): SlotDirs {
    const roles = Object.fromEntries(
      ROLES.map((r) => {
        const p = this.layout.roles[r];
        return [
          r,
          p === null ? null : ({ kind: p.kind, dir: path.join(p.mount, this.parent, id) } as PlacedDir),
        ];
      }),
    ) as Record<Role, PlacedDir | null>;
    return {
      id,
      roles,
      v2Dir: this.layout.v2Mount === null ? null : path.join(this.layout.v2Mount, this.parent, id),
      kill: this.layout.kill,
      join: this.hierarchies.map((h) => path.join(h.mount, this.parent, id)),
    };
  }

  /** Enables `controllers` in dir's cgroup.subtree_control where not yet enabled. */
  private enableControllers(dir: string, controllers: readonly string[]): void {
    const file = path.join(dir, 'cgroup.subtree_control');
    const on = new Set(this.fs.read(file).split(/\s+/).filter(Boolean));
    for (const c of controllers) {
      if (on.has(c)) continue;
      try {
        this.fs.write(file, `+${c}`);
      } catch (e) {
        throw new Error(`cannot enable the ${c} controller in ${file}: ${(e as Error).message}`, {
          cause: e,
        });
      }
    }
  }

  private ensureParents(): void {
    for (const h of this.hierarchies) {
      const dir = this.parentDir(h.mount);
      if (h.kind === 'v2') {
        const needed = ROLES.filter((r) => this.layout.roles[r]?.kind === 'v2')
          .map((r) => V2_CONTROLLER[r])
          .filter((c): c is string => c !== undefined);
        if (needed.length > 0) this.enableControllers(h.mount, needed);
        if (!this.fs.exists(dir)) this.mkdirTolerant(dir);
        if (needed.length > 0) this.enableControllers(dir, needed);
      } else if (!this.fs.exists(dir)) {
        this.mkdirTolerant(dir);
      }
    }
  }

  private mkdirTolerant(dir: string): void {
    try {
      this.fs.mkdir(dir);
    } catch (e) {
      if (errno(e) !== 'EEXIST') throw e;
    }
  }

  private planFor(spec: LimitSpec): { writes: PlannedWrite[]; notes: string[]; limits: ResourceVector } {
    // cgroup v1 has no memory guarantee: capping every install is what keeps hard reservations whole.
    const limits = effectiveLimits(spec, this.opts.marginFraction, this.layout.roles.memory?.kind === 'v1');
    const input = {
      mode: spec.mode,
      requests: spec.requests,
      limits,
      ioDevice: this.opts.ioDevice,
      accountDevices: this.opts.blockDevices,
    };
    const v1 = planV1(input);
    const v2 = planV2(input);
    const kindOf = (role: Role): CgroupVersion | undefined => this.layout.roles[role]?.kind;
    const writes = [
      ...v2.writes.filter((w) => kindOf(w.role) === 'v2'),
      ...v1.writes.filter((w) => kindOf(w.role) === 'v1'),
    ];
    const notes = [...new Set([...v1.notes, ...v2.notes])].filter(() => kindOf('io') !== undefined);
    return { writes, notes, limits };
  }

  async create(reservationId: string, spec: LimitSpec): Promise<Slot> {
    const id = validateCgroupName(reservationId);
    const plan = this.planFor(spec); // validates spec before anything is touched
    const dirs = this.dirsFor(id);
    const existing = dirs.join.filter((d) => this.fs.exists(d));
    if (existing.length > 0) {
      throw new Error(
        `cgroup for reservation ${id} already exists (${existing.join(', ')}): open() it or destroy it first`,
      );
    }
    this.ensureParents();
    const created: string[] = [];
    const notes = [...plan.notes];
    try {
      for (const d of dirs.join) {
        this.fs.mkdir(d);
        created.push(d);
      }
      for (const w of plan.writes) {
        const placed = dirs.roles[w.role];
        if (placed === null) continue;
        const names = [w.file, ...(w.alternatives ?? [])];
        const found = names.map((n) => path.join(placed.dir, n)).find((f) => this.fs.exists(f));
        if (found === undefined && w.optional) {
          notes.push(`${names.join(' / ')} not available here: skipped (${w.value})`);
          continue;
        }
        const file = found ?? path.join(placed.dir, w.file);
        try {
          this.fs.write(file, w.value);
        } catch (e) {
          if (w.optional) {
            notes.push(`${w.file} refused ${JSON.stringify(w.value)}: ${(e as Error).message}`);
            continue;
          }
          throw new Error(`cannot write ${JSON.stringify(w.value)} to ${file}: ${(e as Error).message}`, {
            cause: e,
          });
        }
      }
    } catch (e) {
      for (const d of created.reverse()) {
        try {
          this.fs.rmdir(d);
        } catch {
          // best effort: the original error matters more
        }
      }
      this.updateAggregates();
      throw e;
    }
    this.updateAggregates();
    return new CgroupSlot(this.fs, dirs, notes, plan.limits, () => this.updateAggregates());
  }

  open(reservationId: string): Slot | null {
    const id = validateCgroupName(reservationId);
    const dirs = this.dirsFor(id);
    if (!dirs.join.some((d) => this.fs.exists(d))) return null;
    return new CgroupSlot(this.fs, dirs, [], {}, () => this.updateAggregates());
  }

  list(): string[] {
    const ids = new Set<string>();
    for (const h of this.hierarchies) for (const n of this.fs.subdirs(this.parentDir(h.mount))) ids.add(n);
    return [...ids].sort();
  }

  removeParentIfEmpty(): boolean {
    if (this.list().length > 0) return false;
    for (const h of this.hierarchies) {
      try {
        this.fs.rmdir(this.parentDir(h.mount));
      } catch (e) {
        if (errno(e) !== 'ENOENT') throw e;
      }
    }
    return true;
  }

  /** Sum of a numeric knob over the parent's children (children vanishing meanwhile are skipped). */
  private childValues(parentDir: string, file: string): number[] {
    const out: number[] = [];
    for (const child of this.fs.subdirs(parentDir)) {
      try {
        const n = parseSingleValue(this.fs.read(path.join(parentDir, child, file)));
        if (Number.isFinite(n)) out.push(n);
      } catch {
        // child removed concurrently, or knob absent
      }
    }
    return out;
  }

  private writeIfPresent(file: string, value: string): void {
    if (this.fs.exists(file)) this.fs.write(file, value);
  }

  private updateAggregates(): void {
    const cpu = this.layout.roles.cpu;
    if (cpu !== null) {
      const dir = this.parentDir(cpu.mount);
      if (cpu.kind === 'v1') {
        const v = aggregateWeight(this.childValues(dir, 'cpu.shares'), 2, 262_144, V1_DEFAULT_SHARES);
        this.writeIfPresent(path.join(dir, 'cpu.shares'), String(v));
      } else {
        const v = aggregateWeight(this.childValues(dir, 'cpu.weight'), 1, 10_000, V2_DEFAULT_WEIGHT);
        this.writeIfPresent(path.join(dir, 'cpu.weight'), String(v));
      }
    }
    const mem = this.layout.roles.memory;
    if (mem?.kind === 'v2') {
      const dir = this.parentDir(mem.mount);
      for (const file of ['memory.min', 'memory.low']) {
        const total = this.childValues(dir, file).reduce((a, b) => a + b, 0);
        this.writeIfPresent(path.join(dir, file), String(total));
      }
    }
  }
}
