/** Queue order: higher priority first, then earlier arrival. */
import type { Reservation } from '../model/reservation.js';

export function compareQueue(a: Reservation, b: Reservation): number {
  return b.priority - a.priority || a.arrival - b.arrival;
}

export function inQueueOrder(waiters: Iterable<Reservation>): Reservation[] {
  return [...waiters].sort(compareQueue);
}
