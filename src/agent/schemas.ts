/**
 * JSON Schemas of the HTTP API: fastify validates requests with them (unknown fields rejected),
 * and /openapi.json is generated from the same objects.
 */
const quantity = {
  anyOf: [
    { type: 'integer', minimum: 0 },
    { type: 'string', minLength: 1, maxLength: 32 },
  ],
  description: 'base units (millicores, bytes, bytes/s) or a Kubernetes quantity such as "500m", "1.5Gi"',
} as const;

export const vectorSchema = {
  type: 'object',
  additionalProperties: quantity,
  propertyNames: { pattern: '^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$' },
  maxProperties: 32,
} as const;

const idParam = {
  type: 'object',
  properties: { id: { type: 'string', pattern: '^rsv_[A-Za-z0-9_-]{4,64}$' } },
  required: ['id'],
  additionalProperties: false,
} as const;

const token = { type: 'string', minLength: 8, maxLength: 128 } as const;

export const createReservationBody = {
  type: 'object',
  additionalProperties: false,
  required: ['requests'],
  properties: {
    requests: vectorSchema,
    limits: vectorSchema,
    target: {
      type: 'string',
      minLength: 1,
      maxLength: 128,
      description: 'an instance id, or "any" to let placement choose (default: this instance)',
    },
    selector: {
      type: 'object',
      maxProperties: 16,
      additionalProperties: { type: 'string', maxLength: 64 },
      description: 'with target "any": labels an instance must have; a value starting with "!" must differ',
    },
    strategy: { enum: ['least-allocated', 'most-allocated', 'balanced'] },
    mode: { enum: ['hard', 'soft'] },
    priority: { anyOf: [{ type: 'integer' }, { type: 'string', maxLength: 16 }] },
    waitMs: { type: 'integer', minimum: 0, description: '0 fails fast; absent waits without limit' },
    timeLimitMs: { type: 'integer', minimum: 1 },
    leaseMs: { type: 'integer', minimum: 1000, maximum: 3_600_000 },
    preemptible: { type: 'boolean' },
    mayPreempt: { type: 'boolean' },
    onPreempt: { enum: ['requeue', 'fail', 'pause'] },
    packages: {
      type: 'array',
      maxItems: 256,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['manager', 'name'],
        properties: {
          manager: { type: 'string', maxLength: 32 },
          name: { type: 'string', maxLength: 256 },
          version: { type: 'string', maxLength: 128 },
        },
      },
    },
    command: { type: 'array', maxItems: 1024, items: { type: 'string', maxLength: 4096 } },
    idempotencyKey: { type: 'string', minLength: 1, maxLength: 128 },
    holder: {
      type: 'object',
      additionalProperties: false,
      required: ['host', 'pid'],
      properties: {
        host: { type: 'string', maxLength: 255 },
        pid: { type: 'integer', minimum: 0 },
        startTime: { type: 'integer', minimum: 0 },
      },
    },
    retryOf: { type: 'string', maxLength: 80 },
    attempt: { type: 'integer', minimum: 1 },
  },
} as const;

export const holderBody = {
  type: 'object',
  additionalProperties: false,
  properties: { token },
} as const;

export const processBody = {
  type: 'object',
  additionalProperties: false,
  required: ['token', 'pgid'],
  properties: { token, pgid: { type: 'integer', minimum: 2 } },
} as const;

export const releaseBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    token,
    end: { enum: ['released', 'timed-out'] },
    reason: { type: 'string', maxLength: 1024 },
    usage: { type: 'object', additionalProperties: { type: 'number' }, maxProperties: 32 },
  },
} as const;

export const allocatableBody = {
  type: 'object',
  additionalProperties: false,
  required: ['allocatable'],
  properties: { allocatable: vectorSchema, capacity: vectorSchema },
} as const;

export const installBody = {
  type: 'object',
  additionalProperties: false,
  required: ['command'],
  properties: {
    ...createReservationBody.properties,
    requests: vectorSchema,
    command: { type: 'array', minItems: 1, maxItems: 1024, items: { type: 'string', maxLength: 4096 } },
  },
} as const;

/** Query-string numbers arrive as text (no coercion anywhere): digits only, read with queryInt. */
const count = { type: 'string', pattern: '^[0-9]{1,15}$' } as const;

export function queryInt(v: string | undefined): number | undefined {
  return v === undefined ? undefined : Number(v);
}

export const listQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    state: { type: 'string', pattern: '^[a-z-]+(,[a-z-]+)*$' },
    instance: { type: 'string', maxLength: 128 },
    limit: count,
  },
} as const;

export const eventsQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    afterSeq: count,
    reservation: { type: 'string', maxLength: 80 },
    limit: count,
  },
} as const;

export const waitQuery = {
  type: 'object',
  additionalProperties: false,
  properties: { timeoutMs: count },
} as const;

export const errorSchema = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: { code: { type: 'string' }, message: { type: 'string' } },
      additionalProperties: true,
    },
  },
} as const;

export const params = { id: idParam } as const;
