/**
 * `rrm run [options] -- <command...>`: resolve a profile, reserve, run the command inside the
 * grant, release in a finally. Preempted with `--on-preempt requeue`, the command is stopped and
 * run again when re-admitted.
 */
import { hostname, userInfo } from 'node:os';
import { acquire } from '../../client/acquire.js';
import type { CoreLedger } from '../../ledger/core-ledger.js';
import { parseDuration, formatDuration } from '../../model/duration.js';
import { RrmError } from '../../model/errors.js';
import { formatDimension } from '../../model/quantity.js';
import { effectiveLimits, type Enforcer, type Slot } from '../../enforce/enforcer.js';
import { localEnforcer } from '../../host/local-enforcer.js';
import { DEFAULT_PRIORITY, parsePriority } from '../../model/priority.js';
import type { Mode, OnPreempt, PackageRef, ReservationRequest } from '../../model/reservation.js';
import { LOCAL_INSTANCE } from '../../host/local-instance.js';
import { processStartTime } from '../../host/process-identity.js';
import { npmInstallSpecs, splitSpec } from '../../profiles/npm-metadata.js';
import { resolveProfile } from '../../profiles/resolve.js';
import type { ResourceProfile } from '../../profiles/profile.js';
import { supervise, type RunResult } from '../../runner/supervise.js';
import { findExecutable } from '../../runner/which.js';
import { flag, parseOptions, splitCommand, str, usageError, type OptionSpec } from '../args.js';
import { COMMON_OPTIONS, type Context } from '../context.js';
import { formatVector } from '../output.js';
import { WaitReporter } from '../progress.js';
import { limitFlags, RESOURCE_OPTIONS, resourceFlags } from '../resource-flags.js';

export const RUN_HELP = `Usage: rrm run [options] -- <command> [args...]

Reserves what the command needs on this machine, runs it once the reservation is granted, and
releases the reservation when it ends (success, failure, crash or signal). The command gets the
reservation id in RRM_RESERVATION_ID. rrm exits with the command's exit code.

Resources (Kubernetes quantities; rates are per second):
  --cpu Q              CPU to reserve: 500m, 1, 1.5
  --memory Q           memory: 512Mi, 2Gi
  --disk Q             free disk space: 10Gi
  --disk-io Q          disk bandwidth: 50Mi
  --network Q          network bandwidth: 20Mi
  --resource NAME=N    a named counted resource (repeatable): dpkg-lock=1, gpu=1
  --cpu-limit Q, --memory-limit Q
                       caps enforced on the command's cgroup (default for hard
                       reservations: the request plus 25%; soft: none)
Policy:
  --mode hard|soft     hard is guaranteed and may preempt; soft is best effort (default hard)
  --priority P         critical, system, normal (default), batch, or an integer
  --wait DURATION      wait at most this long for capacity (default: without limit)
  --no-wait            fail at once (exit 75) when it does not fit now
  --time-limit DURATION  stop the command when it runs this long (exit 124)
  --non-preemptible    never stop this command for a higher-priority request
  --never-preempt      never stop others to make room for this one
  --on-preempt requeue|fail|pause
                       when preempted: stop and run again later (default), stop and fail,
                       or be frozen until re-admitted (where freezing frees enough)
Output:
  --json               rrm's own messages as JSON lines on stderr
  --quiet              no progress or summary lines
  --state-dir DIR      ledger directory (default: $RRM_STATE_DIR, /var/lib/rrm as root)
  -h, --help

Exit codes: the command's own; 64 bad usage; 75 no capacity with --no-wait, a wait that timed
out, or preempted with --on-preempt fail; 120 killed for exceeding its memory limit; 124 time
limit reached; 127 command not found; 128+N killed by signal N.
`;

const OPTIONS: OptionSpec = {
  ...RESOURCE_OPTIONS,
  'cpu-limit': { type: 'string' },
  'memory-limit': { type: 'string' },
  mode: { type: 'string' },
  priority: { type: 'string' },
  wait: { type: 'string' },
  'no-wait': { type: 'boolean' },
  'time-limit': { type: 'string' },
  'non-preemptible': { type: 'boolean' },
  'never-preempt': { type: 'boolean' },
  'on-preempt': { type: 'string' },
  target: { type: 'string' },
  quiet: { type: 'boolean', short: 'q' },
  ...COMMON_OPTIONS,
};

export interface RunPlan {
  readonly command: string[];
  readonly flags: Record<string, number>;
  readonly limits: Record<string, number>;
  readonly mode: Mode;
  readonly priority: number;
  readonly waitMs?: number;
  readonly timeLimitMs?: number;
  readonly preemptible: boolean;
  readonly mayPreempt: boolean;
  readonly onPreempt: OnPreempt;
  readonly json: boolean;
  readonly quiet: boolean;
}

