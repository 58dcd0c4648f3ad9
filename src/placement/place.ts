/**
 * Placement for `target: any`, after the kube-scheduler: filter the instances (up, labels match,
 * could ever hold the request), then rank them. Pure: it simulates the admission core's own
 * `submit` on each instance's snapshot, so "fits" means exactly what admission will decide.
 *
 *   grant    it would be granted now: scored by the strategy, best first;
 *   preempt  it would be granted once victims stop: the instance whose victims are of the lowest
 *            highest priority, then the fewest, then the lowest priority sum (one instance only;
 *            no preemption across instances);
 *   wait     it would queue: fewest waiters ahead, then earliest estimated start, then score.
 *
 * In fleets of more than 100 instances the scan stops once enough instances that would grant now
 * were found (enoughToScore), as the kube-scheduler samples nodes.
 *
 * Strategies score the requested dimensions after placement, 0..100, higher is better:
 *   least-allocated  mean free fraction (spreads load);
 *   most-allocated   mean used fraction (packs, leaving whole instances free);
 *   balanced         100 × (1 − spread of used fractions across dimensions).
 */
import { submit } from '../admission/transitions.js';
import { heldBy } from '../admission/holdings.js';
import type { InstanceSnapshot } from '../admission/snapshot.js';
import type { PlacementSpec, PlacementStrategy, ReservationRequest } from '../model/reservation.js';
import { add, get, sum, type ResourceVector, type Shortfall } from '../model/vector.js';
import { matchesSelector } from './selector.js';

export type Fit = 'grant' | 'preempt' | 'wait' | 'never';

export interface Candidate {
  readonly instance: string;
  readonly fit: Fit;
  readonly score: number;
  /** With `preempt`: the grants that would be stopped, and their priorities. */
  readonly victims: readonly { readonly id: string; readonly priority: number }[];
  /** With `wait`: waiters ahead; with `never`/`wait`: what is short. */
  readonly ahead: number;
  readonly estimatedStart?: number;
  readonly shortfall: readonly Shortfall[];
}

export interface Excluded {
  readonly instance: string;
  readonly why: 'down' | 'labels';
}

export interface Ranking {
  /** Instances that could take the request, best first: grants, then one preemption plan, then waits. */
  readonly candidates: readonly Candidate[];
  /** Instances that could never hold it (allocatable too small), with the shortfall. */
  readonly never: readonly Candidate[];
  readonly excluded: readonly Excluded[];
}

export const DEFAULT_STRATEGY: PlacementStrategy = 'least-allocated';
export const STRATEGIES: readonly PlacementStrategy[] = ['least-allocated', 'most-allocated', 'balanced'];

/** The fraction of each requested dimension that would be in use on `snap` after placing `requests`. */
function usedFractions(snap: InstanceSnapshot, requests: ResourceVector): number[] {
  const used = add(sum(snap.reservations.map(heldBy)), requests);
  const out: number[] = [];
  for (const dim of Object.keys(requests)) {
    const alloc = get(snap.instance.allocatable, dim);
    if (alloc > 0 && get(requests, dim) > 0) out.push(Math.min(1, get(used, dim) / alloc));
  }
  return out;
}

export function score(strategy: PlacementStrategy, snap: InstanceSnapshot, requests: ResourceVector): number {
  const used = usedFractions(snap, requests);
  if (used.length === 0) return 100;
  const mean = used.reduce((a, b) => a + b, 0) / used.length;
  switch (strategy) {
    case 'least-allocated':
      return 100 * (1 - mean);
    case 'most-allocated':
      return 100 * mean;
    case 'balanced': {
      const variance = used.reduce((a, u) => a + (u - mean) ** 2, 0) / used.length;
      return 100 * (1 - Math.sqrt(variance));
    }
  }
}

/**
 * How many instances that would grant now are enough to choose among, as the kube-scheduler's
 * adaptive percentageOfNodesToScore: every one up to 100 instances, then a share falling from
 * 50% towards 5% as the fleet grows (at least 100). Once that many are found the rest are not
 * simulated, so a placement in a large fleet costs less than one simulation per instance.
 */
export function enoughToScore(instances: number): number {
  if (instances <= 100) return instances;
  const percent = Math.max(5, 50 - instances / 125);
  return Math.max(100, Math.floor((instances * percent) / 100));
}

