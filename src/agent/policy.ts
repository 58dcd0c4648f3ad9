/** Who may ask for what: priority classes per identity and per-owner quotas. Pure. */
import { RrmError } from '../model/errors.js';
import { formatPriority } from '../model/priority.js';
import type { Reservation } from '../model/reservation.js';
import { add, shortfall, sum, type ResourceVector } from '../model/vector.js';
import type { AgentPolicy } from './agent-config.js';

export interface Identity {
  readonly name: string;
  readonly admin: boolean;
}

export function maxPriorityOf(who: Identity, policy: AgentPolicy): number {
  if (who.admin) return Number.MAX_SAFE_INTEGER;
  return policy.maxPriority[who.name] ?? policy.maxPriority['*'] ?? 0;
}

export function checkPriority(who: Identity, priority: number, policy: AgentPolicy): void {
  const max = maxPriorityOf(who, policy);
  if (priority > max) {
    throw new RrmError(
      'RRM_ERR_FORBIDDEN',
      `${who.name} may not ask for priority ${formatPriority(priority)} (at most ${formatPriority(max)})`,
      {
        identity: who.name,
        priority,
        max,
      },
    );
  }
}

/** Throws RRM_ERR_QUOTA when `owner`'s active reservations plus `requests` exceed its quota. */
export function checkQuota(
  active: readonly Reservation[],
  owner: string,
  requests: ResourceVector,
  policy: AgentPolicy,
): void {
  const quota = policy.quotas[owner] ?? policy.quotas['*'];
  if (!quota) return;
  const held = sum(
    active
      .filter((r) => r.holder.owner === owner && (r.state === 'granted' || r.state === 'queued'))
      .map((r) => r.requests),
  );
  const over = shortfall(add(held, requests), quota).filter((s) => quota[s.dimension] !== undefined);
  if (over.length > 0) {
    throw new RrmError(
      'RRM_ERR_QUOTA',
      `${owner} would exceed its quota: ${over.map((o) => `${o.dimension} ${o.need} > ${o.free}`).join(', ')}`,
      {
        owner,
        quota,
        held,
        over,
      },
    );
  }
}
