/**
 * /v1/installs: a remote install on this instance. The agent reserves, runs the installer inside
 * the reservation's cgroup, streams its output back as NDJSON, reports measured usage and
 * releases. If the client goes away the install still runs to its end (and is recorded).
 * Admins only: the command runs as the agent's user.
 */
import type { FastifyPluginAsync } from 'fastify';
import { RrmError, isRrmError } from '../../model/errors.js';
import type { ReservationRequest } from '../../model/reservation.js';
import type { InstallHooks, InstallOutcome } from '../../runner/run-install.js';
import { caller, type AgentDeps } from '../app.js';
import { checkPriority, checkQuota } from '../policy.js';
import { toRequest, type ReservationBody } from '../request-body.js';
import { installBody } from '../schemas.js';

/** Runs one install for the agent (the real one wraps runInstall; see agent.ts). */
export type InstallRunner = (
  request: ReservationRequest,
  hooks: Omit<InstallHooks, 'env' | 'forwardSignals'>,
) => Promise<InstallOutcome>;

export const installRoutes: FastifyPluginAsync<{ deps: AgentDeps }> = async (app, { deps }) => {
  app.post<{ Body: ReservationBody & { command: string[] } }>(
    '/v1/installs',
    {
      schema: { body: installBody },
      config: {
        longRunning: true,
        summary: 'Run an install here under a reservation; streams NDJSON lines (event, output, result).',
      },
    },
    async (req, reply) => {
      const who = caller(req);
      if (!who.admin)
        throw new RrmError(
          'RRM_ERR_FORBIDDEN',
          `${who.name} may not run installs on the agent (admins only)`,
        );
      const request = {
        ...toRequest(req.body, who, { target: deps.instanceId, leaseMs: 30_000 }),
        holder: { host: deps.hostname, pid: process.pid, startTime: deps.startTime, owner: who.name },
      };
      if (request.target !== deps.instanceId) {
        throw new RrmError(
          'RRM_ERR_BAD_REQUEST',
          `installs run on this agent's instance ${deps.instanceId}; reserve with target ${JSON.stringify(request.target)} through /v1/reservations and run the install where it was granted`,
        );
      }
      checkPriority(who, request.priority, deps.config.policy);
      const active = await deps.ledger.list({ states: ['granted', 'queued'], limit: 100_000 });
      checkQuota(active, who.name, request.requests, deps.config.policy);
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache' });
      let connected = true;
      req.raw.on('close', () => (connected = false));
      const send = (line: Record<string, unknown>): void => {
        if (connected && !res.writableEnded) res.write(`${JSON.stringify(line)}\n`);
      };
      const log = req.log;
      try {
        const outcome = await deps.installs(request, {
          say: (event, text, data) => {
            log.info({ event, ...data }, text);
            send({ type: 'event', event, text, ...data });
          },
          onWait: (status, r) => send({ type: 'event', event: 'waiting', reservation: r.id, status }),
          output: (stream, chunk) => send({ type: 'output', stream, data: chunk.toString('utf8') }),
          signal: deps.shutdown,
        });
        send({
          type: 'result',
          exitCode: outcome.exitCode,
          reservation: outcome.reservationId,
          attempts: outcome.attempts,
          usage: outcome.usage,
        });
      } catch (e) {
        const err = isRrmError(e)
          ? e
          : new RrmError('RRM_ERR_INTERNAL', e instanceof Error ? e.message : String(e));
        if (!isRrmError(e)) log.error({ err: e }, 'install failed');
        send({ type: 'error', error: err.toJSON(), exitCode: err.exitCode });
      } finally {
        if (!res.writableEnded) res.end();
      }
    },
  );
};