/** Simulates admission of `request` on one instance. */
export function classify(
  snap: InstanceSnapshot,
  request: ReservationRequest,
  strategy: PlacementStrategy,
  now: number,
): Candidate {
  const probe = submit(
    snap,
    {
      id: '\u0000probe',
      tokenHash: '',
      request: { ...request, target: snap.instance.id, waitMs: undefined },
    },
    now,
  ).outcome;
  const base = {
    instance: snap.instance.id,
    score: score(strategy, snap, request.requests),
    victims: [] as { id: string; priority: number }[],
    ahead: 0,
    shortfall: [] as readonly Shortfall[],
  };
  if (probe.kind === 'granted') return { ...base, fit: 'grant' };
  if (probe.kind === 'rejected') return { ...base, fit: 'never', shortfall: probe.shortfall };
  const st = probe.status;
  if (st.victims.length > 0) {
    const prio = new Map(snap.reservations.map((r) => [r.id, r.priority]));
    return {
      ...base,
      fit: 'preempt',
      victims: st.victims.map((id) => ({ id, priority: prio.get(id) ?? 0 })),
      shortfall: st.shortfall,
    };
  }
  return {
    ...base,
    fit: 'wait',
    ahead: st.position - 1,
    estimatedStart: st.estimatedStart,
    shortfall: st.shortfall,
  };
}

/** FNV-1a: a cheap, stable hash to order equal scores. */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/**
 * Best score first. Equal scores go by instance id, or, given a salt, in an order the salt
 * shuffles (the kube-scheduler picks at random among the best), so that a crowd of requests
 * does not pile onto the alphabetically first of many empty instances.
 */
function scoreOrder(salt: string | undefined): (a: Candidate, b: Candidate) => number {
  const tie = (a: Candidate, b: Candidate): number =>
    salt === undefined
      ? a.instance < b.instance
        ? -1
        : a.instance > b.instance
          ? 1
          : 0
      : hash(salt + a.instance) - hash(salt + b.instance);
  return (a, b) => b.score - a.score || tie(a, b);
}

function comparePreemption(a: Candidate, b: Candidate): number {
  const top = (c: Candidate): number => Math.max(...c.victims.map((v) => v.priority));
  const total = (c: Candidate): number => c.victims.reduce((s, v) => s + v.priority, 0);
  return top(a) - top(b) || a.victims.length - b.victims.length || total(a) - total(b);
}

function compareWait(a: Candidate, b: Candidate): number {
  const start = (c: Candidate): number => c.estimatedStart ?? Number.MAX_SAFE_INTEGER;
  return a.ahead - b.ahead || start(a) - start(b);
}

/**
 * Ranks every instance for `request`. `down` is read off the snapshots; `exclude` removes instances
 * the caller already holds a place on (a waiter looking to move); `salt` shuffles equal scores.
 */
export function rankInstances(
  snaps: readonly InstanceSnapshot[],
  request: ReservationRequest,
  spec: PlacementSpec,
  now: number,
  exclude: ReadonlySet<string> = new Set(),
  salt?: string,
): Ranking {
  const byScore = scoreOrder(salt);
  const excluded: Excluded[] = [];
  const all: Candidate[] = [];
  const enough = enoughToScore(snaps.length);
  let grants = 0;
  // Start at a salted offset, so that sampled placements spread over the whole fleet.
  const start = salt === undefined || snaps.length === 0 ? 0 : hash(salt) % snaps.length;
  for (let k = 0; k < snaps.length; k++) {
    const snap = snaps[(start + k) % snaps.length] as InstanceSnapshot;
    const id = snap.instance.id;
    if (exclude.has(id)) continue;
    if (snap.down) excluded.push({ instance: id, why: 'down' });
    else if (!matchesSelector(snap.instance.labels, spec.selector))
      excluded.push({ instance: id, why: 'labels' });
    else if (grants < enough) {
      const c = classify(snap, request, spec.strategy, now);
      all.push(c);
      if (c.fit === 'grant') grants++;
    }
  }
  const of = (fit: Fit): Candidate[] => all.filter((c) => c.fit === fit);
  const preempt = of('preempt').sort((a, b) => comparePreemption(a, b) || byScore(a, b));
  return {
    candidates: [
      ...of('grant').sort(byScore),
      ...preempt.slice(0, 1),
      ...of('wait').sort((a, b) => compareWait(a, b) || byScore(a, b)),
    ],
    never: of('never').sort(byScore),
    // By name, whatever instance the scan started at, so messages read the same every time.
    excluded: excluded.sort((a, b) => (a.instance < b.instance ? -1 : a.instance > b.instance ? 1 : 0)),
  };
}