/** Validates everything about `rrm run` before anything is reserved. */
export function parseRun(
  args: readonly string[],
): { plan: RunPlan; values: Record<string, unknown> } | 'help' {
  const { own, command } = splitCommand(args, OPTIONS);
  const { values } = parseOptions(own, OPTIONS);
  if (flag(values, 'help')) return 'help';
  if (command.length === 0 || command[0] === '')
    throw usageError('rrm run: missing the command to run (rrm run [options] -- <command...>)');
  const mode = str(values, 'mode') ?? 'hard';
  if (mode !== 'hard' && mode !== 'soft')
    throw usageError(`--mode: ${JSON.stringify(mode)} is not hard or soft`);
  const onPreempt = str(values, 'on-preempt') ?? 'requeue';
  if (onPreempt !== 'requeue' && onPreempt !== 'fail' && onPreempt !== 'pause')
    throw usageError(`--on-preempt: ${JSON.stringify(onPreempt)} is not requeue, fail or pause`);
  const target = str(values, 'target') ?? LOCAL_INSTANCE;
  if (target !== LOCAL_INSTANCE)
    throw usageError(`--target: ${JSON.stringify(target)}: only "local" is available without a fleet ledger`);
  if (flag(values, 'no-wait') && str(values, 'wait') !== undefined)
    throw usageError('--wait and --no-wait cannot be used together');
  const waitText = str(values, 'wait');
  const limitText = str(values, 'time-limit');
  const timeLimitMs = limitText !== undefined ? parseDuration(limitText, '--time-limit') : undefined;
  if (timeLimitMs === 0) throw usageError('--time-limit: must be longer than 0');
  const plan: RunPlan = {
    command,
    flags: resourceFlags(values),
    limits: limitFlags(values),
    mode,
    priority:
      str(values, 'priority') !== undefined
        ? parsePriority(str(values, 'priority') as string)
        : DEFAULT_PRIORITY,
    waitMs: flag(values, 'no-wait')
      ? 0
      : waitText !== undefined
        ? parseDuration(waitText, '--wait')
        : undefined,
    timeLimitMs,
    preemptible: !flag(values, 'non-preemptible'),
    mayPreempt: !flag(values, 'never-preempt'),
    onPreempt,
    json: flag(values, 'json'),
    quiet: flag(values, 'quiet'),
  };
  return { plan, values };
}

function packagesOf(command: readonly string[]): PackageRef[] {
  const specs = npmInstallSpecs(command) ?? [];
  return specs.map((s) => {
    const [name, version] = splitSpec(s);
    return { manager: 'npm', name, ...(version !== 'latest' ? { version } : {}) };
  });
}

export async function runCommand(ctx: Context, args: readonly string[]): Promise<number> {
  const parsed = parseRun(args);
  if (parsed === 'help') {
    ctx.io.out(RUN_HELP);
    return 0;
  }
  const { plan, values } = parsed;
  const config = ctx.config(values as never);
  if (!findExecutable(plan.command[0] as string, ctx.env.PATH)) {
    throw new RrmError(
      'RRM_ERR_COMMAND_NOT_FOUND',
      `${plan.command[0]}: command not found; nothing was reserved`,
      {
        command: plan.command[0],
      },
    );
  }
  const say = (event: string, text: string, data: Record<string, unknown> = {}): void => {
    if (plan.json) ctx.io.err(`${JSON.stringify({ event, ...data })}\n`);
    else if (!plan.quiet) ctx.io.err(`rrm: ${text}\n`);
  };
  const profile = await resolveProfile({
    argv: plan.command,
    flags: plan.flags,
    flagLimits: plan.limits,
    registry: config.npmRegistry,
    metadataTimeoutMs: config.metadataTimeoutMs,
  });
  const enforcer = localEnforcer(config);
  if (enforcer.report.driver === 'none') {
    say(
      'advisory',
      `ADVISORY MODE: ${enforcer.report.reason}; the command runs without limits and is not measured`,
      {
        driver: 'none',
        reason: enforcer.report.reason,
      },
    );
  }
  const ledger = await ctx.ledger(config, enforcer);
  try {
    return await runWithRequeue(ctx, ledger, enforcer, plan, profile, config, say);
  } finally {
    await ledger.close();
  }
}

type Say = (event: string, text: string, data?: Record<string, unknown>) => void;

