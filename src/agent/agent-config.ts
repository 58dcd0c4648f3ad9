/**
 * The agent's configuration: one schema for the config file (/etc/rrm/agent.json or --config),
 * the environment and flags; validated once at start, with errors that name the bad field, then
 * frozen. Quantities and durations are compiled to numbers here.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDuration } from '../model/duration.js';
import { RrmError } from '../model/errors.js';
import { parsePriority, PRIORITY_CLASSES } from '../model/priority.js';
import { kindOf, parseQuantity } from '../model/quantity.js';

export interface AgentPolicy {
  /** Identities that are admins (may release anything, set allocatable, use any priority). */
  readonly admins: readonly string[];
  /** Highest priority each identity may ask for; `*` is everyone else. */
  readonly maxPriority: Readonly<Record<string, number>>;
  /** Most each owner may hold at once (granted + queued), like a Kubernetes ResourceQuota; `*` = each other owner. */
  readonly quotas: Readonly<Record<string, Readonly<Record<string, number>>>>;
}

export interface AgentConfig {
  readonly stateDir: string;
  /** Unix socket path, or null for none. */
  readonly socket: string | null;
  /** Group allowed to connect to the socket (mode 0660); null = only the owner (root). */
  readonly socketGroup: string | null;
  /** TCP listener `host:port`, or null for none. */
  readonly listen: { readonly host: string; readonly port: number } | null;
  /**
   * The URL other hosts reach this agent at (`http://host:port`), registered with the instance so
   * `rrm run --target any` can send installs here; null = derived from the TCP listener.
   */
  readonly advertise: string | null;
  /**
   * TLS on the TCP listener (PEM contents): with `clientCa`, callers must present a certificate it
   * signed (mutual TLS), and the certificate's common name is their identity.
   */
  readonly tls: AgentTls | null;
  /** Per-user token files for local callers. */
  readonly tokensDir: string;
  /** Bearer tokens for remote callers: token → identity. */
  readonly tokens: Readonly<Record<string, { readonly name: string; readonly admin: boolean }>>;
  readonly policy: AgentPolicy;
  readonly bodyLimit: number;
  readonly handlerTimeoutMs: number;
  readonly maxWaitMs: number;
  readonly sweepMs: number;
  /** Lease of the instance registration on a fleet ledger: a dead agent's instance is down after it. */
  readonly instanceTtlMs: number;
  readonly logLevel: string;
}

export interface AgentTls {
  readonly cert: string;
  readonly key: string;
  readonly clientCa: string | null;
}

export const DEFAULT_CONFIG_FILE = '/etc/rrm/agent.json';
export const DEFAULT_SOCKET = '/run/rrm/agent.sock';

const KNOWN = [
  'stateDir',
  'socket',
  'socketGroup',
  'listen',
  'advertise',
  'tls',
  'tokensDir',
  'tokens',
  'policy',
  'bodyLimit',
  'handlerTimeout',
  'maxWait',
  'sweepInterval',
  'instanceTtl',
  'logLevel',
];

function bad(field: string, why: string): RrmError {
  return new RrmError('RRM_ERR_USAGE', `agent config: ${field}: ${why}`, { field });
}

function object(v: unknown, field: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(field, 'must be an object');
  return v as Record<string, unknown>;
}

function string(v: unknown, field: string): string {
  if (typeof v !== 'string' || v === '') throw bad(field, 'must be a non-empty string');
  return v;
}

function parseListen(v: string, field: string): { host: string; port: number } {
  const m = /^(.*):(\d{1,5})$/.exec(v);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw bad(field, `${JSON.stringify(v)} is not host:port`);
  return { host: m[1] || '127.0.0.1', port };
}

export interface AgentFlags {
  readonly config?: string;
  readonly stateDir?: string;
  readonly socket?: string;
  readonly listen?: string;
  readonly advertise?: string;
  readonly tokensDir?: string;
}

