/**
 * What a reservation request would do now, without doing it: the pure `submit` decided on a
 * snapshot and thrown away. `rrm run --dry-run` and the agent's dry-run route both answer with it.
 */
import type { Shortfall } from '../model/vector.js';
import type { ReservationRequest } from '../model/reservation.js';
import type { InstanceSnapshot } from './snapshot.js';
import { submit } from './transitions.js';

export interface Prediction {
  /** In words: "grant now", "queue at position 2", "preempt rsv_…", "reject: …". */
  readonly would: string;
  readonly position?: number;
  readonly ahead?: readonly string[];
  readonly shortfall?: readonly Shortfall[];
  readonly victims?: readonly string[];
}

export function predict(snap: InstanceSnapshot, request: ReservationRequest, now: number): Prediction {
  const outcome = submit(snap, { id: 'rsv_dry-run', tokenHash: '', request }, now).outcome;
  if (outcome.kind === 'granted') return { would: 'grant now' };
  if (outcome.kind === 'queued') {
    const s = outcome.status;
    return {
      would: s.victims.length ? `preempt ${s.victims.join(', ')}` : `queue at position ${s.position}`,
      position: s.position,
      ahead: s.ahead,
      shortfall: s.shortfall,
      victims: s.victims,
    };
  }
  return {
    would:
      outcome.code === 'RRM_ERR_UNSATISFIABLE'
        ? 'reject: can never fit'
        : outcome.code === 'RRM_ERR_INSTANCE_DOWN'
          ? 'reject: the instance is down'
          : 'reject: no capacity now',
    shortfall: outcome.shortfall,
  };
}
