/** Builders for pure-core tests: snapshots and requests without any I/O. */
import type { InstanceSnapshot } from '../../src/admission/snapshot.js';
import type { ReservationRequest } from '../../src/model/reservation.js';
import type { ResourceVector } from '../../src/model/vector.js';

export function emptySnapshot(allocatable: ResourceVector, id = 'local'): InstanceSnapshot {
  return {
    instance: { id, capacity: allocatable, allocatable, revision: 0, seq: 0, labels: {} },
    reservations: [],
  };
}

export function request(
  over: Partial<ReservationRequest> & { requests: ResourceVector },
): ReservationRequest {
  return {
    packages: [],
    target: 'local',
    mode: 'hard',
    priority: 500,
    preemptible: true,
    mayPreempt: true,
    onPreempt: 'requeue',
    leaseMs: 30_000,
    holder: { host: 'test', pid: 1, startTime: 0, owner: 'test' },
    ...over,
  };
}