/** Reads the file (if any), overlays environment and flags, validates everything, freezes. */
export function compileAgentConfig(
  env: NodeJS.ProcessEnv,
  flags: AgentFlags,
  defaultStateDir: string,
): AgentConfig {
  const file =
    flags.config ??
    env.RRM_AGENT_CONFIG ??
    (existsSync(DEFAULT_CONFIG_FILE) ? DEFAULT_CONFIG_FILE : undefined);
  let raw: Record<string, unknown> = {};
  if (file) {
    try {
      raw = object(JSON.parse(readFileSync(file, 'utf8')), file);
    } catch (e) {
      throw e instanceof RrmError ? e : bad(file, `cannot read: ${e instanceof Error ? e.message : e}`);
    }
    for (const k of Object.keys(raw))
      if (!KNOWN.includes(k)) throw bad(k, `unknown field (known: ${KNOWN.join(', ')})`);
  }
  const stateDir =
    flags.stateDir ??
    env.RRM_STATE_DIR ??
    (raw.stateDir !== undefined ? string(raw.stateDir, 'stateDir') : defaultStateDir);
  const socketRaw = flags.socket ?? env.RRM_AGENT_SOCKET ?? raw.socket;
  const socket =
    socketRaw === null || socketRaw === 'none'
      ? null
      : socketRaw === undefined
        ? DEFAULT_SOCKET
        : string(socketRaw, 'socket');
  const listenRaw = flags.listen ?? env.RRM_AGENT_LISTEN ?? raw.listen;
  const listen =
    listenRaw === undefined || listenRaw === null ? null : parseListen(string(listenRaw, 'listen'), 'listen');
  const advertiseRaw = flags.advertise ?? env.RRM_AGENT_ADVERTISE ?? raw.advertise;
  const advertise =
    advertiseRaw === undefined || advertiseRaw === null ? null : string(advertiseRaw, 'advertise');
  const tls = compileTls(env, raw.tls);
  if (tls && !listen) throw bad('tls', 'applies to the TCP listener: set listen too');
  if (advertise !== null && !/^https?:\/\/([^/:\s]+|\[[^\]\s]+\]):\d{1,5}\/?$/.test(advertise))
    throw bad('advertise', `${JSON.stringify(advertise)} is not http://host:port or https://host:port`);
  const tokens: Record<string, { name: string; admin: boolean }> = {};
  for (const [name, spec] of Object.entries(raw.tokens === undefined ? {} : object(raw.tokens, 'tokens'))) {
    const t = object(spec, `tokens.${name}`);
    const token = string(t.token, `tokens.${name}.token`);
    if (token.length < 16) throw bad(`tokens.${name}.token`, 'must be at least 16 characters');
    tokens[token] = { name, admin: t.admin === true };
  }
  const p = raw.policy === undefined ? {} : object(raw.policy, 'policy');
  const admins =
    p.admins === undefined
      ? ['root']
      : (p.admins as unknown[]).map((a, i) => string(a, `policy.admins[${i}]`));
  const maxPriority: Record<string, number> = { '*': PRIORITY_CLASSES.critical - 1 };
  for (const [who, v] of Object.entries(
    p.maxPriority === undefined ? {} : object(p.maxPriority, 'policy.maxPriority'),
  )) {
    maxPriority[who] = parsePriority(String(v));
  }
  const quotas: Record<string, Record<string, number>> = {};
  for (const [who, v] of Object.entries(p.quotas === undefined ? {} : object(p.quotas, 'policy.quotas'))) {
    const q: Record<string, number> = {};
    for (const [dim, amount] of Object.entries(object(v, `policy.quotas.${who}`))) {
      q[dim] = parseQuantity(String(amount), kindOf(dim), `policy.quotas.${who}.${dim}`);
    }
    quotas[who] = q;
  }
  const duration = (v: unknown, field: string, fallback: number): number =>
    v === undefined ? fallback : parseDuration(String(v), `agent config ${field}`);
  return Object.freeze({
    stateDir,
    socket,
    socketGroup: raw.socketGroup === undefined ? null : string(raw.socketGroup, 'socketGroup'),
    listen,
    advertise: advertise?.replace(/\/$/, '') ?? null,
    tls,
    tokensDir:
      flags.tokensDir ??
      (raw.tokensDir !== undefined
        ? string(raw.tokensDir, 'tokensDir')
        : socket
          ? join(socket, '..', 'tokens')
          : join(stateDir, 'tokens')),
    tokens: Object.freeze(tokens),
    policy: Object.freeze({
      admins: Object.freeze(admins),
      maxPriority: Object.freeze(maxPriority),
      quotas: Object.freeze(quotas),
    }),
    bodyLimit:
      raw.bodyLimit === undefined ? 64 * 1024 : parseQuantity(String(raw.bodyLimit), 'bytes', 'bodyLimit'),
    handlerTimeoutMs: duration(raw.handlerTimeout, 'handlerTimeout', 10_000),
    maxWaitMs: duration(raw.maxWait, 'maxWait', 60_000),
    sweepMs: duration(raw.sweepInterval, 'sweepInterval', 1_000),
    instanceTtlMs: duration(env.RRM_INSTANCE_TTL ?? raw.instanceTtl, 'instanceTtl', 10_000),
    logLevel: raw.logLevel === undefined ? (env.RRM_LOG_LEVEL ?? 'info') : string(raw.logLevel, 'logLevel'),
  });
}

function readPem(file: string, field: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw bad(field, `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
}

/** `tls: {cert, key, clientCa}` (file paths), each overridden by RRM_AGENT_TLS_CERT/_KEY/_CLIENT_CA. */
function compileTls(env: NodeJS.ProcessEnv, rawTls: unknown): AgentTls | null {
  const t = rawTls === undefined || rawTls === null ? {} : object(rawTls, 'tls');
  for (const k of Object.keys(t))
    if (!['cert', 'key', 'clientCa'].includes(k))
      throw bad(`tls.${k}`, 'unknown field (known: cert, key, clientCa)');
  const cert = env.RRM_AGENT_TLS_CERT ?? (t.cert === undefined ? undefined : string(t.cert, 'tls.cert'));
  const key = env.RRM_AGENT_TLS_KEY ?? (t.key === undefined ? undefined : string(t.key, 'tls.key'));
  const clientCa =
    env.RRM_AGENT_TLS_CLIENT_CA ??
    (t.clientCa === undefined ? undefined : string(t.clientCa, 'tls.clientCa'));
  if (cert === undefined && key === undefined && clientCa === undefined) return null;
  if (cert === undefined || key === undefined) throw bad('tls', 'needs both cert and key');
  return Object.freeze({
    cert: readPem(cert, 'tls.cert'),
    key: readPem(key, 'tls.key'),
    clientCa: clientCa === undefined ? null : readPem(clientCa, 'tls.clientCa'),
  });
}

/**
 * The endpoint registered for this agent: `advertise` if set, else the TCP listener as bound
 * (a wildcard address is replaced by the host name); none without TCP.
 */
export function advertisedEndpoint(
  advertise: string | null,
  bound: { readonly host: string; readonly port: number } | undefined,
  host: string,
  tls = false,
): string | undefined {
  if (advertise) return advertise;
  if (!bound) return undefined;
  const name = bound.host === '0.0.0.0' || bound.host === '::' ? host : bound.host;
  return `${tls ? 'https' : 'http'}://${name.includes(':') ? `[${name}]` : name}:${bound.port}`;
}
