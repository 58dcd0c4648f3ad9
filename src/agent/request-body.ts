/** Turns a validated API body into a ReservationRequest; quantities may be numbers or Kubernetes strings. */
import { RrmError } from '../model/errors.js';
import { DEFAULT_PRIORITY, parsePriority } from '../model/priority.js';
import { kindOf, parseQuantity, parseResourceName } from '../model/quantity.js';
import {
  ANY_INSTANCE,
  type Holder,
  type OnPreempt,
  type PackageRef,
  type PlacementStrategy,
  type ReservationRequest,
} from '../model/reservation.js';
import { DEFAULT_STRATEGY } from '../placement/place.js';
import { checkSelector } from '../placement/selector.js';
import { isBuiltin } from '../model/vector.js';
import type { Identity } from './policy.js';

export interface ReservationBody {
  requests: Record<string, number | string>;
  limits?: Record<string, number | string>;
  target?: string;
  selector?: Record<string, string>;
  strategy?: PlacementStrategy;
  mode?: 'hard' | 'soft';
  priority?: number | string;
  waitMs?: number;
  timeLimitMs?: number;
  leaseMs?: number;
  preemptible?: boolean;
  mayPreempt?: boolean;
  onPreempt?: OnPreempt;
  packages?: PackageRef[];
  command?: string[];
  idempotencyKey?: string;
  holder?: { host: string; pid: number; startTime?: number };
  retryOf?: string;
  attempt?: number;
}

export function parseVector(v: Record<string, number | string>, field: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [dim, amount] of Object.entries(v)) {
    if (!isBuiltin(dim)) parseResourceName(dim);
    if (typeof amount === 'number') {
      if (!Number.isSafeInteger(amount) || amount < 0) {
        throw new RrmError(
          'RRM_ERR_BAD_QUANTITY',
          `${field}.${dim}: ${amount} is not a non-negative integer`,
          { field: `${field}.${dim}` },
        );
      }
      out[dim] = amount;
    } else out[dim] = parseQuantity(amount, kindOf(dim), `${field}.${dim}`);
  }
  return out;
}

export function toRequest(
  body: ReservationBody,
  who: Identity,
  defaults: { target: string; leaseMs: number },
): ReservationRequest {
  const priority =
    body.priority === undefined
      ? DEFAULT_PRIORITY
      : typeof body.priority === 'number'
        ? body.priority
        : parsePriority(body.priority);
  const holder: Holder = {
    host: body.holder?.host ?? `remote:${who.name}`,
    pid: body.holder?.pid ?? 0,
    startTime: body.holder?.startTime ?? 0,
    owner: who.name,
  };
  const target = body.target ?? defaults.target;
  if ((body.selector || body.strategy) && target !== ANY_INSTANCE) {
    throw new RrmError('RRM_ERR_BAD_REQUEST', 'selector and strategy apply only with target "any"');
  }
  return {
    packages: body.packages ?? [],
    command: body.command,
    requests: parseVector(body.requests, 'requests'),
    limits: body.limits ? parseVector(body.limits, 'limits') : undefined,
    target,
    ...(target === ANY_INSTANCE
      ? {
          placement: {
            selector: checkSelector(body.selector ?? {}),
            strategy: body.strategy ?? DEFAULT_STRATEGY,
          },
        }
      : {}),
    mode: body.mode ?? 'hard',
    priority,
    waitMs: body.waitMs,
    timeLimitMs: body.timeLimitMs,
    preemptible: body.preemptible ?? true,
    mayPreempt: body.mayPreempt ?? true,
    onPreempt: body.onPreempt ?? 'requeue',
    leaseMs: body.leaseMs ?? defaults.leaseMs,
    holder,
    idempotencyKey: body.idempotencyKey ? `${who.name}:${body.idempotencyKey}` : undefined,
    retryOf: body.retryOf,
    attempt: body.attempt,
  };
}
