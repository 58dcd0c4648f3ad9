/**
 * The SDK, after the seed's pseudocode:
 *
 *   const handle = await requestResourceReservation({ requests: { cpu: '1', memory: '1Gi' } });
 *   try { await install(); } finally { await releaseResourceReservation(handle); }
 *
 * or `await withReservation(request, async (handle) => install())`, or `await using handle = ...`.
 * The lease is renewed in the background; `handle.signal` aborts if the grant is lost or preempted.
 */
import { hostname, userInfo } from 'node:os';
import { compileConfig } from '../config.js';
import { processStartTime } from '../host/process-identity.js';
import type { LedgerClient } from '../ledger/ledger-client.js';
import { chooseAgent, connectLedger } from './connect.js';
import { RrmError } from '../model/errors.js';
import { DEFAULT_PRIORITY, parsePriority } from '../model/priority.js';
import { kindOf, parseQuantity } from '../model/quantity.js';
import {
  ANY_INSTANCE,
  type Mode,
  type PackageRef,
  type PlacementStrategy,
  type ReservationHandle,
  type ReservationRequest,
} from '../model/reservation.js';
import { DEFAULT_STRATEGY } from '../placement/place.js';
import { checkSelector, parseSelector } from '../placement/selector.js';
import type { WaitStatus } from '../admission/schedule.js';
import { acquire } from './acquire.js';
import { LeaseKeeper } from './lease-keeper.js';

export interface ReservationInput {
  /** Quantities as numbers in base units or Kubernetes strings: { cpu: '500m', memory: '1Gi', 'dpkg-lock': 1 }. */
  readonly requests: Readonly<Record<string, number | string>>;
  readonly limits?: Readonly<Record<string, number | string>>;
  readonly packages?: readonly PackageRef[];
  readonly mode?: Mode;
  readonly priority?: number | string;
  /** ms to wait in the queue; 0 fails fast; undefined waits without limit. */
  readonly waitMs?: number;
  readonly timeLimitMs?: number;
  readonly preemptible?: boolean;
  readonly mayPreempt?: boolean;
  /** An instance id, or `any` to let placement choose among the fleet's instances (default: this host's). */
  readonly target?: string;
  /** With `target: 'any'`: `zone=a,os=debian` or a map; values starting with `!` must differ. */
  readonly selector?: string | Readonly<Record<string, string>>;
  readonly strategy?: PlacementStrategy;
}

export interface SdkOptions {
  readonly stateDir?: string;
  /** The ledger URL (see `rrm --help`); default RRM_LEDGER, else the embedded SQLite file. */
  readonly ledger?: string;
  /** An agent to go through (unix:/path, /path, http:// or https://host:port); see chooseAgent for the default. */
  readonly agent?: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly onWait?: (status: WaitStatus) => void;
  readonly signal?: AbortSignal;
}

export interface HeldReservation extends ReservationHandle {
  /** Aborted when the grant is lost or a higher-priority request asks for it: stop work, then release. */
  readonly signal: AbortSignal;
  release(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

function vectorOf(input: Readonly<Record<string, number | string>>, what: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [dim, v] of Object.entries(input)) {
    if (typeof v === 'number') {
      if (!Number.isSafeInteger(v) || v < 0)
        throw new RrmError('RRM_ERR_BAD_QUANTITY', `${what}.${dim}: ${v} is not a non-negative integer`);
      out[dim] = v;
    } else out[dim] = parseQuantity(v, kindOf(dim), `${what}.${dim}`);
  }
  return out;
}

const held = new WeakMap<ReservationHandle, () => Promise<void>>();

export async function requestResourceReservation(
  input: ReservationInput,
  opts: SdkOptions = {},
): Promise<HeldReservation> {
  const env = opts.env ?? process.env;
  const config = compileConfig(env, { stateDir: opts.stateDir, ledger: opts.ledger });
  const target = input.target ?? config.instanceId;
  if ((input.selector !== undefined || input.strategy !== undefined) && target !== ANY_INSTANCE) {
    throw new RrmError('RRM_ERR_BAD_REQUEST', 'selector and strategy apply only with target "any"');
  }
  const selector =
    typeof input.selector === 'string' ? parseSelector(input.selector) : checkSelector(input.selector ?? {});
  const request: ReservationRequest = {
    packages: input.packages ?? [],
    requests: vectorOf(input.requests, 'requests'),
    limits: input.limits ? vectorOf(input.limits, 'limits') : undefined,
    target,
    ...(target === ANY_INSTANCE
      ? { placement: { selector, strategy: input.strategy ?? DEFAULT_STRATEGY } }
      : {}),
    mode: input.mode ?? 'hard',
    priority:
      input.priority === undefined
        ? DEFAULT_PRIORITY
        : typeof input.priority === 'number'
          ? input.priority
          : parsePriority(input.priority),
    waitMs: input.waitMs,
    timeLimitMs: input.timeLimitMs,
    preemptible: input.preemptible ?? true,
    mayPreempt: input.mayPreempt ?? true,
    onPreempt: 'fail',
    leaseMs: config.leaseMs,
    holder: {
      host: hostname(),
      pid: process.pid,
      startTime: processStartTime(process.pid),
      owner: userInfo().username,
    },
  };
  const ledger: LedgerClient = await connectLedger(
    config,
    chooseAgent(env, opts.agent, opts.stateDir !== undefined),
  );
  let acquired;
  try {
    acquired = await acquire(ledger, request, {
      pollMs: config.pollMs,
      signal: opts.signal,
      onWait: (s) => opts.onWait?.(s),
    });
  } catch (e) {
    await ledger.close();
    throw e;
  }
  const { handle } = acquired;
  const lost = new AbortController();
  const keeper = new LeaseKeeper(
    ledger,
    handle,
    config.leaseMs,
    {
      onPreempt: () =>
        lost.abort(
          new RrmError('RRM_ERR_PREEMPTED', `${handle.id} is asked to stop for a higher-priority request`),
        ),
      onLost: (r) => lost.abort(new RrmError('RRM_ERR_NOT_GRANTED', `${handle.id} is ${r?.state ?? 'gone'}`)),
    },
    config.pollMs,
  );
  let released: Promise<void> | undefined;
  const release = (): Promise<void> =>
    (released ??= (async () => {
      keeper.stop();
      try {
        await ledger.release(handle.id, { token: handle.token });
      } finally {
        await ledger.close();
      }
    })());
  const result: HeldReservation = { ...handle, signal: lost.signal, release, [Symbol.asyncDispose]: release };
  held.set(result, release);
  return result;
}

/** Releases a reservation from requestResourceReservation. Idempotent. */
export async function releaseResourceReservation(handle: ReservationHandle): Promise<void> {
  const release = held.get(handle);
  if (!release)
    throw new RrmError('RRM_ERR_NOT_FOUND', `${handle.id} was not reserved through this SDK in this process`);
  await release();
}

/** Runs `fn` inside a reservation and releases it in a finally, whatever happens. */
export async function withReservation<T>(
  input: ReservationInput,
  fn: (handle: HeldReservation) => Promise<T>,
  opts: SdkOptions = {},
): Promise<T> {
  const handle = await requestResourceReservation(input, opts);
  try {
    return await fn(handle);
  } finally {
    await handle.release();
  }
}