async function runWithRequeue(
  ctx: Context,
  ledger: CoreLedger,
  enforcer: Enforcer,
  plan: RunPlan,
  profile: ResourceProfile,
  config: ReturnType<Context['config']>,
  say: Say,
): Promise<number> {
  const holder = {
    host: hostname(),
    pid: process.pid,
    startTime: processStartTime(process.pid),
    owner: userInfo().username,
  };
  let retryOf: string | undefined;
  for (let attempt = 1; ; attempt++) {
    const request: ReservationRequest = {
      packages: packagesOf(plan.command),
      command: plan.command,
      requests: profile.requests,
      limits: Object.keys(plan.limits).length ? plan.limits : undefined,
      target: LOCAL_INSTANCE,
      mode: plan.mode,
      priority: plan.priority,
      timeLimitMs: plan.timeLimitMs,
      waitMs: plan.waitMs,
      preemptible: plan.preemptible,
      mayPreempt: plan.mayPreempt,
      onPreempt: plan.onPreempt,
      leaseMs: config.leaseMs,
      holder,
      retryOf,
      attempt,
    };
    const waiting = new AbortController();
    const onSignal = (sig: NodeJS.Signals): void => waiting.abort(sig);
    const onInt = (): void => onSignal('SIGINT');
    const onTerm = (): void => onSignal('SIGTERM');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
    let reporter: WaitReporter | undefined;
    let acquired;
    try {
      acquired = await acquire(ledger, request, {
        pollMs: config.pollMs,
        signal: waiting.signal,
        onWait: (status, r) => {
          if (plan.quiet) return;
          if (plan.json) return say('waiting', '', { ...status, reservation: r.id });
          reporter ??= new WaitReporter(ctx.io, r.id);
          reporter.update(status);
        },
      });
    } catch (e) {
      reporter?.done();
      if (waiting.signal.aborted) {
        const sig = waiting.signal.reason as NodeJS.Signals;
        say('cancelled', `stopped waiting (${sig}); nothing was run`, { signal: sig });
        return sig === 'SIGINT' ? 130 : 143;
      }
      throw e;
    } finally {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
    }
    reporter?.done();
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
    try {
      slot = await enforcer.create(handle.id, {
        mode: plan.mode,
        requests: handle.granted,
        limits: handle.limits,
      });
      result = await supervise({
        argv: plan.command,
        env: ctx.env,
        ledger,
        handle,
        slot,
        leaseMs: config.leaseMs,
        pollMs: config.pollMs,
        graceMs: config.graceMs,
        deadline: reservation.deadline,
        onPause: () =>
          say('paused', `${handle.id} paused (frozen) for a higher-priority request`, { id: handle.id }),
        onResume: (ms) =>
          say('resumed', `${handle.id} resumed after ${formatDuration(ms)} paused`, {
            id: handle.id,
            pausedMs: ms,
          }),
      });
    } finally {
      await slot?.destroy().catch(() => undefined);
      const end = result?.stoppedFor === 'time-limit' ? 'timed-out' : 'released';
      await ledger
        .release(
          handle.id,
          { token: handle.token },
          {
            end,
            usage: result ? measuredUsage(result) : undefined,
            reason: result ? endReason(result) : 'rrm failed before the command ended',
          },
        )
        .catch((e) => {
          say('release-failed', `could not release ${handle.id}: ${e instanceof Error ? e.message : e}`);
        });
    }
    if (result.spawnError) {
      say('spawn-failed', `could not start ${plan.command[0]}: ${result.spawnError}`, {
        id: handle.id,
        error: result.spawnError,
      });
      return 127;
    }
    if (result.stoppedFor === 'preempted') {
      if (plan.onPreempt === 'fail') {
        throw new RrmError(
          'RRM_ERR_PREEMPTED',
          `${handle.id} was preempted after ${formatDuration(result.wallMs)}; not retried (--on-preempt fail)`,
          { id: handle.id },
        );
      }
      say(
        'requeued',
        `${handle.id} preempted after ${formatDuration(result.wallMs)}; the command was stopped and is queued again`,
        { id: handle.id, attempt },
      );
      retryOf = handle.id;
      continue;
    }
    if (result.stoppedFor === 'time-limit') {
      throw new RrmError(
        'RRM_ERR_TIME_LIMIT',
        `${handle.id}: the command reached its time limit of ${formatDuration(plan.timeLimitMs ?? 0)} and was stopped`,
        { id: handle.id },
      );
    }
    if (result.stoppedFor === 'lost') {
      throw new RrmError(
        'RRM_ERR_NOT_GRANTED',
        `${handle.id} was ${result.lost?.state ?? 'lost'} (${result.lost?.reason ?? 'no longer in the ledger'}); the command was stopped`,
        { id: handle.id },
      );
    }
    const usage = measuredUsage(result);
    if ((usage.oomKills ?? 0) > 0 && result.exitCode !== 0) {
      const limit = effectiveLimits({
        mode: plan.mode,
        requests: handle.granted,
        limits: handle.limits,
      }).memory;
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
    return result.exitCode;
  }
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
