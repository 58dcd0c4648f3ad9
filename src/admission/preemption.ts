/**
 * Preemption planning, after the kube-scheduler: start from every eligible victim, then reprieve
 * as many as possible, most valuable first (highest priority, hard before soft, oldest grant first),
 * so the victims left are few, of the lowest priority, soft before hard, newest first; where one
 * grant of no higher priority would do instead of several, that one.
 * Eligible: granted, preemptible, strictly lower priority than the preemptor, not already being stopped.
 *
 * Victims that asked to be paused are paused only where that is enough: a plan in which they free
 * just their CPU, disk I/O and network is tried first; if no such plan fits, every victim is evicted.
 */
import type { PreemptAction, Reservation } from '../model/reservation.js';
import { add, fits, sub, sum, type ResourceVector } from '../model/vector.js';
import { freedBy } from './holdings.js';

export interface Preemptor {
  readonly requests: ResourceVector;
  readonly priority: number;
  readonly mode: 'hard' | 'soft';
  readonly mayPreempt: boolean;
}

export interface Victim {
  readonly reservation: Reservation;
  readonly action: PreemptAction;
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

function reprieve(
  need: ResourceVector,
  free: ResourceVector,
  candidates: readonly Reservation[],
  frees: (r: Reservation) => ResourceVector,
): Reservation[] | null {
  let avail = add(free, sum(candidates.map(frees)));
  if (!fits(need, avail)) return null;
  const victims: Reservation[] = [];
  for (const c of candidates) {
    const without = sub(avail, frees(c));
    if (fits(need, without)) avail = without;
    else victims.push(c);
  }
  return fewer(need, free, candidates, frees, victims) ?? victims.reverse();
}

/**
 * Reprieving the most valuable first can leave several small victims where one larger grant of no
 * higher priority (and no harder mode) would do alone: then that one, the least valuable such.
 */
function fewer(
  need: ResourceVector,
  free: ResourceVector,
  candidates: readonly Reservation[],
  frees: (r: Reservation) => ResourceVector,
  victims: readonly Reservation[],
): Reservation[] | undefined {
  if (victims.length < 2) return undefined;
  const lowest = Math.min(...victims.map((v) => v.priority));
  const allHard = victims.every((v) => v.mode === 'hard');
  for (let i = candidates.length - 1; i >= 0; i--) {
    const c = candidates[i] as Reservation;
    if (c.priority > lowest || (c.mode === 'hard' && !allHard)) continue;
    if (fits(need, add(free, frees(c)))) return [c];
  }
  return undefined;
}

/**
 * Victims whose pausing or eviction lets `p` fit into `free`, or null when no allowed set is enough.
 * `free` is what is free once in-flight victims finish. Returns [] when it already fits.
 */
export function planPreemption(
  p: Preemptor,
  free: ResourceVector,
  grants: readonly Reservation[],
): Victim[] | null {
  if (fits(p.requests, free)) return [];
  if (!canPreempt(p)) return null;
  const candidates = grants.filter((g) => isEligibleVictim(g, p)).sort(compareValue);
  const pauses = (r: Reservation): boolean => r.onPreempt === 'pause' && r.pausedAt === undefined;
  if (candidates.some(pauses)) {
    const gentle = reprieve(p.requests, free, candidates, (r) => freedBy(r, pauses(r) ? 'pause' : 'evict'));
    if (gentle) return gentle.map((r) => ({ reservation: r, action: pauses(r) ? 'pause' : 'evict' }));
  }
  const hard = reprieve(p.requests, free, candidates, (r) => freedBy(r, 'evict'));
  return hard ? hard.map((r) => ({ reservation: r, action: 'evict' })) : null;
}
