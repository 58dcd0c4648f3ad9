/**
 * The ledger as seen through an `rrm agent`: the same LedgerClient the embedded ledger implements,
 * over HTTP on the agent's Unix socket or TCP. Change notifications come from the agent's event
 * stream (server-sent events), so waiters still sleep until something changes.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { userInfo } from 'node:os';
import type { Prediction } from '../admission/prediction.js';
import type { WaitStatus } from '../admission/schedule.js';
import type { InstanceRecord } from '../admission/snapshot.js';
import type { InstanceStatus } from '../placement/instance-status.js';
import type { Reserved } from '../ledger/core-ledger.js';
import type { LedgerClient, ReleaseOptions, ReleaseWho } from '../ledger/ledger-client.js';
import type { EventFilter, ListFilter, StoredEvent } from '../ledger/ledger.js';
import { CATALOGUE, RrmError, type ErrorCode } from '../model/errors.js';
import type { Reservation, ReservationRequest } from '../model/reservation.js';
import type { ResourceVector } from '../model/vector.js';

export interface AgentEndpoint {
  readonly socketPath?: string;
  readonly host?: string;
  readonly port?: number;
  /** Bearer token; may be absent over mutual TLS, where the client certificate is the identity. */
  readonly token?: string;
  /** HTTPS: the CA that signed the agent's certificate, and the client certificate for mutual TLS. */
  readonly tls?: { readonly ca?: Buffer; readonly cert?: Buffer; readonly key?: Buffer };
  /** A human description: the socket path or the URL. */
  readonly where: string;
}

function readTlsFile(file: string | undefined, variable: string): Buffer | undefined {
  if (file === undefined || file === '') return undefined;
  try {
    return readFileSync(file);
  } catch (e) {
    throw new RrmError(
      'RRM_ERR_USAGE',
      `${variable}: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`,
    );
  }
}

/**
 * `unix:/path`, `/path`, `http://host:port` or `https://host:port`. The token comes from
 * RRM_AGENT_TOKEN or, on a local socket, the caller's token file. Over HTTPS, RRM_AGENT_CA names
 * the CA to trust (default: the system's), and RRM_AGENT_CERT + RRM_AGENT_KEY a client certificate
 * (mutual TLS), which is then enough without a token.
 */
export function parseAgentUrl(url: string, env: NodeJS.ProcessEnv, tokensDir?: string): AgentEndpoint {
  const socketPath = url.startsWith('unix:') ? url.slice(5) : url.startsWith('/') ? url : undefined;
  let token = env.RRM_AGENT_TOKEN || undefined;
  if (!token && socketPath) {
    const file = join(tokensDir ?? join(socketPath, '..', 'tokens'), userInfo().username);
    try {
      token = readFileSync(file, 'utf8').trim();
    } catch {
      throw new RrmError(
        'RRM_ERR_UNAUTHENTICATED',
        `cannot read the agent token ${file}; set RRM_AGENT_TOKEN`,
      );
    }
  }
  if (socketPath) return { socketPath, token, where: socketPath };
  const m = /^(https?):\/\/([^/:]+|\[[^\]]+\]):(\d+)\/?$/.exec(url);
  if (!m)
    throw new RrmError(
      'RRM_ERR_USAGE',
      `--agent: ${JSON.stringify(url)} is not unix:/path, /path, http://host:port or https://host:port`,
    );
  const host = m[2]!.replace(/^\[|\]$/g, '');
  const port = Number(m[3]);
  if (m[1] === 'http') {
    if (!token) throw new RrmError('RRM_ERR_UNAUTHENTICATED', `set RRM_AGENT_TOKEN to talk to ${url}`);
    return { host, port, token, where: url };
  }
  const cert = readTlsFile(env.RRM_AGENT_CERT, 'RRM_AGENT_CERT');
  const key = readTlsFile(env.RRM_AGENT_KEY, 'RRM_AGENT_KEY');
  if ((cert === undefined) !== (key === undefined))
    throw new RrmError(
      'RRM_ERR_USAGE',
      'RRM_AGENT_CERT and RRM_AGENT_KEY go together (a client certificate and its key)',
    );
  if (!token && !cert)
    throw new RrmError(
      'RRM_ERR_UNAUTHENTICATED',
      `set RRM_AGENT_TOKEN, or RRM_AGENT_CERT and RRM_AGENT_KEY, to talk to ${url}`,
    );
  const ca = readTlsFile(env.RRM_AGENT_CA, 'RRM_AGENT_CA');
  return {
    host,
    port,
    token,
    tls: { ...(ca ? { ca } : {}), ...(cert && key ? { cert, key } : {}) },
    where: url,
  };
}

