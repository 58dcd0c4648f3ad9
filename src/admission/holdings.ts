/**
 * What a reservation holds right now. A paused (frozen) grant gives back CPU, disk I/O and network
 * bandwidth, but keeps its memory, disk space and named resources.
 */
import type { Reservation } from '../model/reservation.js';
import { EMPTY, sub, type ResourceVector } from '../model/vector.js';

export const PAUSABLE_DIMENSIONS: readonly string[] = ['cpu', 'diskIo', 'network'];

/** The part of `v` that pausing frees. */
export function pausablePart(v: ResourceVector): ResourceVector {
  const out: Record<string, number> = {};
  for (const d of PAUSABLE_DIMENSIONS) if (v[d]) out[d] = v[d] as number;
  return out;
}

export function heldBy(r: Reservation): ResourceVector {
  if (r.state !== 'granted') return EMPTY;
  return r.pausedAt !== undefined ? sub(r.requests, pausablePart(r.requests)) : r.requests;
}

/** What a victim frees once it has done what it was asked. */
export function freedBy(r: Reservation, action: 'pause' | 'evict'): ResourceVector {
  return action === 'pause' ? pausablePart(heldBy(r)) : heldBy(r);
}
