/**
 * Advisory mode: no usable cgroup hierarchy. Reservations are still accounted by the ledger, but
 * the install runs unconfined: wrap() returns argv unchanged, measure() knows nothing, and
 * freeze/thaw/kill throw EnforcementUnavailableError rather than pretend.
 */
import type { ResourceVector } from '../model/vector.js';
import { describeReport } from './describe.js';
import {
  EnforcementUnavailableError,
  validateCgroupName,
  type Enforcer,
  type EnforcerReport,
  type LimitSpec,
  type Slot,
  type Usage,
} from './enforcer.js';
import { ROLES, type HostLayout, type Role } from './host-layout.js';
import { effectiveLimits } from './limits.js';

const NOTHING: Usage = Object.freeze({
  peakMemoryBytes: null,
  cpuUsageUsec: null,
  readBytes: null,
  writeBytes: null,
  oomKills: null,
});

class AdvisorySlot implements Slot {
  readonly enforced = false;
  readonly cgroupDirs: readonly string[] = [];
  readonly notes = ['advisory mode: this reservation is not enforced and its usage is not measured'];
  readonly limits: ResourceVector = Object.freeze({});
  constructor(readonly id: string) {}
  wrap(argv: readonly string[]): string[] {
    if (argv.length === 0 || argv[0] === '') throw new TypeError('wrap: argv must name a program');
    return [...argv];
  }
  private unavailable(what: string): Promise<never> {
    return Promise.reject(
      new EnforcementUnavailableError(`cannot ${what} reservation ${this.id}: advisory mode`),
    );
  }
  freeze(): Promise<void> {
    return this.unavailable('freeze');
  }
  thaw(): Promise<void> {
    return this.unavailable('thaw');
  }
  kill(): Promise<void> {
    return this.unavailable('kill the processes of');
  }
  measure(): Usage {
    return NOTHING;
  }
  async destroy(): Promise<void> {}
}

export class NoneEnforcer implements Enforcer {
  readonly report: EnforcerReport;
  private warned = false;

  constructor(layout: HostLayout, parent: string) {
    const controllers = Object.fromEntries(
      ROLES.map((r) => [r, layout.roles[r]?.kind ?? 'missing']),
    ) as Record<Role, 'v1' | 'v2' | 'missing'>;
    this.report = Object.freeze({
      driver: 'none',
      reason: layout.reason,
      controllers,
      kill: 'none',
      memoryGuarantee: false,
      parent,
      parentDirs: [],
      notes: ['ADVISORY MODE: installs run unconfined; reservations are bookkeeping only', ...layout.notes],
    });
  }

  describe(): string {
    return describeReport(this.report);
  }

  async create(reservationId: string, spec: LimitSpec): Promise<Slot> {
    validateCgroupName(reservationId);
    effectiveLimits(spec); // same validation as the enforcing drivers
    if (!this.warned) {
      this.warned = true;
      process.emitWarning(`rrm: ${this.report.reason}`, { code: 'RRM_ADVISORY' });
    }
    return new AdvisorySlot(reservationId);
  }

  open(reservationId: string): Slot | null {
    validateCgroupName(reservationId);
    return null;
  }

  list(): string[] {
    return [];
  }

  removeParentIfEmpty(): boolean {
    return true;
  }
}
