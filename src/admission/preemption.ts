/**
 * Preemption planning, after the kube-scheduler: start from every eligible victim, then reprieve
 * as many as possible, most valuable first (highest priority, hard before soft, oldest grant first),
 * so the victims left are few, of the lowest priority, soft before hard, newest first.
 * Eligible: granted, preemptible, strictly lower priority than the preemptor, not already being stopped.
 */
import type { Reservation } from '../model/reservation.js';
import { add, fits, sub, sum, type ResourceVector } from '../model/vector.js';

export interface Preemptor {
  readonly requests: ResourceVector;
  readonly priority: number;
  readonly mode: 'hard' | 'soft';
  readonly mayPreempt: boolean;
}

export function canPreempt(p: Preemptor): boolean {
  return p.mode === 'hard' && p.mayPreempt;
}

export function isEligibleVictim(victim: Reservation, p: Preemptor): boolean {
  return (
    victim.state === 'granted' &&
    victim.preemptible &&
    victim.priority < p.priority &&
    victim.preemptRequestedAt === undefined
  );
}

/** Most valuable first: the order in which victims are reprieved. */
function compareValue(a: Reservation, b: Reservation): number {
  const modeRank = (r: Reservation): number => (r.mode === 'hard' ? 0 : 1);
  return b.priority - a.priority || modeRank(a) - modeRank(b) || (a.grantSeq ?? 0) - (b.grantSeq ?? 0);
}

/**
 * Victims whose release lets `p` fit into `free`, or null when no allowed set is enough.
 * `free` is what is free once in-flight victims finish. Returns [] when it already fits.
 */
export function planPreemption(
  p: Preemptor,
  free: ResourceVector,
  grants: readonly Reservation[],
): Reservation[] | null {
  if (fits(p.requests, free)) return [];
  if (!canPreempt(p)) return null;
  const candidates = grants.filter((g) => isEligibleVictim(g, p)).sort(compareValue);
  let avail = add(free, sum(candidates.map((c) => c.requests)));
  if (!fits(p.requests, avail)) return null;
  const victims: Reservation[] = [];
  for (const c of candidates) {
    const without = sub(avail, c.requests);
    if (fits(p.requests, without)) avail = without;
    else victims.push(c);
  }
  return victims.reverse();
}
