/**
 * The profile document, as written in an `rrm` block of package.json, a profile file or a profile
 * service answer:
 *
 *   { "requests": { "cpu": "2", "memory": "1.5Gi", "dpkg-lock": 1 },
 *     "limits":   { "memory": "3Gi" },
 *     "expected": { "wall": "90s", "cpu": "120s", "download": "30Mi" },
 *     "confidence": 0.8, "note": "measured on CI" }
 *
 * Quantities as Kubernetes writes them, or numbers in base units (millicores, bytes). Validated once
 * into vectors; a bad document is reported, never half-applied.
 */
import { parseDuration } from '../model/duration.js';
import { kindOf, parseQuantity, parseResourceName } from '../model/quantity.js';
import { BUILTIN_DIMENSIONS, type ResourceVector } from '../model/vector.js';

export interface ProfileSpec {
  readonly requests: ResourceVector;
  readonly limits: ResourceVector;
  readonly estimates: Readonly<Record<string, number>>;
  readonly confidence?: number;
  readonly note?: string;
}

const DIM_ALIASES: Readonly<Record<string, string>> = Object.freeze({
  'disk-io': 'diskIo',
  diskio: 'diskIo',
});

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function vector(x: unknown, what: string): Record<string, number> {
  if (x === undefined) return {};
  if (!isRecord(x)) throw new Error(`${what}: not an object`);
  const out: Record<string, number> = {};
  for (const [k0, v] of Object.entries(x)) {
    const k = DIM_ALIASES[k0] ?? k0;
    if (!(BUILTIN_DIMENSIONS as readonly string[]).includes(k)) parseResourceName(k);
    const kind = kindOf(k);
    if (typeof v === 'number') {
      if (!Number.isFinite(v) || v < 0) throw new Error(`${what}.${k0}: ${v} is not a quantity`);
      out[k] = kind === 'count' ? Math.round(v) : Math.ceil(v);
    } else if (typeof v === 'string') out[k] = parseQuantity(v, kind, `${what}.${k0}`);
    else throw new Error(`${what}.${k0}: not a quantity`);
  }
  return out;
}

function duration(x: unknown, what: string): number {
  if (typeof x === 'number' && Number.isFinite(x) && x >= 0) return x;
  if (typeof x === 'string') return parseDuration(x, what);
  throw new Error(`${what}: not a duration`);
}

/** Parses one profile document; throws an Error naming the bad field. */
export function parseProfileSpec(x: unknown, what = 'profile'): ProfileSpec {
  if (!isRecord(x)) throw new Error(`${what}: not an object`);
  const requests = vector(x.requests, `${what}.requests`);
  const limits = vector(x.limits, `${what}.limits`);
  const estimates: Record<string, number> = {};
  if (x.expected !== undefined) {
    if (!isRecord(x.expected)) throw new Error(`${what}.expected: not an object`);
    const e = x.expected;
    if (e.wall !== undefined) estimates.wallMs = duration(e.wall, `${what}.expected.wall`);
    if (e.cpu !== undefined) estimates.cpuMs = duration(e.cpu, `${what}.expected.cpu`);
    if (e.download !== undefined)
      estimates.downloadBytes =
        typeof e.download === 'number' ? e.download : parseQuantity(String(e.download), 'bytes');
  }
  const confidence =
    typeof x.confidence === 'number' && x.confidence >= 0 && x.confidence <= 1 ? x.confidence : undefined;
  const note = typeof x.note === 'string' ? x.note.slice(0, 200) : undefined;
  return {
    requests,
    limits,
    estimates,
    ...(confidence !== undefined ? { confidence } : {}),
    ...(note ? { note } : {}),
  };
}

/** Several packages' profiles → one install's: the largest CPU, memory and counts; summed disk and download; the longest time. */
export function aggregateSpecs(specs: readonly ProfileSpec[]): ProfileSpec {
  const requests: Record<string, number> = {};
  const limits: Record<string, number> = {};
  const estimates: Record<string, number> = {};
  const additive = new Set(['disk']);
  for (const s of specs) {
    for (const [k, v] of Object.entries(s.requests))
      requests[k] = additive.has(k) ? (requests[k] ?? 0) + v : Math.max(requests[k] ?? 0, v);
    for (const [k, v] of Object.entries(s.limits))
      limits[k] = additive.has(k) ? (limits[k] ?? 0) + v : Math.max(limits[k] ?? 0, v);
    for (const [k, v] of Object.entries(s.estimates))
      estimates[k] = k === 'downloadBytes' ? (estimates[k] ?? 0) + v : Math.max(estimates[k] ?? 0, v);
  }
  const confs = specs.map((s) => s.confidence).filter((c): c is number => c !== undefined);
  return {
    requests,
    limits,
    estimates,
    ...(confs.length ? { confidence: Math.min(...confs) } : {}),
  };
}
