/**
 * One install under a reservation, start to end: reserve (and wait), run the command inside the
 * reservation's cgroup, measure it, release in a finally; when it is evicted with `requeue`, queue
 * again and rerun. Used by `rrm run` in the caller's process and by the agent for remote installs.
 */
import type { WaitStatus } from '../admission/schedule.js';
import { acquire } from '../client/acquire.js';
import type { Enforcer, Slot } from '../enforce/enforcer.js';
import type { LedgerClient } from '../ledger/ledger-client.js';
import { formatDuration } from '../model/duration.js';
import { RrmError } from '../model/errors.js';
import { formatDimension, formatVector } from '../model/quantity.js';
import type { Reservation, ReservationRequest } from '../model/reservation.js';
import type { ResourceVector } from '../model/vector.js';
import { supervise, type OutputSink, type RunResult } from './supervise.js';

export type Say = (event: string, text: string, data?: Record<string, unknown>) => void;

export interface InstallHooks {
  readonly say: Say;
  readonly onWait?: (status: WaitStatus, r: Reservation) => void;
  /** Aborting while waiting gives up the queue place; aborting while running stops the command. */
  readonly signal?: AbortSignal;
  /** Forward SIGINT/SIGTERM/SIGHUP received by this process to the command (the CLI does). */
  readonly forwardSignals: boolean;
  /** Where the command's output goes; undefined = inherit this process's stdio. */
  readonly output?: OutputSink;
  readonly env: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** Called with every run that ended by itself (success, failure, OOM kill): the history sample. */
  readonly onFinished?: (
    result: RunResult,
    grant: { id: string; granted: ResourceVector; limits: ResourceVector },
  ) => void;
}

export interface InstallTiming {
  readonly pollMs: number;
  readonly graceMs: number;
}

export interface InstallOutcome {
  readonly exitCode: number;
  readonly reservationId: string;
  readonly attempts: number;
  readonly usage: Record<string, number>;
}

/** Aborted while waiting: nothing ran. `reason` is what aborted it (a signal name for the CLI). */
export class WaitAborted extends Error {
  constructor(readonly reason: unknown) {
    super(`stopped waiting: ${String(reason)}`);
  }
}

export async function runInstall(
  ledger: LedgerClient,
  enforcer: Enforcer,
  first: ReservationRequest,
  hooks: InstallHooks,
  timing: InstallTiming,
): Promise<InstallOutcome> {
  const { say } = hooks;
  let request = first;
  for (let attempt = first.attempt ?? 1; ; attempt++) {
    let acquired;
    try {
      acquired = await acquire(ledger, request, {
        pollMs: timing.pollMs,
        signal: hooks.signal,
        onWait: hooks.onWait,
      });
    } catch (e) {
      if (hooks.signal?.aborted) throw new WaitAborted(hooks.signal.reason);
      throw e;
    }
    const { handle, reservation, waitedMs } = acquired;
    say(
      'granted',
      `${handle.id} granted ${formatVector(handle.granted)}${waitedMs ? ` after waiting ${formatDuration(waitedMs)}` : ''}`,
      {
        id: handle.id,
        granted: handle.granted,
        waitedMs,
        attempt,
      },
    );
    let result: RunResult | undefined;
    let slot: Slot | undefined;
    let limits: ResourceVector = {};
    try {
      slot = await enforcer.create(handle.id, {
        mode: request.mode,
        requests: handle.granted,
        limits: handle.limits,
      });
      limits = slot.limits;
      result = await supervise({
        argv: request.command ?? [],
        env: hooks.env,
        cwd: hooks.cwd,
        ledger,
        handle,
        slot,
        leaseMs: request.leaseMs,
        pollMs: timing.pollMs,
        graceMs: timing.graceMs,
        deadline: reservation.deadline,
        forwardSignals: hooks.forwardSignals,
        stop: hooks.signal,
        output: hooks.output,
        onPause: () =>
          say('paused', `${handle.id} paused (frozen) for a higher-priority request`, { id: handle.id }),
        onResume: (ms) =>
          say('resumed', `${handle.id} resumed after ${formatDuration(ms)} paused`, {
            id: handle.id,
            pausedMs: ms,
          }),
      });
    } finally {
      // A signal now would end rrm between the command and its release: hold it until released.
      const held = hooks.forwardSignals ? holdSignals() : undefined;
      await slot?.destroy().catch(() => undefined);
      await ledger
        .release(
          handle.id,
          { token: handle.token },
          {
            end: result?.stoppedFor === 'time-limit' ? 'timed-out' : 'released',
            usage: result ? measuredUsage(result) : undefined,
            reason: result ? endReason(result) : 'rrm failed before the command ended',
          },
        )
        .catch((e) =>
          say('release-failed', `could not release ${handle.id}: ${e instanceof Error ? e.message : e}`),
        )
        .finally(() => held?.());
    }
    const usage = measuredUsage(result);
    if (result.spawnError) {
      throw new RrmError(
        'RRM_ERR_COMMAND_NOT_FOUND',
        `could not start ${request.command?.[0]}: ${result.spawnError}`,
        { id: handle.id },
      );
    }
    if (result.stoppedFor === 'preempted') {
      if (request.onPreempt === 'fail') {
        throw new RrmError(
          'RRM_ERR_PREEMPTED',
          `${handle.id} was preempted after ${formatDuration(result.wallMs)}; not retried (--on-preempt fail)`,
          {
            id: handle.id,
          },
        );
      }
      say(
        'requeued',
        `${handle.id} preempted after ${formatDuration(result.wallMs)}; the command was stopped and is queued again`,
        {
          id: handle.id,
          attempt,
        },
      );
      request = { ...request, retryOf: handle.id, attempt: attempt + 1 };
      continue;
    }
    if (result.stoppedFor === 'time-limit') {
      throw new RrmError(
        'RRM_ERR_TIME_LIMIT',
        `${handle.id}: the command reached its time limit of ${formatDuration(request.timeLimitMs ?? 0)} and was stopped`,
        {
          id: handle.id,
        },
      );
    }
    if (result.stoppedFor === 'lost') {
      throw new RrmError(
        'RRM_ERR_NOT_GRANTED',
        `${handle.id} was ${result.lost?.state ?? 'lost'} (${result.lost?.reason ?? 'no longer in the ledger'}); the command was stopped`,
        {
          id: handle.id,
        },
      );
    }
    // The run ended by itself (success, failure or OOM kill): what it measured is a history sample.
    hooks.onFinished?.(result, { id: handle.id, granted: handle.granted, limits });
    if ((usage.oomKills ?? 0) > 0 && result.exitCode !== 0) {
      const limit = limits.memory;
      throw new RrmError(
        'RRM_ERR_MEMORY_LIMIT',
        `${handle.id}: the command exceeded its memory limit of ${limit ? formatDimension('memory', limit) : '?'}; peak ${formatDimension('memory', usage.peakMemoryBytes ?? 0)} (exit ${result.exitCode})`,
        { id: handle.id, usage, exitCode: result.exitCode },
      );
    }
    say(
      'released',
      `${handle.id} released after ${formatDuration(result.wallMs)}; exit ${result.exitCode}; ${describeUsage(usage)}`,
      {
        id: handle.id,
        exitCode: result.exitCode,
        signal: result.signal,
        usage,
      },
    );
    return { exitCode: result.exitCode, reservationId: handle.id, attempts: attempt, usage };
  }
}

