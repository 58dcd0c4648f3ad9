/**
 * The caps a reservation runs under. Pure.
 *
 * - `spec.limits` given → used as given; a dimension absent from it is not capped.
 * - otherwise a hard reservation is capped at request × (1 + margin) for cpu and memory
 *   (rounded up to whole millicores / bytes); other dimensions are not capped.
 * - otherwise a soft reservation is not capped, except its memory where the host has no memory
 *   guarantee (cgroup v1): there every install is capped, so none eats into a hard reservation.
 * A cap below the request on any dimension is contradictory and rejected.
 */
import type { ResourceVector } from '../model/vector.js';
import type { LimitSpec } from './enforcer.js';

export const DEFAULT_MARGIN_FRACTION = 0.25;
export const DEFAULT_CAPPED_DIMENSIONS = ['cpu', 'memory'] as const;

function checkVector(v: ResourceVector, what: string): void {
  for (const [k, n] of Object.entries(v)) {
    if (!Number.isFinite(n) || n < 0)
      throw new RangeError(`${what}.${k} must be a finite number ≥ 0, got ${n}`);
  }
}

export function effectiveLimits(
  spec: LimitSpec,
  marginFraction: number = DEFAULT_MARGIN_FRACTION,
  capSoftMemory = false,
): ResourceVector {
  if (!Number.isFinite(marginFraction) || marginFraction < 0) {
    throw new RangeError(`marginFraction must be a finite number ≥ 0, got ${marginFraction}`);
  }
  checkVector(spec.requests, 'requests');
  if (spec.limits !== undefined) {
    checkVector(spec.limits, 'limits');
    for (const [k, cap] of Object.entries(spec.limits)) {
      const req = spec.requests[k] ?? 0;
      if (cap < req) throw new RangeError(`limits.${k} (${cap}) is below requests.${k} (${req})`);
    }
    return Object.freeze({ ...spec.limits });
  }
  const out: Record<string, number> = {};
  const capped = spec.mode === 'hard' ? DEFAULT_CAPPED_DIMENSIONS : capSoftMemory ? ['memory'] : [];
  for (const k of capped) {
    const req = spec.requests[k] ?? 0;
    if (req > 0) out[k] = Math.ceil(req * (1 + marginFraction));
  }
  return Object.freeze(out);
}
