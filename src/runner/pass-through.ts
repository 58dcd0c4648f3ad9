/**
 * A shortcut whose argv is not an install (`rrm npm run build`, `rrm apt-get source x`,
 * `rrm yarn --version`) runs the command as it is: no reservation, no cgroup, argv straight to
 * the program (no shell), stdio inherited, SIGINT/SIGTERM forwarded, its exit status passed on.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { RrmError } from '../model/errors.js';
import { findExecutable } from './which.js';

export async function passThrough(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  const [program, ...args] = argv as [string, ...string[]];
  if (!findExecutable(program, env.PATH)) {
    throw new RrmError('RRM_ERR_COMMAND_NOT_FOUND', `${program}: command not found`, { command: program });
  }
  const child = spawn(program, args, { stdio: 'inherit', env });
  const forward = (sig: NodeJS.Signals) => (): void => void child.kill(sig);
  const onInt = forward('SIGINT');
  const onTerm = forward('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  try {
    return await new Promise<number>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code, signal) =>
        resolve(code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0)),
      );
    });
  } finally {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
  }
}
