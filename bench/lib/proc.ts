/** Spawning commands and timing them. */
import { spawn } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { nowMs } from './stats.js';

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** ms (system-wide monotonic clock) when spawned and when it exited. */
  readonly spawnedAt: number;
  readonly exitedAt: number;
}

export interface Spawned {
  readonly pid: number | undefined;
  readonly spawnedAt: number;
  readonly done: Promise<Exit>;
  kill(signal?: NodeJS.Signals): void;
}

/** Spawns argv with stdout+stderr appended to `logFile` (or ignored); resolves when it exits. */
export function launch(
  argv: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; logFile?: string; cwd?: string } = {},
): Spawned {
  const fd = opts.logFile ? openSync(opts.logFile, 'a') : undefined;
  const spawnedAt = nowMs();
  const child = spawn(argv[0] as string, argv.slice(1), {
    env: opts.env ?? process.env,
    cwd: opts.cwd,
    stdio: ['ignore', fd ?? 'ignore', fd ?? 'ignore'],
  });
  if (fd !== undefined) closeSync(fd);
  const done = new Promise<Exit>((resolve) => {
    child.on('error', () => resolve({ code: 127, signal: null, spawnedAt, exitedAt: nowMs() }));
    child.on('exit', (code, signal) => resolve({ code, signal, spawnedAt, exitedAt: nowMs() }));
  });
  return { pid: child.pid, spawnedAt, done, kill: (s = 'SIGKILL') => void child.kill(s) };
}

/** Runs argv to completion and returns its wall time in ms (spawn → exit) and exit status. */
export async function timed(
  argv: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; logFile?: string; cwd?: string } = {},
): Promise<Exit & { ms: number }> {
  const e = await launch(argv, opts).done;
  return { ...e, ms: e.exitedAt - e.spawnedAt };
}
