/** The resource options shared by `run` and `capacity set`: --cpu, --memory, ..., --resource NAME=N. */
import { parseNamedResource, parseQuantity } from '../model/quantity.js';
import type { ResourceVector } from '../model/vector.js';
import { list, str, type OptionSpec, type Values } from './args.js';

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

/** --cpu-limit and --memory-limit: the caps enforced on the command. */
export function limitFlags(values: Values): Record<string, number> {
  const out: Record<string, number> = {};
  const cpu = str(values, 'cpu-limit');
  const memory = str(values, 'memory-limit');
  if (cpu !== undefined) out.cpu = parseQuantity(cpu, 'cpu', '--cpu-limit');
  if (memory !== undefined) out.memory = parseQuantity(memory, 'bytes', '--memory-limit');
  return out;
}

export function hasAny(v: ResourceVector): boolean {
  return Object.keys(v).length > 0;
}
