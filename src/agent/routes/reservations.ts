/** /v1/reservations: create (granted or queued), wait (long poll), renew, release, list, get. */
import { createHmac } from 'node:crypto';
import type { FastifyPluginAsync } from 'fastify';
import { isActive, type Reservation } from '../../model/reservation.js';
import { RrmError } from '../../model/errors.js';
import { caller, type AgentDeps } from '../app.js';
import { checkPriority, checkQuota } from '../policy.js';
import { toRequest, type ReservationBody } from '../request-body.js';
import {
  createReservationBody,
  holderBody,
  listQuery,
  params,
  processBody,
  queryInt,
  releaseBody,
  waitQuery,
} from '../schemas.js';
import type { ReservationState } from '../../model/reservation.js';

/** What the API shows of a reservation: everything but the token hash. */
export function publicView(r: Reservation): Omit<Reservation, 'tokenHash'> {
  const { tokenHash: _hidden, ...rest } = r;
  return rest;
}

/** Waits until `check` returns a value or the time is up; woken by ledger changes. */
export function waitForChange<T>(
  deps: AgentDeps,
  id: string,
  timeoutMs: number,
  check: () => Promise<T | undefined>,
): Promise<T | undefined> {
  return new Promise((resolve, reject) => {
    let done = false;
    let busy = false;
    const finish = (v: T | undefined, err?: unknown): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      unwatch();
      deps.shutdown.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve(v);
    };
    const run = async (): Promise<void> => {
      if (busy || done) return;
      busy = true;
      try {
        const v = await check();
        if (v !== undefined) finish(v);
      } catch (e) {
        finish(undefined, e);
      } finally {
        busy = false;
      }
    };
    const onAbort = (): void => finish(undefined);
    const unwatch = deps.changes.onReservation(id, () => void run());
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    deps.shutdown.addEventListener('abort', onAbort, { once: true });
    void run();
  });
}

