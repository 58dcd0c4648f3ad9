/**
 * `rrm agent`: the per-instance daemon. The same ledger and semantics as embedded mode (one
 * CoreLedger underneath), served over a Unix socket and optionally TCP; a sweeper that expires
 * leases and reclaims dead holders; and recovery after a restart: installs the previous agent
 * process was running are reported and queued again.
 */
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readFileSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:https';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { hostname } from 'node:os';
import pino from 'pino';
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config.js';
import { localEnforcer } from '../host/local-enforcer.js';
import { processStartTime } from '../host/process-identity.js';
import type { CoreLedger } from '../ledger/core-ledger.js';
import { openLedger } from '../ledger/open.js';
import { RrmError } from '../model/errors.js';
import { requestOf, type Reservation, type ReservationRequest } from '../model/reservation.js';
import { runInstall } from '../runner/run-install.js';
import { HistoryStore } from '../profiles/history.js';
import { advertisedEndpoint, type AgentConfig } from './agent-config.js';
import { buildApp } from './app.js';
import type { InstallRunner } from './routes/installs.js';
import { Identities, localUsers } from './identities.js';
import { AgentMetrics } from './metrics.js';
import { ChangeHub } from './change-hub.js';

export interface RunningAgent {
  readonly app: FastifyInstance;
  readonly ledger: CoreLedger;
  readonly tcpAddress?: { host: string; port: number };
  stop(): Promise<void>;
}

interface AgentRecord {
  pid: number;
  startTime: number;
}

function loadSecret(stateDir: string): Buffer {
  const file = join(stateDir, 'agent.secret');
  if (existsSync(file)) return readFileSync(file);
  const secret = randomBytes(32);
  writeFileSync(file, secret, { mode: 0o600 });
  return secret;
}

