/** /v1/instances: list instances; set allocatable (admin). */
import type { FastifyPluginAsync } from 'fastify';
import { RrmError } from '../../model/errors.js';
import { caller, type AgentDeps } from '../app.js';
import { parseVector } from '../request-body.js';
import { allocatableBody } from '../schemas.js';

const instanceParam = {
  type: 'object',
  properties: { id: { type: 'string', pattern: '^[a-z0-9][a-z0-9._-]{0,127}$' } },
  required: ['id'],
  additionalProperties: false,
} as const;

export const instanceRoutes: FastifyPluginAsync<{ deps: AgentDeps }> = async (app, { deps }) => {
  const { ledger } = deps;
  app.get('/v1/instances', { config: { summary: 'Instances with capacity and allocatable.' } }, async () => ({
    instances: await ledger.instances(),
    enforcement: deps.enforcer.report,
  }));

  app.get(
    '/v1/instances/status',
    {
      config: {
        summary: 'Every instance: up or down, its agent, what is granted and free, grants and waiters.',
      },
    },
    async () => ({ instances: await ledger.instanceStatus() }),
  );

  app.put<{
    Params: { id: string };
    Body: { allocatable: Record<string, number | string>; capacity?: Record<string, number | string> };
  }>(
    '/v1/instances/:id/allocatable',
    {
      schema: { params: instanceParam, body: allocatableBody },
      config: { summary: 'Set allocatable (admin); refused below what is granted.' },
    },
    async (req) => {
      const who = caller(req);
      if (!who.admin) throw new RrmError('RRM_ERR_FORBIDDEN', `${who.name} is not an admin`);
      const current = await ledger.instance(req.params.id);
      if (!current) throw new RrmError('RRM_ERR_NOT_FOUND', `no instance ${req.params.id}`);
      const allocatable = { ...current.allocatable, ...parseVector(req.body.allocatable, 'allocatable') };
      const capacity = req.body.capacity
        ? { ...current.capacity, ...parseVector(req.body.capacity, 'capacity') }
        : current.capacity;
      return { instance: await ledger.setAllocatable(req.params.id, allocatable, capacity, who.name) };
    },
  );
};
