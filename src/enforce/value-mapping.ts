/**
 * Mapping of reservation amounts onto cgroup knob values. Pure.
 *
 * CPU proportion: one reserved core (1000m) equals the kernel's default share, so an unreserved
 * sibling and a 1-core reservation compete equally.
 *   v1 cpu.shares = clamp(2..262144, round(millicores × 1024 / 1000))   (1000m → 1024, the default)
 *   v2 cpu.weight = clamp(1..10000,  round(millicores / 10))             (1000m → 100,  the default)
 * (this is systemd's CPUShares↔CPUWeight convention: weight = shares × 100 / 1024).
 * CPU cap: quota = round(limitMillicores × period / 1000) µs per period of 100 000 µs, at least
 * 1000 µs (the kernel minimum); v2 writes `quota period` to cpu.max, v1 cpu.cfs_quota_us.
 * Disk bandwidth proportion: 1 MiB/s of reserved diskIo = 1 weight unit, so 100 MiB/s is the
 * default weight; v2 io.weight clamp(1..10000), v1 blkio.weight clamp(10..1000).
 */

export const CFS_PERIOD_US = 100_000;
export const MIN_CFS_QUOTA_US = 1_000;
export const V1_DEFAULT_SHARES = 1024;
export const V2_DEFAULT_WEIGHT = 100;
const MIB = 1024 * 1024;

export function clamp(lo: number, hi: number, n: number): number {
  return Math.min(hi, Math.max(lo, n));
}

function nonNegative(n: number | undefined, what: string): number {
  const v = n ?? 0;
  if (!Number.isFinite(v) || v < 0) throw new RangeError(`${what} must be a finite number ≥ 0, got ${v}`);
  return v;
}

export function cpuSharesFromMillicores(millicores: number | undefined): number {
  return clamp(2, 262_144, Math.round((nonNegative(millicores, 'cpu') * 1024) / 1000));
}

export function cpuWeightFromMillicores(millicores: number | undefined): number {
  return clamp(1, 10_000, Math.round(nonNegative(millicores, 'cpu') / 10));
}

export function cfsQuotaUs(limitMillicores: number, periodUs: number = CFS_PERIOD_US): number {
  return Math.max(
    MIN_CFS_QUOTA_US,
    Math.round((nonNegative(limitMillicores, 'cpu limit') * periodUs) / 1000),
  );
}

/** v2 cpu.max: `quota period`, or `max period` when uncapped. */
export function cpuMaxValue(limitMillicores: number | undefined, periodUs: number = CFS_PERIOD_US): string {
  return limitMillicores === undefined
    ? `max ${periodUs}`
    : `${cfsQuotaUs(limitMillicores, periodUs)} ${periodUs}`;
}

export function ioWeightV2(bytesPerSec: number | undefined): number {
  return clamp(1, 10_000, Math.round(nonNegative(bytesPerSec, 'diskIo') / MIB));
}

export function blkioWeightV1(bytesPerSec: number | undefined): number {
  return clamp(10, 1000, Math.round(nonNegative(bytesPerSec, 'diskIo') / MIB));
}

/** Bytes as the integer string the kernel expects. */
export function byteValue(n: number): string {
  return String(Math.floor(nonNegative(n, 'bytes')));
}

/** Sum of children's proportional weights for the parent, clamped; the default when there are none. */
export function aggregateWeight(children: readonly number[], lo: number, hi: number, dflt: number): number {
  if (children.length === 0) return dflt;
  return clamp(
    lo,
    hi,
    children.reduce((a, b) => a + b, 0),
  );
}
