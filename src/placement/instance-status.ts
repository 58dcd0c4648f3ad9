/** What `rrm instances` and GET /v1/instances/status show of each instance. Pure. */
import { heldBy } from '../admission/holdings.js';
import type { InstanceRecord, InstanceSnapshot } from '../admission/snapshot.js';
import type { AgentPresence } from '../model/presence.js';
import { sub, sum, type ResourceVector } from '../model/vector.js';

export interface InstanceStatus {
  readonly instance: InstanceRecord;
  /** up: an agent holds it; down: its agent's lease lapsed; unmanaged: no agent ever registered it. */
  readonly state: 'up' | 'down' | 'unmanaged';
  readonly agent?: AgentPresence;
  readonly granted: ResourceVector;
  readonly free: ResourceVector;
  readonly grants: number;
  readonly queued: number;
}

export function instanceStatus(snap: InstanceSnapshot): InstanceStatus {
  const granted = sum(snap.reservations.map(heldBy));
  return {
    instance: snap.instance,
    state: snap.down ? 'down' : snap.agent ? 'up' : 'unmanaged',
    ...(snap.agent ? { agent: snap.agent } : {}),
    granted,
    free: sub(snap.instance.allocatable, granted),
    grants: snap.reservations.filter((r) => r.state === 'granted').length,
    queued: snap.reservations.filter((r) => r.state === 'queued').length,
  };
}