export const reservationRoutes: FastifyPluginAsync<{ deps: AgentDeps }> = async (app, { deps }) => {
  const { ledger, config } = deps;
  /** Idempotent retries get the same token back: it is derived from the key, never stored. */
  const tokenFor = (key: string | undefined): string | undefined =>
    key ? createHmac('sha256', deps.secret).update(key).digest('base64url') : undefined;

  app.post<{ Body: ReservationBody }>(
    '/v1/reservations',
    {
      schema: { body: createReservationBody },
      config: {
        summary:
          'Request a reservation: granted now, queued with a position, or rejected with the shortfall.',
      },
    },
    async (req, reply) => {
      const stop = deps.metrics.admissionSeconds.startTimer();
      const who = caller(req);
      const request = toRequest(req.body, who, { target: deps.instanceId, leaseMs: 30_000 });
      checkPriority(who, request.priority, config.policy);
      const { outcome, token } = await ledger.reserve(request, {
        token: tokenFor(request.idempotencyKey),
        admit: (snap) => checkQuota(snap.reservations, who.name, request.requests, config.policy),
      });
      stop();
      req.log.info({ reservation: outcome.reservation.id, outcome: outcome.kind }, 'reservation request');
      if (outcome.kind === 'rejected') {
        throw new RrmError(
          outcome.code,
          outcome.code === 'RRM_ERR_INSTANCE_DOWN'
            ? `instance ${outcome.reservation.instance} is down`
            : outcome.code === 'RRM_ERR_UNSATISFIABLE'
              ? `the request can never fit on ${outcome.reservation.instance}`
              : `no capacity now on ${outcome.reservation.instance} and asked not to wait`,
          {
            id: outcome.reservation.id,
            shortfall: outcome.shortfall,
            ahead: outcome.ahead,
          },
        );
      }
      return reply.status(outcome.kind === 'granted' ? 201 : 202).send({
        outcome: outcome.kind,
        reservation: publicView(outcome.reservation),
        token,
        ...(outcome.kind === 'queued' ? { status: outcome.status } : {}),
      });
    },
  );

  app.post<{ Body: ReservationBody }>(
    '/v1/reservations/dry-run',
    {
      schema: { body: createReservationBody },
      config: {
        summary:
          'What a create would do now (grant, queue at a position, preempt, reject), committing nothing.',
      },
    },
    async (req) => {
      const who = caller(req);
      const request = toRequest(req.body, who, { target: deps.instanceId, leaseMs: 30_000 });
      checkPriority(who, request.priority, config.policy);
      return { prediction: await ledger.predict(request) };
    },
  );

  app.get<{ Querystring: { state?: string; instance?: string; limit?: string } }>(
    '/v1/reservations',
    { schema: { querystring: listQuery }, config: { summary: 'List reservations, newest first.' } },
    async (req) => {
      const states = req.query.state?.split(',') as ReservationState[] | undefined;
      const list = await ledger.list({
        states,
        instance: req.query.instance,
        limit: queryInt(req.query.limit) ?? 1000,
      });
      return { reservations: list.map(publicView) };
    },
  );

  app.get<{ Params: { id: string } }>(
    '/v1/reservations/:id',
    { schema: { params: params.id }, config: { summary: 'One reservation.' } },
    async (req) => {
      const r = await ledger.get(req.params.id);
      if (!r)
        throw new RrmError('RRM_ERR_NOT_FOUND', `no reservation ${req.params.id}`, { id: req.params.id });
      return {
        reservation: publicView(r),
        ...(r.state === 'queued' ? { status: await ledger.waitStatus(r.id) } : {}),
      };
    },
  );

  app.get<{ Params: { id: string }; Querystring: { timeoutMs?: string } }>(
    '/v1/reservations/:id/wait',
    {
      schema: { params: params.id, querystring: waitQuery },
      config: {
        longRunning: true,
        summary:
          'Long poll: returns when the reservation leaves the queue, or at the timeout with its standing.',
      },
    },
    async (req) => {
      const id = req.params.id;
      const first = await ledger.get(id);
      if (!first) throw new RrmError('RRM_ERR_NOT_FOUND', `no reservation ${id}`, { id });
      const timeoutMs = Math.min(queryInt(req.query.timeoutMs) ?? 30_000, config.maxWaitMs);
      const ended = await waitForChange(deps, id, timeoutMs, async () => {
        const r = await ledger.get(id);
        return r && r.state !== 'queued' ? r : undefined;
      });
      const r = ended ?? (await ledger.get(id))!;
      return {
        reservation: publicView(r),
        ...(r.state === 'queued' ? { status: await ledger.waitStatus(id) } : {}),
      };
    },
  );

  app.post<{ Params: { id: string }; Body: { token?: string } }>(
    '/v1/reservations/:id/relocate',
    {
      schema: { params: params.id, body: holderBody },
      config: {
        summary:
          'A placed waiter (target any) moves to an instance that grants it now, or is placed again if its instance is down (holder).',
      },
    },
    async (req) => ({
      reservation: publicView(await ledger.relocate(req.params.id, holderToken(req.body.token))),
    }),
  );

  app.post<{ Params: { id: string }; Body: { token?: string } }>(
    '/v1/reservations/:id/renew',
    {
      schema: { params: params.id, body: holderBody },
      config: { summary: 'Renew the lease: the holder with its token, or an admin.' },
    },
    async (req) => {
      const who = caller(req);
      const r = who.admin
        ? await ledger.renew(req.params.id, req.body.token, { name: who.name })
        : await ledger.renew(req.params.id, holderToken(req.body.token));
      return { reservation: publicView(r) };
    },
  );

  app.post<{ Params: { id: string }; Body: { token: string; pgid: number } }>(
    '/v1/reservations/:id/process',
    {
      schema: { params: params.id, body: processBody },
      config: { summary: "Record the installer's process group (holder)." },
    },
    async (req) => ({
      reservation: publicView(await ledger.setProcessGroup(req.params.id, req.body.token, req.body.pgid)),
    }),
  );

  app.post<{ Params: { id: string }; Body: { token?: string } }>(
    '/v1/reservations/:id/paused',
    {
      schema: { params: params.id, body: holderBody },
      config: { summary: 'Acknowledge a pause request: the install is frozen (holder).' },
    },
    async (req) => ({
      reservation: publicView(await ledger.acknowledgePause(req.params.id, holderToken(req.body.token))),
    }),
  );

  app.post<{
    Params: { id: string };
    Body: { token?: string; end?: 'released' | 'timed-out'; reason?: string; usage?: Record<string, number> };
  }>(
    '/v1/reservations/:id/release',
    {
      schema: { params: params.id, body: releaseBody },
      config: { summary: 'Release (idempotent): the holder with its token, or an admin.' },
    },
    async (req) => {
      const who = caller(req);
      const r = await ledger.release(
        req.params.id,
        { token: req.body.token, admin: who.admin, name: who.name },
        {
          end: req.body.end,
          reason: req.body.reason ?? (req.body.token ? undefined : `released by ${who.name}`),
          usage: req.body.usage,
        },
      );
      return { reservation: publicView(r), released: !isActive(r.state) };
    },
  );
};

function holderToken(token: string | undefined): string {
  if (!token) throw new RrmError('RRM_ERR_NOT_HOLDER', 'the holder token is required');
  return token;
}
