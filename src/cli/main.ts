#!/usr/bin/env node
/** The `rrm` command: dispatch, error reporting, exit codes. */
import { isRrmError, EXIT } from '../model/errors.js';
import { makeContext, type Context } from './context.js';
import { processIo } from './output.js';
import { rrmVersion } from '../version.js';

export const MAIN_HELP = `Usage: rrm <command> [options]

rrm reserves CPU, memory, disk, bandwidth and named resources (such as the dpkg lock) before a
package install runs, runs the install inside what it reserved, and releases it afterwards.

Commands:
  run [options] -- <command...>   reserve, run the command, release (rrm run --help)
  capacity [set|reset]            show or set this machine's allocatable resources
  list                            grants and the queue
  instances                       every instance: up or down, granted, free, waiters (fleet)
  release <ID>...                 release reservations (admin)
  history [ID]                    recent reservations, or one reservation's events
  doctor                          enforcement driver and why; remove leftover cgroups
  agent                           run the per-instance daemon (HTTP API on a Unix socket / TCP)
  profile <mgr>:<pkg>[@v]...      what an install would reserve, and where each number comes from
  npm|pnpm|yarn|apt-get|pip ...   the same as rrm run -- <that command>; --dry-run shows the
                                  profile and what the reservation would do, installing nothing;
                                  what is not an install (npm run, apt-get source) runs unreserved

Global option: --agent unix:/path | /path | http[s]://host:port talks to an rrm agent (also
RRM_AGENT, with RRM_AGENT_TOKEN for TCP; for https, RRM_AGENT_CA and for mutual TLS RRM_AGENT_CERT
and RRM_AGENT_KEY); without it the default socket /run/rrm/agent.sock is used
when it exists and no --state-dir/RRM_STATE_DIR is given. Through a TCP agent, 'run' installs on
the agent's machine and streams the output back.

Global option: --ledger URL (also RRM_LEDGER) names the ledger: sqlite (the default, a file in the
state directory), sqlite:///path, or etcd://host:2379[,host:2379...][/prefix/] for a fleet
(etcds:// with RRM_ETCD_CA, RRM_ETCD_CERT, RRM_ETCD_KEY for TLS; user:password@ or
RRM_ETCD_USER/RRM_ETCD_PASSWORD for etcd authentication). On etcd this host's instance is
RRM_INSTANCE (default: the hostname) with labels RRM_INSTANCE_LABELS=zone=a,os=debian.

Every command takes --json and --help. The ledger lives in $RRM_STATE_DIR (or --state-dir),
by default /var/lib/rrm as root and $XDG_STATE_HOME/rrm otherwise.

Exit codes: 0 success; 64 usage error; 70 internal or ledger error; 75 no capacity (--no-wait),
wait timed out, or preempted with --on-preempt fail; 120 exceeded its memory limit; 124 time
limit reached; otherwise the
command's own exit code (128+N when it was killed by signal N).
`;

type Handler = (ctx: Context, args: readonly string[]) => Promise<number>;

/** Each command is loaded when used, so `rrm run` does not pay for the agent's HTTP stack. */
const COMMANDS: Readonly<Record<string, () => Promise<Handler>>> = {
  run: async () => (await import('./commands/run.js')).runCommand,
  capacity: async () => (await import('./commands/capacity.js')).capacityCommand,
  list: async () => (await import('./commands/list.js')).listCommand,
  release: async () => (await import('./commands/release.js')).releaseCommand,
  history: async () => (await import('./commands/history.js')).historyCommand,
  doctor: async () => (await import('./commands/doctor.js')).doctorCommand,
  instances: async () => (await import('./commands/instances.js')).instancesCommand,
  agent: async () => (await import('./commands/agent.js')).agentCommand,
  profile: async () => (await import('./commands/profile.js')).profileCommand,
};

/** `rrm npm install sharp` is `rrm run -- npm install sharp`; `--dry-run` there is rrm's. */
const SHORTCUTS = ['npm', 'pnpm', 'yarn', 'apt-get', 'apt', 'pip', 'pip3'];

/** Whether a shortcut's argv installs anything; what does not passes through unreserved. */
async function isInstall(argv: readonly string[]): Promise<boolean> {
  const { parseInstall } = await import('../installers/index.js');
  return parseInstall(argv) !== null;
}

export function shortcutArgs(name: string, rest: readonly string[]): string[] {
  const dry = rest.includes('--dry-run');
  return [...(dry ? ['--dry-run'] : []), '--', name, ...rest.filter((a) => a !== '--dry-run')];
}

export interface GlobalOptions {
  agent?: string;
  ledger?: string;
  rest: string[];
}

/** Splits the global `--agent URL` and `--ledger URL` off the front of argv. */
export function globalOptions(argv: readonly string[]): GlobalOptions {
  const out: GlobalOptions = { rest: [...argv] };
  for (;;) {
    const [first, second] = out.rest;
    const name = (['agent', 'ledger'] as const).find(
      (n) => first === `--${n}` || first?.startsWith(`--${n}=`),
    );
    if (!name || first === undefined) return out;
    if (first === `--${name}`) {
      if (second === undefined) return out;
      out[name] = second;
      out.rest = out.rest.slice(2);
    } else {
      out[name] = first.slice(name.length + 3);
      out.rest = out.rest.slice(1);
    }
  }
}

export async function main(argv: readonly string[], ctx: Context): Promise<number> {
  const [name, ...rest] = argv;
  const json = rest.includes('--json');
  try {
    if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
      ctx.io.out(MAIN_HELP);
      return name === undefined ? EXIT.usage : 0;
    }
    if (name === '--version' || name === '-V') {
      ctx.io.out(`${rrmVersion()}\n`);
      return 0;
    }
    if (SHORTCUTS.includes(name)) {
      const argv = [name, ...rest];
      if (!rest.includes('--dry-run') && !(await isInstall(argv))) {
        const { passThrough } = await import('../runner/pass-through.js');
        return await passThrough(argv, ctx.env);
      }
      const run = (await import('./commands/run.js')).runCommand;
      return await run(ctx, shortcutArgs(name, rest));
    }
    const load = COMMANDS[name];
    if (!load) {
      ctx.io.err(`rrm: unknown command ${JSON.stringify(name)}; see rrm --help\n`);
      return EXIT.usage;
    }
    return await (
      await load()
    )(ctx, rest);
  } catch (e) {
    if (isRrmError(e)) {
      if (json) ctx.io.err(`${JSON.stringify({ error: e.toJSON() })}\n`);
      else ctx.io.err(`rrm: ${e.message} [${e.code}]\n`);
      return e.exitCode;
    }
    ctx.io.err(`rrm: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    return EXIT.software;
  }
}

const { agent, ledger, rest } = globalOptions(process.argv.slice(2));
const code = await main(rest, makeContext(processIo, process.env, agent, ledger));
process.exitCode = code;