export function isRemote(ep: AgentEndpoint): boolean {
  return ep.socketPath === undefined;
}

interface HttpAnswer {
  status: number;
  body: unknown;
}

export class AgentClient implements LedgerClient {
  private readonly listeners = new Set<() => void>();
  private stream: IncomingMessage | undefined;
  private closed = false;

  constructor(readonly endpoint: AgentEndpoint) {}

  /** Opens a raw request (used for streaming installs too). */
  open(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<IncomingMessage> {
    const ep = this.endpoint;
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = (ep.tls ? httpsRequest : httpRequest)(
        {
          method,
          path,
          socketPath: ep.socketPath,
          host: ep.host,
          port: ep.port,
          ...ep.tls,
          headers: {
            ...(ep.token ? { authorization: `Bearer ${ep.token}` } : {}),
            ...(payload
              ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }
              : {}),
            ...headers,
          },
        },
        resolve,
      );
      req.on('error', (e) =>
        reject(new RrmError('RRM_ERR_AGENT_UNAVAILABLE', `agent at ${ep.where}: ${e.message}`)),
      );
      if (payload) req.write(payload);
      req.end();
    });
  }

  async call(method: string, path: string, body?: unknown): Promise<HttpAnswer> {
    const res = await this.open(method, path, body);
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    let parsed: unknown = undefined;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = { error: { code: 'RRM_ERR_INTERNAL', message: text.slice(0, 200) } };
    }
    return { status: res.statusCode ?? 0, body: parsed };
  }

  private async ok<T>(method: string, path: string, body?: unknown): Promise<T> {
    const a = await this.call(method, path, body);
    if (a.status >= 200 && a.status < 300) return a.body as T;
    throw toError(a);
  }

  async instance(id: string): Promise<InstanceRecord | undefined> {
    return (await this.instances()).find((i) => i.id === id);
  }

  async instances(): Promise<InstanceRecord[]> {
    return (await this.ok<{ instances: InstanceRecord[] }>('GET', '/v1/instances')).instances;
  }

  async setAllocatable(
    id: string,
    allocatable: ResourceVector,
    capacity: ResourceVector,
  ): Promise<InstanceRecord> {
    const out = await this.ok<{ instance: InstanceRecord }>(
      'PUT',
      `/v1/instances/${encodeURIComponent(id)}/allocatable`,
      {
        allocatable,
        capacity,
      },
    );
    return out.instance;
  }

  async predict(request: ReservationRequest): Promise<Prediction> {
    return (
      await this.ok<{ prediction: Prediction }>('POST', '/v1/reservations/dry-run', requestBody(request))
    ).prediction;
  }

  async reserve(request: ReservationRequest): Promise<Reserved> {
    const body = requestBody(request);
    const a = await this.call('POST', '/v1/reservations', body);
    if (a.status === 201 || a.status === 202) {
      const b = a.body as {
        outcome: 'granted' | 'queued';
        reservation: Reservation;
        token: string;
        status?: WaitStatus;
      };
      const outcome =
        b.outcome === 'granted'
          ? { kind: 'granted' as const, reservation: b.reservation }
          : { kind: 'queued' as const, reservation: b.reservation, status: b.status as WaitStatus };
      return { outcome, token: b.token };
    }
    const err = (a.body as { error?: Record<string, unknown> } | undefined)?.error;
    if (err && (err.code === 'RRM_ERR_CAPACITY_SHORT' || err.code === 'RRM_ERR_UNSATISFIABLE')) {
      const reservation = (await this.get(String(err.id))) as Reservation;
      return {
        outcome: {
          kind: 'rejected',
          reservation,
          code: err.code,
          shortfall: (err.shortfall ?? []) as never,
          ahead: (err.ahead ?? []) as string[],
        },
        token: '',
      };
    }
    throw toError(a);
  }

  async relocate(id: string, token: string): Promise<Reservation> {
    const path = `/v1/reservations/${encodeURIComponent(id)}/relocate`;
    return (await this.ok<{ reservation: Reservation }>('POST', path, { token })).reservation;
  }

  async instanceStatus(): Promise<InstanceStatus[]> {
    return (await this.ok<{ instances: InstanceStatus[] }>('GET', '/v1/instances/status')).instances;
  }

  async renew(id: string, token: string): Promise<Reservation> {
    return (await this.ok<{ reservation: Reservation }>('POST', `/v1/reservations/${id}/renew`, { token }))
      .reservation;
  }

  async setProcessGroup(id: string, token: string, pgid: number): Promise<Reservation> {
    return (
      await this.ok<{ reservation: Reservation }>('POST', `/v1/reservations/${id}/process`, { token, pgid })
    ).reservation;
  }

  async acknowledgePause(id: string, token: string): Promise<Reservation> {
    return (await this.ok<{ reservation: Reservation }>('POST', `/v1/reservations/${id}/paused`, { token }))
      .reservation;
  }

  async release(id: string, who: ReleaseWho, opts: ReleaseOptions = {}): Promise<Reservation> {
    const body = { ...(who.token ? { token: who.token } : {}), ...opts };
    return (await this.ok<{ reservation: Reservation }>('POST', `/v1/reservations/${id}/release`, body))
      .reservation;
  }

  async get(id: string): Promise<Reservation | undefined> {
    const a = await this.call('GET', `/v1/reservations/${encodeURIComponent(id)}`);
    if (a.status === 404) return undefined;
    if (a.status !== 200) throw toError(a);
    return (a.body as { reservation: Reservation }).reservation;
  }

  async waitStatus(id: string): Promise<WaitStatus | undefined> {
    const a = await this.call('GET', `/v1/reservations/${encodeURIComponent(id)}`);
    return a.status === 200 ? (a.body as { status?: WaitStatus }).status : undefined;
  }

  async list(filter: ListFilter = {}): Promise<Reservation[]> {
    const q = new URLSearchParams();
    if (filter.states?.length) q.set('state', filter.states.join(','));
    if (filter.instance) q.set('instance', filter.instance);
    if (filter.limit) q.set('limit', String(filter.limit));
    return (await this.ok<{ reservations: Reservation[] }>('GET', `/v1/reservations?${q}`)).reservations;
  }

  async events(filter: EventFilter = {}): Promise<StoredEvent[]> {
    const q = new URLSearchParams();
    if (filter.afterSeq !== undefined) q.set('afterSeq', String(filter.afterSeq));
    if (filter.reservation) q.set('reservation', filter.reservation);
    if (filter.limit) q.set('limit', String(filter.limit));
    return (await this.ok<{ events: StoredEvent[] }>('GET', `/v1/events?${q}`)).events;
  }

  async sweep(): Promise<Reservation[]> {
    return [];
  }

  watch(listener: () => void): () => void {
    this.listeners.add(listener);
    if (!this.stream) void this.follow();
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) {
        this.stream?.destroy();
        this.stream = undefined;
      }
    };
  }

  private async follow(): Promise<void> {
    try {
      const res = await this.open('GET', '/v1/events', undefined, { accept: 'text/event-stream' });
      if (this.closed || this.listeners.size === 0) return void res.destroy();
      this.stream = res;
      res.on('data', () => {
        for (const l of this.listeners) l();
      });
      res.on('close', () => {
        if (this.stream === res) this.stream = undefined;
        if (!this.closed && this.listeners.size > 0) setTimeout(() => void this.follow(), 500).unref();
      });
    } catch {
      if (!this.closed && this.listeners.size > 0) setTimeout(() => void this.follow(), 1000).unref();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.listeners.clear();
    this.stream?.destroy();
    this.stream = undefined;
  }
}

