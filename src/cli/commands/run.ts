/**
 * `rrm run [options] -- <command...>`: resolve a profile, reserve, run the command inside the
 * grant, release in a finally. Preempted with `--on-preempt requeue`, the command is stopped and
 * run again when re-admitted.
 */
import { hostname, userInfo } from 'node:os';
import { parseDuration } from '../../model/duration.js';
import { RrmError } from '../../model/errors.js';
import { localEnforcer } from '../../host/local-enforcer.js';
import { DEFAULT_PRIORITY, parsePriority } from '../../model/priority.js';
import {
  ANY_INSTANCE,
  type Mode,
  type OnPreempt,
  type PlacementSpec,
  type PlacementStrategy,
  type ReservationRequest,
} from '../../model/reservation.js';
import { chooseDestination, namedDestination, type Destination } from '../../placement/destination.js';
import { DEFAULT_STRATEGY, STRATEGIES } from '../../placement/place.js';
import { parseSelector } from '../../placement/selector.js';
import { processStartTime } from '../../host/process-identity.js';
import { resolveContext, resolveInstallProfile } from '../../profiles/resolve.js';
import { HistoryStore } from '../../profiles/history.js';
import type { Config } from '../../config.js';
import type { Say } from '../../runner/run-install.js';
import { runInstall, WaitAborted } from '../../runner/run-install.js';
import { CoreLedger } from '../../ledger/core-ledger.js';
import type { LedgerClient } from '../../ledger/ledger-client.js';
import { describeShortfall } from '../../client/acquire.js';
import { printJson, table } from '../output.js';
import { profileRows } from './profile.js';
import { isRemote, parseAgentUrl } from '../../client/agent-client.js';
import type { ResourceProfile } from '../../profiles/profile.js';
import { remoteInstall } from '../remote-install.js';
import { findExecutable } from '../../runner/which.js';
import { flag, parseOptions, splitCommand, str, usageError, type OptionSpec, type Values } from '../args.js';
import { COMMON_OPTIONS, type Context } from '../context.js';
import { WaitReporter } from '../progress.js';
import { LIMIT_OPTIONS, limitFlags, RESOURCE_OPTIONS, resourceFlags } from '../resource-flags.js';

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
  --cpu-limit Q, --memory-limit Q, --disk-io-limit Q
                       caps enforced on the command's cgroup (default for hard
                       reservations: CPU and memory at the request plus
                       RRM_LIMIT_MARGIN, 25%; soft: none, except memory on
                       cgroup v1); disk I/O is capped on RRM_IO_DEVICE
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
Placement (a fleet: rrm --ledger etcd://... run, or RRM_LEDGER):
  --target ID|any      the instance to run on (default: this host's, RRM_INSTANCE); another
                       instance's install is sent to its agent (RRM_AGENT_TOKEN: an admin token)
  --target-selector k=v,k2!=v2
                       any instance whose labels match (implies --target any)
  --strategy S         how --target any ranks instances that fit: least-allocated (default,
                       spreads), most-allocated (packs) or balanced
Output:
  --json               rrm's own messages as JSON lines on stderr
  --quiet              no progress or summary lines
  --dry-run            show the profile and what the reservation would do now; run nothing
  --state-dir DIR      ledger directory (default: $RRM_STATE_DIR; /var/lib/rrm as root,
                       else $XDG_STATE_HOME/rrm or ~/.local/state/rrm)
  -h, --help

Exit codes: the command's own; 64 bad usage; 75 no capacity with --no-wait, a wait that timed
out, or preempted with --on-preempt fail; 120 killed for exceeding its memory limit; 124 time
limit reached; 127 command not found; 128+N killed by signal N.
`;

const OPTIONS: OptionSpec = {
  ...RESOURCE_OPTIONS,
  ...LIMIT_OPTIONS,
  mode: { type: 'string' },
  priority: { type: 'string' },
  wait: { type: 'string' },
  'no-wait': { type: 'boolean' },
  'time-limit': { type: 'string' },
  'non-preemptible': { type: 'boolean' },
  'never-preempt': { type: 'boolean' },
  'on-preempt': { type: 'string' },
  target: { type: 'string' },
  'target-selector': { type: 'string' },
  strategy: { type: 'string' },
  quiet: { type: 'boolean', short: 'q' },
  'dry-run': { type: 'boolean' },
  ...COMMON_OPTIONS,
};

export interface RunPlan {
  readonly command: string[];
  /** `--target`: an instance, `any`, or undefined for this host's instance. */
  readonly target?: string;
  /** With `--target any`: the selector and strategy placement ranks by. */
  readonly placement?: PlacementSpec;
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
  readonly dryRun: boolean;
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
  if (flag(values, 'no-wait') && str(values, 'wait') !== undefined)
    throw usageError('--wait and --no-wait cannot be used together');
  const waitText = str(values, 'wait');
  const limitText = str(values, 'time-limit');
  const timeLimitMs = limitText !== undefined ? parseDuration(limitText, '--time-limit') : undefined;
  if (timeLimitMs === 0) throw usageError('--time-limit: must be longer than 0');
  const flags = resourceFlags(values);
  const plan: RunPlan = {
    command,
    flags,
    limits: limitFlags(values, flags),
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
    dryRun: flag(values, 'dry-run'),
    ...placementFlags(values),
  };
  return { plan, values };
}

/** `--target`, `--target-selector`, `--strategy`: where the command should run. */
function placementFlags(values: Values): { target?: string; placement?: PlacementSpec } {
  const selectorText = str(values, 'target-selector');
  const strategy = str(values, 'strategy');
  const target = str(values, 'target') ?? (selectorText !== undefined ? ANY_INSTANCE : undefined);
  if (target === '') throw usageError('--target: needs an instance id or any');
  if (target !== ANY_INSTANCE) {
    if (selectorText !== undefined)
      throw usageError(
        `--target-selector chooses among instances; it cannot be used with --target ${target}`,
      );
    if (strategy !== undefined) throw usageError('--strategy ranks instances for --target any only');
    return target === undefined ? {} : { target };
  }
  if (strategy !== undefined && !STRATEGIES.includes(strategy as PlacementStrategy))
    throw usageError(`--strategy: ${JSON.stringify(strategy)} is not one of ${STRATEGIES.join(', ')}`);
  const selector = parseSelector(selectorText ?? '');
  return {
    target,
    placement: { selector, strategy: (strategy as PlacementStrategy | undefined) ?? DEFAULT_STRATEGY },
  };
}

function buildRequest(
  plan: RunPlan,
  profile: ResourceProfile,
  leaseMs: number,
  target: string,
): ReservationRequest {
  return {
    packages: [],
    command: plan.command,
    requests: profile.requests,
    limits: profile.limits && Object.keys(profile.limits).length ? profile.limits : undefined,
    target,
    mode: plan.mode,
    priority: plan.priority,
    timeLimitMs: plan.timeLimitMs,
    waitMs: plan.waitMs,
    preemptible: plan.preemptible,
    mayPreempt: plan.mayPreempt,
    onPreempt: plan.onPreempt,
    leaseMs,
    holder: {
      host: hostname(),
      pid: process.pid,
      startTime: processStartTime(process.pid),
      owner: userInfo().username,
    },
  };
}

export async function runCommand(ctx: Context, args: readonly string[]): Promise<number> {
  const parsed = parseRun(args);
  if (parsed === 'help') {
    ctx.io.out(RUN_HELP);
    return 0;
  }
  const { plan, values } = parsed;
  const config = ctx.config(values as never);
  const say = (event: string, text: string, data: Record<string, unknown> = {}): void => {
    if (plan.json) ctx.io.err(`${JSON.stringify({ event, ...data })}\n`);
    else if (!plan.quiet) ctx.io.err(`rrm: ${text}\n`);
  };
  const history = HistoryStore.tryOpen(config.stateDir);
  try {
    return await runResolved(ctx, plan, values, config, say, history);
  } finally {
    history?.close();
  }
}

async function runResolved(
  ctx: Context,
  plan: RunPlan,
  values: Record<string, unknown>,
  config: Config,
  say: Say,
  history: HistoryStore | undefined,
): Promise<number> {
  const { profile, packages } = await resolveInstallProfile(
    plan.command,
    { requests: plan.flags, ...(Object.keys(plan.limits).length ? { limits: plan.limits } : {}) },
    resolveContext(config, ctx.env, { history: history ?? 'none' }),
  );
  const agent = ctx.agent(values as never);
  let request = { ...buildRequest(plan, profile, config.leaseMs, config.instanceId), packages };
  const elsewhere = plan.target !== undefined && (plan.target !== config.instanceId || plan.placement);
  const dest = elsewhere ? await destinationOf(ctx, config, values, plan, request, say) : undefined;
  if (dest) request = { ...request, target: dest.instance };
  if (plan.dryRun)
    return dryRun(ctx, plan, profile, request, await ctx.ledger(config, undefined, values as Values));
  if (dest?.endpoint) return remoteInstall(parseAgentUrl(dest.endpoint, ctx.env), request, say);
  if (agent && isRemote(agent)) return remoteInstall(agent, request, say);
  if (!findExecutable(plan.command[0] as string, ctx.env.PATH)) {
    throw new RrmError(
      'RRM_ERR_COMMAND_NOT_FOUND',
      `${plan.command[0]}: command not found; nothing was reserved`,
      {
        command: plan.command[0],
      },
    );
  }
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
  const ledger = await ctx.ledger(config, enforcer, values as Values);
  // Until the command runs, SIGINT/SIGTERM give up the queue place; then they are forwarded to it.
  const waiting = new AbortController();
  const onInt = (): void => waiting.abort('SIGINT');
  const onTerm = (): void => waiting.abort('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  let reporter: WaitReporter | undefined;
  try {
    const outcome = await runInstall(
      ledger,
      enforcer,
      request,
      {
        say: (event, text, data) => {
          if (event === 'granted') {
            reporter?.done();
            reporter = undefined;
            process.off('SIGINT', onInt);
            process.off('SIGTERM', onTerm);
          } else if (event === 'requeued') {
            process.on('SIGINT', onInt);
            process.on('SIGTERM', onTerm);
          }
          say(event, text, data);
        },
        onWait: (status, r) => {
          if (plan.quiet) return;
          if (plan.json) return say('waiting', '', { ...status, reservation: r.id });
          reporter ??= new WaitReporter(ctx.io, r.id);
          reporter.update(status);
        },
        signal: waiting.signal,
        forwardSignals: true,
        env: ctx.env,
        onFinished: (result, grant) => history?.learn(packages, result, grant),
      },
      config,
    );
    return outcome.exitCode;
  } catch (e) {
    if (e instanceof WaitAborted) {
      reporter?.done();
      say('cancelled', `stopped waiting (${String(e.reason)}); nothing was run`, { signal: e.reason });
      return e.reason === 'SIGINT' ? 130 : 143;
    }
    throw e;
  } finally {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    await ledger.close();
  }
}

/**
 * Where a command for another instance or for `--target any` runs: placement's ranking on the
 * ledger (src/placement/destination.ts). This host's instance runs it here; another's agent is
 * sent it as a remote install and reserves it there. The choice is made once, at start.
 */
async function destinationOf(
  ctx: Context,
  config: Config,
  values: Record<string, unknown>,
  plan: RunPlan,
  request: ReservationRequest,
  say: Say,
): Promise<Destination> {
  const ledger = await ctx.ledger(config, undefined, values as Values);
  try {
    let dest: Destination;
    if (plan.placement) {
      if (!(ledger instanceof CoreLedger))
        throw usageError(
          '--target any ranks the instances on the ledger itself: name it with --ledger etcd://... (or RRM_LEDGER), not through an agent',
        );
      const { ranking, statuses } = await ledger.rank({
        ...request,
        target: ANY_INSTANCE,
        placement: plan.placement,
      });
      dest = chooseDestination(ranking, statuses, config.instanceId, plan.placement.selector);
    } else {
      dest = namedDestination(plan.target as string, await ledger.instanceStatus(), config.instanceId);
    }
    const c = dest.candidate;
    const how = c
      ? ` (${c.fit === 'grant' ? `fits now, ${plan.placement?.strategy} score ${c.score.toFixed(0)}` : c.fit === 'preempt' ? 'fits by preempting' : c.fit === 'wait' ? 'fits once others end' : 'can never fit'})`
      : '';
    say(
      'placed',
      `running on ${dest.instance}${dest.endpoint ? ` through its agent ${dest.endpoint}` : ', this host'}${how}` +
        (dest.passed.length ? `; passed over ${dest.passed.join(', ')}` : ''),
      {
        instance: dest.instance,
        ...(dest.endpoint ? { endpoint: dest.endpoint } : {}),
        ...(c ? { fit: c.fit, score: c.score } : {}),
        passed: dest.passed,
      },
    );
    return dest;
  } finally {
    await ledger.close();
  }
}

/** `--dry-run`: the profile, and what submitting it would do now (decided on a snapshot, not committed). */
async function dryRun(
  ctx: Context,
  plan: RunPlan,
  profile: ResourceProfile,
  request: ReservationRequest,
  ledger: LedgerClient,
): Promise<number> {
  try {
    const prediction = await ledger.predict(request);
    if (plan.json)
      printJson(ctx.io, {
        command: plan.command,
        instance: request.target,
        profile,
        packages: request.packages,
        prediction,
      });
    else {
      ctx.io.out(table(profileRows(profile)));
      ctx.io.out(
        `would ${prediction.would} on ${request.target}${prediction.shortfall?.length ? ` (short: ${describeShortfall(prediction.shortfall)})` : ''}\n`,
      );
    }
    return 0;
  } finally {
    await ledger.close();
  }
}
