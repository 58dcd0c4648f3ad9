/**
 * What to write into a reservation's cgroup, per cgroup version. Pure: the drivers execute the plan.
 *
 * v2 (files in <root>/<parent>/<id>):
 *   cpu.weight        ← weight(requests.cpu)
 *   cpu.max           ← `quota 100000` from limits.cpu, else `max 100000`
 *   memory.min        ← requests.memory (hard)   |   memory.low ← requests.memory (soft)
 *   memory.max        ← limits.memory, else `max`
 *   memory.swap.max   ← 0 when memory is capped (optional: only if the file exists) so a capped
 *                       install is OOM-killed at the cap instead of swapping
 *   memory.oom.group  ← 1 (optional): an OOM kills the whole install, not one random process
 *   io.weight         ← `default weight(requests.diskIo)` (optional: needs an io scheduler/iocost)
 *   io.max            ← `maj:min rbps=N wbps=N` from limits.diskIo, only when the device is known
 * v1 (files in <mount>/<parent>/<id> of each controller's hierarchy):
 *   cpu.shares        ← shares(requests.cpu)
 *   cpu.cfs_period_us ← 100000;  cpu.cfs_quota_us ← quota from limits.cpu, else -1
 *   memory.soft_limit_in_bytes ← requests.memory (v1 has no guarantee; this is only a reclaim target)
 *   memory.limit_in_bytes      ← limits.memory, else -1
 *   memory.memsw.limit_in_bytes← same (optional: only with swap accounting), written after the above
 *   blkio.weight, else blkio.bfq.weight ← weight(requests.diskIo) (optional)
 *   blkio.throttle.{read,write}_bps_device ← `maj:min N` from limits.diskIo when the device is known,
 *                       and `maj:min 18446744073709551614` (2^64−2 B/s: a rule that never throttles)
 *                       on every other disk (optional): the v1 throttle statistics only count I/O
 *                       to devices that have a rule, so without it bytes read/written read as 0
 */
import type { ResourceVector } from '../model/vector.js';
import {
  blkioWeightV1,
  byteValue,
  CFS_PERIOD_US,
  cfsQuotaUs,
  cpuMaxValue,
  cpuSharesFromMillicores,
  cpuWeightFromMillicores,
  ioWeightV2,
} from './value-mapping.js';

export type PlanRole = 'cpu' | 'memory' | 'io';

export interface PlannedWrite {
  readonly role: PlanRole;
  readonly file: string;
  readonly value: string;
  /** Write only if the file exists (feature depends on kernel config); otherwise note and skip. */
  readonly optional: boolean;
  /** Other names for the same knob, tried in order when `file` is absent (e.g. blkio.bfq.weight). */
  readonly alternatives?: readonly string[];
}

export interface WritePlan {
  readonly writes: readonly PlannedWrite[];
  readonly notes: readonly string[];
}

export interface PlanInput {
  readonly mode: 'hard' | 'soft';
  readonly requests: ResourceVector;
  /** Already defaulted (see effectiveLimits). */
  readonly limits: ResourceVector;
  /** Block device `major:minor` for bandwidth caps; unknown → no io.max / throttle. */
  readonly ioDevice?: string | undefined;
  /** v1 only: disks (`major:minor`) to put a never-throttling rule on so their I/O is counted. */
  readonly accountDevices?: readonly string[] | undefined;
}

/** The largest v1 throttle rate that is still a rule (0 and 2^64−1 both mean "no rule"). */
export const V1_UNLIMITED_RULE_BPS = '18446744073709551614';

function w(
  role: PlanRole,
  file: string,
  value: string | number,
  optional = false,
  alternatives: readonly string[] = [],
): PlannedWrite {
  return alternatives.length === 0
    ? { role, file, value: String(value), optional }
    : { role, file, value: String(value), optional, alternatives };
}

function ioCapNote(input: PlanInput): string[] {
  if (input.limits.diskIo !== undefined && input.ioDevice === undefined) {
    return [
      'diskIo limit not enforced: no block device configured (ioDevice), so io.max/throttle is skipped',
    ];
  }
  return [];
}

export function planV2(input: PlanInput): WritePlan {
  const { requests: req, limits: lim } = input;
  const writes: PlannedWrite[] = [
    w('cpu', 'cpu.weight', cpuWeightFromMillicores(req.cpu)),
    w('cpu', 'cpu.max', cpuMaxValue(lim.cpu)),
    w('memory', input.mode === 'hard' ? 'memory.min' : 'memory.low', byteValue(req.memory ?? 0)),
    w('memory', 'memory.max', lim.memory === undefined ? 'max' : byteValue(lim.memory)),
  ];
  if (lim.memory !== undefined) writes.push(w('memory', 'memory.swap.max', '0', true));
  writes.push(w('memory', 'memory.oom.group', '1', true));
  writes.push(w('io', 'io.weight', `default ${ioWeightV2(req.diskIo)}`, true));
  if (lim.diskIo !== undefined && input.ioDevice !== undefined) {
    const bps = byteValue(lim.diskIo);
    writes.push(w('io', 'io.max', `${input.ioDevice} rbps=${bps} wbps=${bps}`));
  }
  return { writes, notes: ioCapNote(input) };
}

export function planV1(input: PlanInput): WritePlan {
  const { requests: req, limits: lim } = input;
  const memLimit = lim.memory === undefined ? '-1' : byteValue(lim.memory);
  const writes: PlannedWrite[] = [
    w('cpu', 'cpu.shares', cpuSharesFromMillicores(req.cpu)),
    w('cpu', 'cpu.cfs_period_us', CFS_PERIOD_US),
    w('cpu', 'cpu.cfs_quota_us', lim.cpu === undefined ? -1 : cfsQuotaUs(lim.cpu)),
    w('memory', 'memory.soft_limit_in_bytes', byteValue(req.memory ?? 0)),
    w('memory', 'memory.limit_in_bytes', memLimit),
    w('memory', 'memory.memsw.limit_in_bytes', memLimit, true),
    w('io', 'blkio.weight', blkioWeightV1(req.diskIo), true, ['blkio.bfq.weight']),
  ];
  const capped = lim.diskIo !== undefined && input.ioDevice !== undefined ? input.ioDevice : undefined;
  if (capped !== undefined) {
    const line = `${capped} ${byteValue(lim.diskIo ?? 0)}`;
    writes.push(w('io', 'blkio.throttle.read_bps_device', line));
    writes.push(w('io', 'blkio.throttle.write_bps_device', line));
  }
  for (const dev of input.accountDevices ?? []) {
    if (dev === capped) continue;
    const line = `${dev} ${V1_UNLIMITED_RULE_BPS}`;
    writes.push(w('io', 'blkio.throttle.read_bps_device', line, true));
    writes.push(w('io', 'blkio.throttle.write_bps_device', line, true));
  }
  return { writes, notes: ioCapNote(input) };
}