const HELD_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/**
 * Defers SIGINT/SIGTERM/SIGHUP until the returned function is called, which then delivers the
 * first one held to this process again (its default action ends it with 128+N).
 */
function holdSignals(): () => void {
  let first: NodeJS.Signals | undefined;
  const hold = (s: NodeJS.Signals): void => {
    first ??= s;
  };
  for (const s of HELD_SIGNALS) process.on(s, hold);
  return () => {
    for (const s of HELD_SIGNALS) process.off(s, hold);
    if (first && process.listenerCount(first) === 0) process.kill(process.pid, first);
  };
}

/** What the run used, for the ledger and the summary: only what was measured (null = not measurable here). */
export function measuredUsage(
  r: RunResult,
): Record<string, number> & { oomKills?: number; peakMemoryBytes?: number } {
  const out: Record<string, number> = { wallMs: r.wallMs };
  if (r.pausedMs) out.pausedMs = r.pausedMs;
  for (const [k, v] of Object.entries(r.usage)) if (typeof v === 'number') out[k] = v;
  return out;
}

function endReason(r: RunResult): string {
  if (r.spawnError) return `could not start: ${r.spawnError}`;
  if (r.stoppedFor === 'time-limit') return 'stopped at its time limit';
  if ((r.usage.oomKills ?? 0) > 0 && r.exitCode !== 0)
    return `exceeded its memory limit (exit ${r.exitCode})`;
  return `command exited ${r.exitCode}`;
}

export function describeUsage(u: Readonly<Record<string, number>>): string {
  const parts: string[] = [];
  if (u.peakMemoryBytes !== undefined)
    parts.push(`peak memory ${formatDimension('memory', u.peakMemoryBytes)}`);
  if (u.cpuUsageUsec !== undefined) parts.push(`cpu ${formatDuration(u.cpuUsageUsec / 1000)}`);
  if (u.readBytes !== undefined) parts.push(`read ${formatDimension('disk', u.readBytes)}`);
  if (u.writeBytes !== undefined) parts.push(`written ${formatDimension('disk', u.writeBytes)}`);
  if (u.oomKills) parts.push(`${u.oomKills} OOM kill(s)`);
  return parts.length ? parts.join(', ') : 'usage not measured (advisory mode)';
}
