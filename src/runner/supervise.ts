/**
 * Runs one command under a granted reservation: inside its cgroup from the first instruction
 * (the slot's wrapper joins, then execs), in its own process group, with the handle in its
 * environment and the lease renewed. It stops the command on eviction, loss of the grant, the time
 * limit, or a signal to rrm (forwarded first); it freezes and thaws it when paused for a
 * higher-priority request, and paused time does not count against the time limit.
 * Arguments go to the program as argv; nothing passes through a shell that interprets them.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { LeaseKeeper } from '../client/lease-keeper.js';
import type { Slot, Usage } from '../enforce/enforcer.js';
import type { LedgerClient } from '../ledger/ledger-client.js';
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
  readonly pausedMs: number;
  readonly usage: Usage;
}

/** Receives the command's output when it is not inherited (remote installs stream it). */
export type OutputSink = (stream: 'stdout' | 'stderr', chunk: Buffer) => void;

export interface SuperviseOptions {
  readonly argv: readonly string[];
  readonly env: NodeJS.ProcessEnv;
  readonly cwd?: string;
  readonly ledger: LedgerClient;
  readonly handle: ReservationHandle;
  readonly slot: Slot;
  readonly leaseMs: number;
  readonly pollMs: number;
  readonly graceMs: number;
  /** Absolute time (ms) at which the command is stopped; undefined = no limit. */
  readonly deadline?: number;
  /** Forward SIGINT/SIGTERM/SIGHUP that this process receives to the command. */
  readonly forwardSignals: boolean;
  /** Aborting stops the command (SIGTERM, grace, SIGKILL). */
  readonly stop?: AbortSignal;
  readonly output?: OutputSink;
  readonly onStart?: (pid: number) => void;
  readonly onPause?: () => void;
  readonly onResume?: (pausedMs: number) => void;
}

export function exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  const n = signal ? (constants.signals as Record<string, number>)[signal] : undefined;
  return 128 + (n ?? 0);
}

export function supervise(opts: SuperviseOptions): Promise<RunResult> {
  const started = Date.now();
  const { slot, ledger, handle } = opts;
  return new Promise<RunResult>((resolve) => {
    const [file, ...args] = slot.wrap(opts.argv) as [string, ...string[]];
    const child = spawn(file, args, {
      detached: true,
      stdio: opts.output ? ['ignore', 'pipe', 'pipe'] : 'inherit',
      cwd: opts.cwd,
      env: { ...opts.env, RRM_RESERVATION_ID: handle.id },
    });
    let stoppedFor: StopCause | undefined;
    let forwarded: NodeJS.Signals | undefined;
    let lost: Reservation | undefined;
    let killTimer: NodeJS.Timeout | undefined;
    let limitTimer: NodeJS.Timeout | undefined;
    let keeper: LeaseKeeper | undefined;
    let pausedAt: number | undefined;
    let pausedMs = 0;
    let exited = false;

    const armLimit = (deadline: number | undefined): void => {
      if (limitTimer) clearTimeout(limitTimer);
      limitTimer =
        deadline === undefined
          ? undefined
          : setTimeout(() => stop('time-limit'), Math.max(0, deadline - Date.now()));
    };
    const thaw = async (): Promise<void> => {
      if (slot.enforced) await slot.thaw();
      else if (child.pid !== undefined) killProcessGroup(child.pid, 'SIGCONT');
    };
    const stop = (cause: StopCause, signal: NodeJS.Signals = 'SIGTERM'): void => {
      stoppedFor ??= cause;
      const g = child.pid;
      if (g === undefined || exited) return;
      const frozen = pausedAt !== undefined;
      void (frozen ? thaw() : Promise.resolve()).then(() => killProcessGroup(g, signal));
      if (!killTimer) {
        killTimer = setTimeout(() => {
          killProcessGroup(g, 'SIGKILL');
          if (slot.enforced) void slot.kill().catch(() => undefined);
        }, opts.graceMs);
        killTimer.unref();
      }
    };
    const pause = async (r: Reservation): Promise<void> => {
      if (exited || child.pid === undefined) return;
      if (limitTimer) clearTimeout(limitTimer);
      if (slot.enforced) await slot.freeze();
      else killProcessGroup(child.pid, 'SIGSTOP');
      pausedAt = Date.now();
      opts.onPause?.();
      await ledger.acknowledgePause(r.id, handle.token);
    };
    const onSignal = (signal: NodeJS.Signals): void => {
      forwarded = signal;
      stop('signal', signal);
    };
    const onInt = (): void => onSignal('SIGINT');
    const onTerm = (): void => onSignal('SIGTERM');
    const onHup = (): void => onSignal('SIGHUP');
    if (opts.forwardSignals) {
      process.on('SIGINT', onInt);
      process.on('SIGTERM', onTerm);
      process.on('SIGHUP', onHup);
    }
    const onStop = (): void => stop('signal');
    opts.stop?.addEventListener('abort', onStop, { once: true });
    if (opts.output) {
      const sink = opts.output;
      child.stdout?.on('data', (d: Buffer) => sink('stdout', d));
      child.stderr?.on('data', (d: Buffer) => sink('stderr', d));
    }

    const cleanup = (): void => {
      opts.stop?.removeEventListener('abort', onStop);
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
      void ledger.setProcessGroup(handle.id, handle.token, pid).catch(() => undefined);
      keeper = new LeaseKeeper(
        ledger,
        handle,
        opts.leaseMs,
        {
          onPreempt: (r) => {
            if (r.preemptAction === 'pause') void pause(r).catch(() => stop('preempted'));
            else stop('preempted');
          },
          onResume: (r) => {
            if (pausedAt === undefined) return;
            const was = Date.now() - pausedAt;
            pausedMs += was;
            pausedAt = undefined;
            void thaw().then(() => {
              opts.onResume?.(was);
              armLimit(r.deadline);
            });
          },
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
      armLimit(opts.deadline);
    });
    child.once('error', (err) => {
      exited = true;
      cleanup();
      resolve({
        exitCode: 127,
        signal: null,
        spawnError: err.message,
        wallMs: Date.now() - started,
        pausedMs,
        usage: slot.measure(),
      });
    });
    const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
      cleanup();
      resolve({
        exitCode: exitCodeOf(code, signal),
        signal,
        stoppedFor,
        forwardedSignal: forwarded,
        lost,
        wallMs: Date.now() - started,
        pausedMs,
        usage: slot.measure(),
      });
    };
    child.once('exit', (code, signal) => {
      exited = true;
      // The leader is gone; nothing it left in its group may outlive the grant.
      if (child.pid !== undefined) killProcessGroup(child.pid, 'SIGKILL');
      // With piped output, wait until the pipes are drained ('close').
      if (opts.output) child.once('close', () => finish(code, signal));
      else finish(code, signal);
    });
  });
}