function toError(a: HttpAnswer): RrmError {
  const e = (a.body as { error?: { code?: string; message?: string } & Record<string, unknown> } | undefined)
    ?.error;
  const code = (
    e?.code && e.code in CATALOGUE
      ? e.code
      : a.status >= 500
        ? 'RRM_ERR_AGENT_UNAVAILABLE'
        : 'RRM_ERR_BAD_REQUEST'
  ) as ErrorCode;
  const { code: _c, message, ...details } = e ?? {};
  return new RrmError(code, String(message ?? `agent answered HTTP ${a.status}`), details);
}

/** The JSON body of a create (and of a dry run) for a request. */
function requestBody(request: ReservationRequest): Record<string, unknown> {
  return {
    requests: request.requests,
    ...(request.limits ? { limits: request.limits } : {}),
    target: request.target,
    ...(request.placement
      ? { selector: request.placement.selector, strategy: request.placement.strategy }
      : {}),
    mode: request.mode,
    priority: request.priority,
    ...(request.waitMs !== undefined ? { waitMs: request.waitMs } : {}),
    ...(request.timeLimitMs !== undefined ? { timeLimitMs: request.timeLimitMs } : {}),
    leaseMs: request.leaseMs,
    preemptible: request.preemptible,
    mayPreempt: request.mayPreempt,
    onPreempt: request.onPreempt,
    packages: request.packages,
    ...(request.command ? { command: request.command } : {}),
    ...(request.idempotencyKey ? { idempotencyKey: request.idempotencyKey } : {}),
    holder: { host: request.holder.host, pid: request.holder.pid, startTime: request.holder.startTime },
    ...(request.retryOf ? { retryOf: request.retryOf } : {}),
    ...(request.attempt ? { attempt: request.attempt } : {}),
  };
}
