/** The resource options shared by `run` and `capacity set`: --cpu, --memory, ..., --resource NAME=N. */
import { parseNamedResource, parseQuantity } from '../model/quantity.js';
import type { ResourceVector } from '../model/vector.js';
import { list, str, usageError, type OptionSpec, type Values } from './args.js';

export const RESOURCE_OPTIONS: OptionSpec = {
  cpu: { type: 'string' },
  memory: { type: 'string' },
  disk: { type: 'string' },
  'disk-io': { type: 'string' },
  network: { type: 'string' },
  resource: { type: 'string', multiple: true },
};

const FLAG_DIMENSIONS: ReadonlyArray<[string, string, 'cpu' | 'bytes' | 'rate']> = [
  ['cpu', 'cpu', 'cpu'],
  ['memory', 'memory', 'bytes'],
  ['disk', 'disk', 'bytes'],
  ['disk-io', 'diskIo', 'rate'],
  ['network', 'network', 'rate'],
];

/** The vector the flags give; dimensions not given are absent. */
export function resourceFlags(values: Values): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [opt, dim, kind] of FLAG_DIMENSIONS) {
    const text = str(values, opt);
    if (text !== undefined) out[dim] = parseQuantity(text, kind, `--${opt}`);
  }
  for (const r of list(values, 'resource')) {
    const [name, n] = parseNamedResource(r);
    out[name] = n;
  }
  return out;
}

export const LIMIT_OPTIONS: OptionSpec = {
  'cpu-limit': { type: 'string' },
  'memory-limit': { type: 'string' },
  'disk-io-limit': { type: 'string' },
};

/**
 * --cpu-limit, --memory-limit and --disk-io-limit: the caps enforced on the command. A cap below the
 * request given beside it is contradictory, and a usage error.
 */
export function limitFlags(values: Values, requests: ResourceVector = {}): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [opt, dim, kind] of FLAG_DIMENSIONS) {
    const text = str(values, `${opt}-limit`);
    if (!(`${opt}-limit` in LIMIT_OPTIONS) || text === undefined) continue;
    const n = parseQuantity(text, kind, `--${opt}-limit`);
    const req = requests[dim];
    if (req !== undefined && n < req)
      throw usageError(
        `--${opt}-limit ${text} is below --${opt} ${str(values, opt)}: a cap cannot be less than the request`,
      );
    out[dim] = n;
  }
  return out;
}

export function hasAny(v: ResourceVector): boolean {
  return Object.keys(v).length > 0;
}
