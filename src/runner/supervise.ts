/**
 * Runs one command under a granted reservation: in its own process group (so the whole tree can
 * be signalled), with the handle in its environment, the lease renewed, and a stop on preemption,
 * loss of the grant, the time limit, or a signal to rrm (forwarded to the command first).
 * Arguments go to the program as argv; nothing passes through a shell.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { LeaseKeeper } from '../client/lease-keeper.js';
import type { CoreLedger } from '../ledger/core-ledger.js';
import { isRrmError } from '../model/errors.js';
import type { Reservation, ReservationHandle } from '../model/reservation.js';
import { killProcessGroup } from '../host/process-identity.js';

export type StopCause = 'preempted' | 'lost' | 'time-limit' | 'signal';

export interface RunResult {
  /** The exit code rrm passes on: the command's, or 128 + signal number. */
  readonly exitCode: number;
  readonly signal: NodeJS.Signals | null;
  /** Why rrm stopped the command, when it did. */
  readonly stoppedFor?: StopCause;
  readonly forwardedSignal?: NodeJS.Signals;
  readonly lost?: Reservation;
  readonly spawnError?: string;
  readonly wallMs: number;
}

export interface SuperviseOptions {
  readonly argv: readonly string[];
  readonly env: NodeJS.ProcessEnv;
  readonly cwd?: string;
  readonly ledger: CoreLedger;
  readonly handle: ReservationHandle;
  readonly leaseMs: number;
  readonly pollMs: number;
  readonly graceMs: number;
  /** Absolute time (ms) at which the command is stopped; undefined = no limit. */
  readonly deadline?: number;
  readonly onStart?: (pid: number) => void;
}

export function exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  const n = signal ? (constants.signals as Record<string, number>)[signal] : undefined;
  return 128 + (n ?? 0);
}

export function supervise(opts: SuperviseOptions): Promise<RunResult> {
  const started = Date.now();
  return new Promise<RunResult>((resolve) => {
    const [file, ...args] = opts.argv as [string, ...string[]];
    const child = spawn(file, args, {
      detached: true,
      stdio: 'inherit',
      cwd: opts.cwd,
      env: { ...opts.env, RRM_RESERVATION_ID: opts.handle.id },
    });
    let stoppedFor: StopCause | undefined;
    let forwarded: NodeJS.Signals | undefined;
    let lost: Reservation | undefined;
    let killTimer: NodeJS.Timeout | undefined;
    let limitTimer: NodeJS.Timeout | undefined;
    let keeper: LeaseKeeper | undefined;
    const pgid = (): number | undefined => child.pid;

    const stop = (cause: StopCause, signal: NodeJS.Signals = 'SIGTERM'): void => {
      stoppedFor ??= cause;
      const g = pgid();
      if (g === undefined) return;
      killProcessGroup(g, signal);
      if (!killTimer) {
        killTimer = setTimeout(() => killProcessGroup(g, 'SIGKILL'), opts.graceMs);
        killTimer.unref();
      }
    };
    const onSignal = (signal: NodeJS.Signals): void => {
      forwarded = signal;
      stop('signal', signal);
    };
    const onInt = (): void => onSignal('SIGINT');
    const onTerm = (): void => onSignal('SIGTERM');
    const onHup = (): void => onSignal('SIGHUP');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
    process.on('SIGHUP', onHup);

    const cleanup = (): void => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      process.off('SIGHUP', onHup);
      keeper?.stop();
      if (killTimer) clearTimeout(killTimer);
      if (limitTimer) clearTimeout(limitTimer);
    };

    child.once('spawn', () => {
      const pid = child.pid as number;
      opts.onStart?.(pid);
      void opts.ledger.setProcessGroup(opts.handle.id, opts.handle.token, pid).catch(() => undefined);
      keeper = new LeaseKeeper(
        opts.ledger,
        opts.handle,
        opts.leaseMs,
        {
          onPreempt: () => stop('preempted'),
          onLost: (r) => {
            lost = r;
            stop('lost');
          },
          onError: (e) => {
            if (isRrmError(e) && (e.code === 'RRM_ERR_NOT_GRANTED' || e.code === 'RRM_ERR_NOT_FOUND'))
              stop('lost');
          },
        },
        opts.pollMs,
      );
      if (opts.deadline !== undefined) {
        limitTimer = setTimeout(() => stop('time-limit'), Math.max(0, opts.deadline - Date.now()));
      }
    });
    child.once('error', (err) => {
      cleanup();
      resolve({ exitCode: 127, signal: null, spawnError: err.message, wallMs: Date.now() - started });
    });
    child.once('exit', (code, signal) => {
      // The leader is gone; nothing it left in its group may outlive the grant.
      if (child.pid !== undefined) killProcessGroup(child.pid, 'SIGKILL');
      cleanup();
      resolve({
        exitCode: exitCodeOf(code, signal),
        signal,
        stoppedFor,
        forwardedSignal: forwarded,
        lost,
        wallMs: Date.now() - started,
      });
    });
  });
}