async function socketInUse(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** The request that reruns an install the previous agent process was running. */
export function retryRequest(r: Reservation, holder: ReservationRequest['holder']): ReservationRequest {
  const again = requestOf(r, Date.now());
  return {
    ...again,
    target: r.instance, // the install runs here, whatever placed it first
    placement: undefined,
    waitMs: undefined,
    holder: { ...holder, owner: r.holder.owner },
    retryOf: r.id,
    attempt: r.attempt + 1,
  };
}

export async function startAgent(
  config: AgentConfig,
  ledgerConfig: Config,
  version: string,
): Promise<RunningAgent> {
  const log = pino({ level: config.logLevel, base: { service: 'rrm-agent' } });
  mkdirSync(config.stateDir, { recursive: true });
  const enforcer = localEnforcer(ledgerConfig);
  const ledger = await openLedger(ledgerConfig, enforcer, { createInstance: true });
  const me: AgentRecord = { pid: process.pid, startTime: processStartTime(process.pid) };
  const recordFile = join(config.stateDir, 'agent-process.json');
  const previous = existsSync(recordFile)
    ? (JSON.parse(readFileSync(recordFile, 'utf8')) as AgentRecord)
    : undefined;
  writeFileSync(recordFile, JSON.stringify(me));

  const identities = new Identities(config.tokens, config.policy.admins);
  const isRoot = process.getuid?.() === 0;
  identities.provisionLocal(
    config.tokensDir,
    isRoot ? localUsers() : localUsers().filter((u) => u.uid === process.getuid?.()),
  );
  const metrics = new AgentMetrics(ledger, enforcer);
  await metrics.start(ledger);
  const changes = new ChangeHub(ledger);
  await changes.start();
  const shutdown = new AbortController();
  const running = new Set<Promise<unknown>>();
  const holder = { host: hostname(), pid: me.pid, startTime: me.startTime, owner: 'agent' };
  // Remote installs teach this instance's history, as `rrm run` does.
  const history = HistoryStore.tryOpen(ledgerConfig.stateDir);
  const installs: InstallRunner = (request, hooks) => {
    const p = runInstall(
      ledger,
      enforcer,
      request,
      {
        ...hooks,
        env: process.env,
        forwardSignals: false,
        onFinished: (result, grant) => history?.learn(request.packages ?? [], result, grant),
      },
      ledgerConfig,
    );
    running.add(p);
    void p.finally(() => running.delete(p)).catch(() => undefined);
    return p;
  };

  // Recovery: reclaim what died with the previous process, then queue its installs again.
  const instanceId = ledgerConfig.instanceId;
  await ledger.sweep(instanceId);
  if (previous && previous.pid !== me.pid) {
    const orphans = (await ledger.list({ states: ['expired'], limit: 10_000 })).filter(
      (r) =>
        r.holder.pid === previous.pid &&
        r.holder.startTime === previous.startTime &&
        r.command?.length &&
        r.reason === 'holder process is gone',
    );
    const already = new Set((await ledger.list({ limit: 10_000 })).map((r) => r.retryOf).filter(Boolean));
    for (const r of orphans.filter((o) => !already.has(o.id))) {
      log.warn(
        { reservation: r.id, command: r.command },
        'install interrupted by an agent restart; queued again',
      );
      await ledger.recordEvent({
        instance: r.instance,
        reservation: r.id,
        type: 'measured',
        reason: 'interrupted by an agent restart; requeued',
        by: 'agent',
      });
      void installs(retryRequest(r, holder), {
        say: (event, text, data) => log.info({ event, ...data }, text),
        signal: shutdown.signal,
      }).catch((e) => log.error({ err: e, reservation: r.id }, 'requeued install failed'));
    }
  }

  const app = await buildApp({
    ledger,
    instanceId,
    enforcer,
    config,
    identities,
    metrics,
    changes,
    installs,
    version,
    hostname: hostname(),
    startTime: me.startTime,
    secret: loadSecret(config.stateDir),
    shutdown: shutdown.signal,
    logger: { level: config.logLevel, base: { service: 'rrm-agent' } },
  });
  await app.ready();

  if (config.socket) {
    mkdirSync(dirname(config.socket), { recursive: true, mode: 0o755 });
    if (existsSync(config.socket)) {
      if (await socketInUse(config.socket)) {
        await ledger.close();
        throw new RrmError('RRM_ERR_USAGE', `another agent is listening on ${config.socket}`);
      }
      unlinkSync(config.socket);
    }
    await app.listen({ path: config.socket });
    chmodSync(config.socket, 0o660);
    if (config.socketGroup) {
      const gid = Number(
        execFileSync('getent', ['group', config.socketGroup], { encoding: 'utf8' }).split(':')[2],
      );
      chownSync(config.socket, -1, gid);
    }
  }
  let tcp: Server | TlsServer | undefined;
  let tcpAddress: { host: string; port: number } | undefined;
  if (config.listen) {
    const tls = config.tls;
    tcp = tls
      ? createTlsServer(
          {
            cert: tls.cert,
            key: tls.key,
            // Mutual TLS: only certificates the client CA signed get through the handshake.
            ...(tls.clientCa ? { ca: tls.clientCa, requestCert: true, rejectUnauthorized: true } : {}),
          },
          (req, res) => app.routing(req, res),
        )
      : createServer((req, res) => app.routing(req, res));
    tcp.requestTimeout = config.maxWaitMs + 30_000;
    await new Promise<void>((resolve, reject) => {
      tcp!.once('error', reject);
      tcp!.listen(config.listen!.port, config.listen!.host, resolve);
    });
    const addr = tcp.address() as { address: string; port: number };
    tcpAddress = { host: addr.address, port: addr.port };
  }
  if (!config.socket) await app.ready();

  // Register the instance (a no-op on the embedded ledger) once the API listens: while this agent
  // lives it is up, and other hosts reach it at its advertised endpoint.
  const endpoint = advertisedEndpoint(config.advertise, tcpAddress, hostname(), config.tls !== null);
  const registration = await ledger.store
    .register(
      instanceId,
      {
        host: hostname(),
        pid: me.pid,
        since: Date.now(),
        driver: enforcer.report.driver,
        ...(endpoint ? { endpoint } : {}),
        version,
      },
      config.instanceTtlMs,
    )
    .catch(async (e: unknown) => {
      tcp?.close();
      await app.close();
      if (config.socket && existsSync(config.socket)) unlinkSync(config.socket);
      await ledger.close();
      throw e;
    });
  void registration.lost.then(() =>
    log.error({ instance: instanceId }, 'lost the instance registration: this instance is down in the fleet'),
  );

  const sweeper = setInterval(() => {
    void ledger
      .sweep(instanceId)
      .then(async (reclaimed) => {
        for (const r of reclaimed) log.info({ reservation: r.id, state: r.state }, r.reason ?? 'reclaimed');
        // In a fleet, any agent ends the reservations of an instance whose agent vanished.
        if (ledgerConfig.ledger.kind !== 'etcd') return;
        for (const s of await ledger.instanceStatus()) {
          if (s.state !== 'down' || s.grants + s.queued === 0) continue;
          const ended = await ledger.sweep(s.instance.id);
          if (ended.length)
            log.warn(
              { instance: s.instance.id, ended: ended.length },
              'instance down: its reservations ended',
            );
        }
      })
      .catch((e) => log.error({ err: e }, 'sweep failed'));
  }, config.sweepMs);
  const unwatch = ledger.watch(() => void metrics.observe(ledger).catch(() => undefined));
  log.info(
    { socket: config.socket, tcp: tcpAddress, enforcement: enforcer.report.driver, pid: me.pid },
    'rrm agent ready',
  );

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      log.info('shutting down: stopping running installs and releasing their reservations');
      clearInterval(sweeper);
      await registration.stop();
      unwatch();
      changes.stop();
      shutdown.abort();
      await Promise.allSettled([...running]);
      if (tcp) {
        tcp.closeAllConnections();
        await new Promise<void>((r) => tcp!.close(() => r()));
      }
      await app.close();
      if (config.socket && existsSync(config.socket)) unlinkSync(config.socket);
      await ledger.close();
      history?.close();
      log.info('stopped');
    })());
  return { app, ledger, tcpAddress, stop };
}
