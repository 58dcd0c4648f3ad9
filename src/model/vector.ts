/**
 * ResourceVector: amounts per dimension. Built-in dimensions use fixed units:
 * cpu in millicores, memory and disk in bytes, diskIo and network in bytes per second.
 * Any other key is a named counted resource (`dpkg-lock`, `gpu`). An absent key means 0.
 */
export type ResourceVector = Readonly<Record<string, number>>;

export const BUILTIN_DIMENSIONS = ['cpu', 'memory', 'diskIo', 'network', 'disk'] as const;
export type BuiltinDimension = (typeof BUILTIN_DIMENSIONS)[number];

export const EMPTY: ResourceVector = Object.freeze({});

export function isBuiltin(name: string): name is BuiltinDimension {
  return (BUILTIN_DIMENSIONS as readonly string[]).includes(name);
}

/** Every dimension that is non-zero in any of the vectors, built-ins first, then named ones sorted. */
export function dimensionsOf(...vectors: ResourceVector[]): string[] {
  const named = new Set<string>();
  const builtin = new Set<string>();
  for (const v of vectors) {
    for (const [k, n] of Object.entries(v)) {
      if (n === 0) continue;
      (isBuiltin(k) ? builtin : named).add(k);
    }
  }
  return [...BUILTIN_DIMENSIONS.filter((d) => builtin.has(d)), ...[...named].sort()];
}

function clean(out: Record<string, number>): ResourceVector {
  for (const k of Object.keys(out)) if (out[k] === 0) delete out[k];
  return Object.freeze(out);
}

export function get(v: ResourceVector, dim: string): number {
  return v[dim] ?? 0;
}

export function add(a: ResourceVector, b: ResourceVector): ResourceVector {
  const out: Record<string, number> = { ...a };
  for (const [k, n] of Object.entries(b)) out[k] = (out[k] ?? 0) + n;
  return clean(out);
}

/** a − b, which may go negative (callers that need a floor use `subClamped`). */
export function sub(a: ResourceVector, b: ResourceVector): ResourceVector {
  const out: Record<string, number> = { ...a };
  for (const [k, n] of Object.entries(b)) out[k] = (out[k] ?? 0) - n;
  return clean(out);
}

/** max(0, a − b) per dimension. (A dimension only in b would be max(0, −b) = 0: absent.) */
export function subClamped(a: ResourceVector, b: ResourceVector): ResourceVector {
  const out: Record<string, number> = {};
  for (const k in a) {
    const v = (a[k] as number) - (b[k] ?? 0);
    if (v > 0) out[k] = v;
  }
  return Object.freeze(out);
}

export function sum(vectors: Iterable<ResourceVector>): ResourceVector {
  const out: Record<string, number> = {};
  for (const v of vectors) for (const k in v) out[k] = (out[k] ?? 0) + (v[k] as number);
  return clean(out);
}

/** True when `need` ≤ `free` on every dimension. */
export function fits(need: ResourceVector, free: ResourceVector): boolean {
  for (const [k, n] of Object.entries(need)) if (n > get(free, k)) return false;
  return true;
}

export interface Shortfall {
  readonly dimension: string;
  readonly need: number;
  readonly free: number;
  readonly short: number;
}

/** The dimensions on which `need` exceeds `free`, and by how much. Empty when it fits. */
export function shortfall(need: ResourceVector, free: ResourceVector): Shortfall[] {
  const out: Shortfall[] = [];
  for (const dim of dimensionsOf(need)) {
    const n = get(need, dim);
    const f = Math.max(0, get(free, dim));
    if (n > f) out.push({ dimension: dim, need: n, free: f, short: n - f });
  }
  return out;
}

export function isZero(v: ResourceVector): boolean {
  return Object.values(v).every((n) => n === 0);
}

export function equal(a: ResourceVector, b: ResourceVector): boolean {
  return dimensionsOf(a, b).every((k) => get(a, k) === get(b, k));
}
