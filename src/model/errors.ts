/**
 * The error catalogue: every error rrm reports has a stable code, an exit code for the CLI and an
 * HTTP status for the API. Codes are never reused; docs/errors.md documents each one (a test checks).
 * "Does not fit" is an outcome value, not an exception: these are for bad input, refusals and faults.
 */
export interface ErrorSpec {
  readonly exit: number;
  readonly http: number;
  readonly summary: string;
}

export const EXIT = Object.freeze({
  usage: 64,
  software: 70,
  unavailable: 75,
  noPermission: 77,
  memoryLimit: 120,
  timeLimit: 124,
});

export const CATALOGUE = Object.freeze({
  RRM_ERR_USAGE: {
    exit: EXIT.usage,
    http: 400,
    summary: 'The command line is not valid: unknown option, missing value or command.',
  },
  RRM_ERR_BAD_QUANTITY: {
    exit: EXIT.usage,
    http: 400,
    summary: 'A resource quantity is not a valid non-negative amount.',
  },
  RRM_ERR_BAD_DURATION: {
    exit: EXIT.usage,
    http: 400,
    summary: 'A duration is not valid (use 500ms, 30s, 5m, 2h, or combinations like 1h30m).',
  },
  RRM_ERR_BAD_PRIORITY: {
    exit: EXIT.usage,
    http: 400,
    summary: 'A priority is neither a known class (critical, system, normal, batch) nor an integer.',
  },
  RRM_ERR_BAD_NAME: {
    exit: EXIT.usage,
    http: 400,
    summary: 'A resource or instance name is empty or contains characters that are not allowed.',
  },
  RRM_ERR_BAD_REQUEST: {
    exit: EXIT.usage,
    http: 400,
    summary: 'A reservation request is not valid as a whole.',
  },
  RRM_ERR_CAPACITY_SHORT: {
    exit: EXIT.unavailable,
    http: 409,
    summary: 'The request does not fit now and was asked not to wait; the shortfall per dimension is given.',
  },
  RRM_ERR_UNSATISFIABLE: {
    exit: EXIT.unavailable,
    http: 422,
    summary: 'The request exceeds what the instance can ever allocate, even when empty.',
  },
  RRM_ERR_WAIT_TIMEOUT: {
    exit: EXIT.unavailable,
    http: 408,
    summary: 'The request waited in the queue for its whole wait limit without being granted.',
  },
  RRM_ERR_CAPACITY_IN_USE: {
    exit: EXIT.unavailable,
    http: 409,
    summary: 'The new allocatable is below what is granted now; release or wait first.',
  },
  RRM_ERR_NOT_FOUND: { exit: EXIT.usage, http: 404, summary: 'No reservation or instance has that id.' },
  RRM_ERR_NOT_HOLDER: {
    exit: EXIT.noPermission,
    http: 403,
    summary: 'The token does not belong to the reservation: only its holder or an admin may change it.',
  },
  RRM_ERR_NOT_GRANTED: {
    exit: EXIT.unavailable,
    http: 409,
    summary: 'The reservation is no longer granted (released, expired, preempted or timed out).',
  },
  RRM_ERR_TIME_LIMIT: {
    exit: EXIT.timeLimit,
    http: 409,
    summary: 'The command reached its time limit and was stopped.',
  },
  RRM_ERR_MEMORY_LIMIT: {
    exit: EXIT.memoryLimit,
    http: 409,
    summary: 'The command was killed for exceeding its memory limit; the peak is given.',
  },
  RRM_ERR_PREEMPTED: {
    exit: EXIT.unavailable,
    http: 409,
    summary: 'The reservation was preempted and the request said not to requeue.',
  },
  RRM_ERR_COMMAND_NOT_FOUND: {
    exit: 127,
    http: 400,
    summary: 'The command to run does not exist or is not executable; nothing was reserved.',
  },
  RRM_ERR_IDEMPOTENCY_CONFLICT: {
    exit: EXIT.usage,
    http: 409,
    summary: 'The idempotency key was already used by another caller or for another request.',
  },
  RRM_ERR_UNAUTHENTICATED: {
    exit: EXIT.noPermission,
    http: 401,
    summary: 'The caller did not present a valid token.',
  },
  RRM_ERR_FORBIDDEN: {
    exit: EXIT.noPermission,
    http: 403,
    summary:
      'The caller may not do this: not the holder, not an admin, or a priority class its policy does not allow.',
  },
  RRM_ERR_QUOTA: {
    exit: EXIT.noPermission,
    http: 403,
    summary: 'The request would take the owner past its quota; the quota and what the owner holds are given.',
  },
  RRM_ERR_BAD_JSON: {
    exit: EXIT.usage,
    http: 400,
    summary: 'The request body is not valid JSON or does not match the schema.',
  },
  RRM_ERR_BODY_TOO_LARGE: {
    exit: EXIT.usage,
    http: 413,
    summary: 'The request body is larger than the agent accepts.',
  },
  RRM_ERR_AGENT_UNAVAILABLE: {
    exit: EXIT.unavailable,
    http: 503,
    summary: 'The agent could not be reached or did not answer in time.',
  },
  RRM_ERR_INSTANCE_DOWN: {
    exit: EXIT.unavailable,
    http: 503,
    summary: "The target instance is down: its agent's lease lapsed, so nothing is placed there.",
  },
  RRM_ERR_NO_INSTANCE: {
    exit: EXIT.unavailable,
    http: 503,
    summary: 'No instance that is up matches the target selector, or none could ever fit the request.',
  },
  RRM_ERR_HANDLER_TIMEOUT: {
    exit: EXIT.unavailable,
    http: 503,
    summary:
      'The agent did not answer within its handler timeout; what was asked may still complete (retry with the same idempotency key).',
  },
  RRM_ERR_LEDGER: { exit: EXIT.software, http: 503, summary: 'The ledger could not be read or written.' },
  RRM_ERR_INTERNAL: { exit: EXIT.software, http: 500, summary: 'A bug in rrm.' },
} satisfies Record<string, ErrorSpec>);

export type ErrorCode = keyof typeof CATALOGUE;

export class RrmError extends Error {
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(message);
    this.name = 'RrmError';
    this.code = code;
    this.details = Object.freeze({ ...details });
  }

  get exitCode(): number {
    return CATALOGUE[this.code].exit;
  }

  get httpStatus(): number {
    return CATALOGUE[this.code].http;
  }

  toJSON(): Record<string, unknown> {
    return { code: this.code, message: this.message, ...this.details };
  }
}

export function isRrmError(e: unknown): e is RrmError {
  return e instanceof RrmError;
}
