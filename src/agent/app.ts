/**
 * The agent's HTTP API as a fastify app: authentication, error mapping to the catalogue, and the
 * route plugins. Built without listening, so tests drive it with app.inject() as well as sockets.
 */
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import type { Enforcer } from '../enforce/enforcer.js';
import type { CoreLedger } from '../ledger/core-ledger.js';
import { isRrmError, RrmError, type ErrorCode } from '../model/errors.js';
import type { AgentConfig } from './agent-config.js';
import type { Identities } from './identities.js';
import type { AgentMetrics } from './metrics.js';
import type { ChangeHub } from './change-hub.js';
import { openApiDocument, type RouteDoc } from './openapi.js';
import type { Identity } from './policy.js';
import { reservationRoutes } from './routes/reservations.js';
import { instanceRoutes } from './routes/instances.js';
import { eventRoutes } from './routes/events.js';
import { installRoutes, type InstallRunner } from './routes/installs.js';

declare module 'fastify' {
  interface FastifyRequest {
    identity?: Identity;
  }
}

export interface AgentDeps {
  readonly ledger: CoreLedger;
  /** This agent's instance: the default target of requests and installs. */
  readonly instanceId: string;
  readonly enforcer: Enforcer;
  readonly config: AgentConfig;
  readonly identities: Identities;
  readonly metrics: AgentMetrics;
  readonly changes: ChangeHub;
  readonly installs: InstallRunner;
  readonly version: string;
  readonly hostname: string;
  /** The agent process's start time (holder identity of the installs it runs). */
  readonly startTime: number;
  /** Agent-private secret (derives tokens for idempotent retries). */
  readonly secret: Buffer;
  /** Aborted when the agent shuts down: long polls and streams end. */
  readonly shutdown: AbortSignal;
  readonly logger?: boolean | object;
}

export function caller(req: FastifyRequest): Identity {
  if (!req.identity) throw new RrmError('RRM_ERR_UNAUTHENTICATED', 'no identity');
  return req.identity;
}

function errorBody(
  code: ErrorCode,
  message: string,
  details: Record<string, unknown> = {},
): { error: Record<string, unknown> } {
  return { error: { code, message, ...details } };
}

export async function buildApp(deps: AgentDeps): Promise<FastifyInstance> {
  const app = Fastify({
    logger: deps.logger ?? false,
    bodyLimit: deps.config.bodyLimit,
    requestTimeout: deps.config.maxWaitMs + 30_000,
    // No type coercion: "2" must stay the quantity string "2" (2 CPUs), not become 2 millicores.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
    genReqId: () => `req-${Math.random().toString(36).slice(2, 10)}`,
  });
  const routes: RouteDoc[] = [];
  app.addHook('onRoute', (r) => {
    if (r.url.startsWith('/v1/')) {
      for (const m of [r.method].flat())
        if (m !== 'HEAD')
          routes.push({
            method: m,
            url: r.url,
            summary: String((r.config as { summary?: string } | undefined)?.summary ?? ''),
            schema: (r.schema ?? {}) as RouteDoc['schema'],
          });
    }
  });
  // Every handler answers within handlerTimeout, except the ones that wait or stream by design
  // (config.longRunning: long polls, server-sent events, remote installs), bounded by their own limits.
  app.addHook('onRoute', (r) => {
    if ((r.config as { longRunning?: boolean } | undefined)?.longRunning) return;
    const handler = r.handler;
    const ms = deps.config.handlerTimeoutMs;
    r.handler = async function (this: FastifyInstance, req, reply) {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new RrmError(
                'RRM_ERR_HANDLER_TIMEOUT',
                `${req.method} ${req.url} did not finish within the agent's handler timeout of ${ms} ms`,
              ),
            ),
          ms,
        );
      });
      try {
        return await Promise.race([handler.call(this, req, reply), late]);
      } finally {
        clearTimeout(timer);
      }
    };
  });
  app.addHook('onRequest', async (req) => {
    if (!req.url.startsWith('/v1/')) return;
    const who =
      deps.identities.resolve(req.headers.authorization) ?? deps.identities.fromCertificate(req.raw.socket);
    if (!who)
      throw new RrmError(
        'RRM_ERR_UNAUTHENTICATED',
        'present a token: Authorization: Bearer <token> (local users: the file in the agent tokens directory), or a client certificate over mutual TLS',
      );
    req.identity = who;
    req.log = req.log.child({ identity: who.name });
  });
  app.setErrorHandler((err, req, reply) => {
    if (isRrmError(err)) {
      if (err.httpStatus >= 500) req.log.error({ err }, err.message);
      return reply.status(err.httpStatus).send({ error: err.toJSON() });
    }
    const e = err as { code?: string; statusCode?: number; validation?: unknown; message: string };
    if (e.validation)
      return reply.status(400).send(errorBody('RRM_ERR_BAD_JSON', `invalid request: ${e.message}`));
    if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
      return reply
        .status(413)
        .send(errorBody('RRM_ERR_BODY_TOO_LARGE', `request body over ${deps.config.bodyLimit} bytes`));
    if (
      e.code === 'FST_ERR_CTP_INVALID_JSON_BODY' ||
      e.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' ||
      (e.statusCode === 400 && /JSON/i.test(e.message))
    ) {
      return reply.status(400).send(errorBody('RRM_ERR_BAD_JSON', `body is not valid JSON: ${e.message}`));
    }
    if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE')
      return reply.status(415).send(errorBody('RRM_ERR_BAD_JSON', e.message));
    if (e.statusCode && e.statusCode < 500)
      return reply.status(e.statusCode).send(errorBody('RRM_ERR_BAD_REQUEST', e.message));
    req.log.error({ err }, 'unhandled error');
    return reply.status(500).send(errorBody('RRM_ERR_INTERNAL', 'internal error'));
  });
  app.setNotFoundHandler((req, reply) =>
    reply.status(404).send(errorBody('RRM_ERR_NOT_FOUND', `no route ${req.method} ${req.url}`)),
  );

  app.get('/healthz', async () => ({ ok: true }));
  app.get('/readyz', async (_req, reply) => {
    try {
      await deps.ledger.instances();
      return { ready: true, enforcement: deps.enforcer.report.driver };
    } catch (e) {
      return reply.status(503).send(errorBody('RRM_ERR_LEDGER', e instanceof Error ? e.message : String(e)));
    }
  });
  app.get('/metrics', async (_req, reply) => {
    await deps.metrics.observe(deps.ledger);
    await deps.metrics.collect();
    return reply.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });
  app.get('/openapi.json', async () => openApiDocument(routes, deps.version));

  await app.register(reservationRoutes, { deps });
  await app.register(instanceRoutes, { deps });
  await app.register(eventRoutes, { deps });
  await app.register(installRoutes, { deps });
  return app;
}
