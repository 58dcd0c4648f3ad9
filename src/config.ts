/**
 * Configuration, compiled once: environment and flags are read by the CLI and turned into this
 * frozen object; nothing below the CLI reads process.env.
 */
import { homedir, hostname } from 'node:os';
import { LOCAL_INSTANCE } from './host/local-instance.js';
import { parseLedgerUrl, type LedgerSpec } from './ledger/ledger-url.js';
import { parseSelector } from './placement/selector.js';
import { join } from 'node:path';
import { parseDuration } from './model/duration.js';
import { RrmError } from './model/errors.js';

export interface Config {
  readonly stateDir: string;
  /** The SQLite file of the embedded ledger (also the default for history and notifications). */
  readonly ledgerPath: string;
  /** Which ledger: the embedded SQLite file, or etcd for a fleet (`--ledger`, RRM_LEDGER). */
  readonly ledger: LedgerSpec;
  /** This host's instance: `local` on the embedded ledger, the hostname on etcd (RRM_INSTANCE). */
  readonly instanceId: string;
  /** Labels this instance is registered with (RRM_INSTANCE_LABELS=zone=a,os=debian), plus host. */
  readonly instanceLabels: Readonly<Record<string, string>>;
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
  /** `auto` probes cgroups; `none` runs advisory (accounted, not enforced). */
  readonly enforce: 'auto' | 'none';
  /** The parent cgroup rrm creates reservations under. */
  readonly cgroupParent: string;
  /** A hard reservation without limits is capped at request × (1 + this) (RRM_LIMIT_MARGIN: 25% or 0.25). */
  readonly limitMargin: number;
  /** The block device (major:minor) that disk I/O rates are enforced on (RRM_IO_DEVICE); none: not enforced. */
  readonly ioDevice: string | undefined;
}

export function defaultStateDir(env: NodeJS.ProcessEnv, uid: number): string {
  if (uid === 0) return '/var/lib/rrm';
  const xdg =
    env.XDG_STATE_HOME && env.XDG_STATE_HOME.startsWith('/')
      ? env.XDG_STATE_HOME
      : join(homedir(), '.local', 'state');
  return join(xdg, 'rrm');
}

function parseMargin(text: string | undefined): number {
  if (text === undefined || text === '') return 0.25;
  const m = /^(\d+(?:\.\d+)?)(%?)$/.exec(text.trim());
  const v = m ? Number(m[1]) / (m[2] ? 100 : 1) : NaN;
  if (!Number.isFinite(v) || v > 10)
    throw new RrmError(
      'RRM_ERR_USAGE',
      `RRM_LIMIT_MARGIN: ${JSON.stringify(text)} is not a fraction (0.25) or a percentage (25%) up to 1000%`,
    );
  return v;
}

function parseIoDevice(text: string | undefined): string | undefined {
  if (text === undefined || text === '') return undefined;
  if (!/^\d+:\d+$/.test(text))
    throw new RrmError(
      'RRM_ERR_USAGE',
      `RRM_IO_DEVICE: ${JSON.stringify(text)} is not major:minor (e.g. 8:0)`,
    );
  return text;
}

function parseEnforce(text: string | undefined): 'auto' | 'none' {
  if (text === undefined || text === '' || text === 'auto') return 'auto';
  if (text === 'none') return 'none';
  throw new RrmError('RRM_ERR_USAGE', `RRM_ENFORCE: ${JSON.stringify(text)} is not auto or none`);
}

export function compileConfig(
  env: NodeJS.ProcessEnv,
  flags: { stateDir?: string; ledger?: string } = {},
): Config {
  // An empty RRM_STATE_DIR is unset, never "the current directory".
  const stateDir =
    flags.stateDir ?? (env.RRM_STATE_DIR || undefined) ?? defaultStateDir(env, process.getuid?.() ?? 1000);
  const leaseMs = env.RRM_LEASE ? parseDuration(env.RRM_LEASE, 'RRM_LEASE') : 30_000;
  const graceMs = env.RRM_GRACE ? parseDuration(env.RRM_GRACE, 'RRM_GRACE') : 10_000;
  const ledgerPath = join(stateDir, 'ledger.db');
  const ledger = parseLedgerUrl(flags.ledger ?? env.RRM_LEDGER, ledgerPath, env);
  const instanceId =
    env.RRM_INSTANCE ?? (ledger.kind === 'sqlite' ? LOCAL_INSTANCE : hostname().toLowerCase());
  if (!/^[a-z0-9][a-z0-9._-]{0,127}$/.test(instanceId)) {
    throw new RrmError(
      'RRM_ERR_BAD_NAME',
      `instance id ${JSON.stringify(instanceId)}: use lowercase letters, digits, ".", "_" and "-" (set RRM_INSTANCE)`,
    );
  }
  const labels = parseSelector(env.RRM_INSTANCE_LABELS ?? '');
  if (Object.values(labels).some((v) => v.startsWith('!'))) {
    throw new RrmError('RRM_ERR_USAGE', 'RRM_INSTANCE_LABELS: labels are key=value, not key!=value');
  }
  return Object.freeze({
    stateDir,
    ledgerPath: ledger.kind === 'sqlite' ? ledger.path : ledgerPath,
    ledger,
    instanceId,
    instanceLabels: Object.freeze({ host: hostname(), ...labels }),
    leaseMs,
    pollMs: env.RRM_POLL ? parseDuration(env.RRM_POLL, 'RRM_POLL') : 1000,
    graceMs,
    forceAfterMs: graceMs + 5_000,
    npmRegistry: (
      env.npm_config_registry ??
      env.NPM_CONFIG_REGISTRY ??
      'https://registry.npmjs.org/'
    ).replace(/\/?$/, '/'),
    enforce: parseEnforce(env.RRM_ENFORCE),
    cgroupParent: env.RRM_CGROUP_PARENT ?? 'rrm',
    limitMargin: parseMargin(env.RRM_LIMIT_MARGIN),
    ioDevice: parseIoDevice(env.RRM_IO_DEVICE),
    metadataTimeoutMs: env.RRM_METADATA_TIMEOUT
      ? parseDuration(env.RRM_METADATA_TIMEOUT, 'RRM_METADATA_TIMEOUT')
      : 6_000, // resolving a tree the size of eslint's with arborist takes 2–3 s on a cold cache
  });
}
