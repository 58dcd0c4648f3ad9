/**
 * Configuration, compiled once: environment and flags are read by the CLI and turned into this
 * frozen object; nothing below the CLI reads process.env.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parseDuration } from './model/duration.js';

export interface Config {
  readonly stateDir: string;
  readonly ledgerPath: string;
  /** Lease of a reservation; holders renew at half of it. */
  readonly leaseMs: number;
  /** How often a waiter re-checks the ledger when nothing wakes it (holder liveness, expiries). */
  readonly pollMs: number;
  /** SIGTERM → SIGKILL grace when stopping a command. */
  readonly graceMs: number;
  /** How long a victim or over-time grant may take to stop before any process forces it. */
  readonly forceAfterMs: number;
  /** npm registry for package metadata. */
  readonly npmRegistry: string;
  readonly metadataTimeoutMs: number;
}

export function defaultStateDir(env: NodeJS.ProcessEnv, uid: number): string {
  if (uid === 0) return '/var/lib/rrm';
  const xdg =
    env.XDG_STATE_HOME && env.XDG_STATE_HOME.startsWith('/')
      ? env.XDG_STATE_HOME
      : join(homedir(), '.local', 'state');
  return join(xdg, 'rrm');
}

export function compileConfig(env: NodeJS.ProcessEnv, flags: { stateDir?: string } = {}): Config {
  const stateDir = flags.stateDir ?? env.RRM_STATE_DIR ?? defaultStateDir(env, process.getuid?.() ?? 1000);
  const leaseMs = env.RRM_LEASE ? parseDuration(env.RRM_LEASE, 'RRM_LEASE') : 30_000;
  const graceMs = env.RRM_GRACE ? parseDuration(env.RRM_GRACE, 'RRM_GRACE') : 10_000;
  return Object.freeze({
    stateDir,
    ledgerPath: join(stateDir, 'ledger.db'),
    leaseMs,
    pollMs: env.RRM_POLL ? parseDuration(env.RRM_POLL, 'RRM_POLL') : 1000,
    graceMs,
    forceAfterMs: graceMs + 5_000,
    npmRegistry: (
      env.npm_config_registry ??
      env.NPM_CONFIG_REGISTRY ??
      'https://registry.npmjs.org/'
    ).replace(/\/?$/, '/'),
    metadataTimeoutMs: env.RRM_METADATA_TIMEOUT
      ? parseDuration(env.RRM_METADATA_TIMEOUT, 'RRM_METADATA_TIMEOUT')
      : 3_000,
  });
}
