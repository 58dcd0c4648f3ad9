/**
 * Quantities written as Kubernetes writes them: `500m`, `2`, `1.5Gi`, `200M`, `20Mi`.
 * cpu is stored in millicores; bytes and bytes-per-second as integers (rounded up); named counted
 * resources as whole numbers. Anything negative, NaN, with an unknown unit or past 2^53 is refused.
 */
import { RrmError } from './errors.js';
import { dimensionsOf, isBuiltin, type ResourceVector } from './vector.js';

export type QuantityKind = 'cpu' | 'bytes' | 'rate' | 'count';

const SUFFIX: Readonly<Record<string, number>> = Object.freeze({
  '': 1,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
});

const PATTERN = /^(\d+(?:\.\d+)?|\.\d+)([a-zA-Z]*)(\/s)?$/;

export function kindOf(dimension: string): QuantityKind {
  switch (dimension) {
    case 'cpu':
      return 'cpu';
    case 'memory':
    case 'disk':
      return 'bytes';
    case 'diskIo':
    case 'network':
      return 'rate';
    default:
      return 'count';
  }
}

/** Parses one quantity for a dimension; `what` names it in the error ("--memory"). */
export function parseQuantity(text: string, kind: QuantityKind, what = 'quantity'): number {
  const bad = (why: string): RrmError =>
    new RrmError('RRM_ERR_BAD_QUANTITY', `${what}: ${JSON.stringify(text)} ${why}`, {
      value: text,
      field: what,
    });
  const trimmed = String(text).trim();
  if (trimmed === '') throw bad('is empty');
  if (trimmed.startsWith('-')) throw bad('is negative');
  const m = PATTERN.exec(trimmed);
  if (!m) throw bad('is not a quantity (examples: 500m, 2, 1.5Gi, 200M)');
  const [, digits, unit = '', perSecond] = m;
  if (perSecond && kind !== 'rate') throw bad('is a rate, but this is not a per-second dimension');
  const scale = SUFFIX[unit];
  if (scale === undefined)
    throw bad(`has an unknown unit ${JSON.stringify(unit)} (use m, k, M, G, T, Ki, Mi, Gi, Ti)`);
  const value = Number(digits);
  if (!Number.isFinite(value)) throw bad('is not a number');
  if (value > Number.MAX_SAFE_INTEGER) throw bad('is too large (past 2^53)');
  const base = kind === 'cpu' ? value * 1000 * scale : value * scale;
  // Round up fractions of a unit, but not the float noise of an exact product (1.1 * 1e9).
  const nearest = Math.round(base);
  const result = Math.abs(base - nearest) <= 1e-9 * Math.max(1, base) ? nearest : Math.ceil(base);
  if (!Number.isSafeInteger(result)) throw bad('is too large (past 2^53)');
  if (kind === 'count' && !Number.isInteger(value * scale))
    throw bad('is not a whole number of a counted resource');
  return result;
}

const NAME = /^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$/;

/** Names of counted resources and instances: lowercase DNS-label-like, not a built-in dimension. */
export function parseResourceName(name: string): string {
  if (!NAME.test(name)) {
    throw new RrmError(
      'RRM_ERR_BAD_NAME',
      `resource name ${JSON.stringify(name)} is not valid: use lowercase letters, digits, '.', '-', '_' (1-63 characters)`,
      { value: name },
    );
  }
  if (isBuiltin(name) || name === 'disk-io') {
    throw new RrmError(
      'RRM_ERR_BAD_NAME',
      `resource name ${JSON.stringify(name)} is a built-in dimension; use its own option`,
      {
        value: name,
      },
    );
  }
  return name;
}

/** `NAME=N` as given to --resource. */
export function parseNamedResource(text: string): [string, number] {
  const eq = text.indexOf('=');
  if (eq < 0) {
    throw new RrmError('RRM_ERR_BAD_QUANTITY', `--resource: ${JSON.stringify(text)} is not NAME=N`, {
      value: text,
    });
  }
  const name = parseResourceName(text.slice(0, eq));
  return [name, parseQuantity(text.slice(eq + 1), 'count', `--resource ${name}`)];
}

const BINARY: ReadonlyArray<[string, number]> = [
  ['Ei', 2 ** 60],
  ['Pi', 2 ** 50],
  ['Ti', 2 ** 40],
  ['Gi', 2 ** 30],
  ['Mi', 2 ** 20],
  ['Ki', 2 ** 10],
];

function formatBytes(n: number): string {
  for (const [unit, size] of BINARY) {
    if (n >= size) {
      const v = n / size;
      return `${Number.isInteger(v) ? v : Number(v.toFixed(2))}${unit}`;
    }
  }
  return String(n);
}

/** The shortest readable form; parseQuantity(formatQuantity(x)) ≈ x. */
export function formatQuantity(n: number, kind: QuantityKind): string {
  switch (kind) {
    case 'cpu':
      return n % 1000 === 0 ? String(n / 1000) : `${n}m`;
    case 'bytes':
      return formatBytes(n);
    case 'rate':
      return `${formatBytes(n)}/s`;
    case 'count':
      return String(n);
  }
}

export function formatDimension(dimension: string, n: number): string {
  return formatQuantity(n, kindOf(dimension));
}

/** `cpu=1 memory=512Mi`, built-in dimensions first. */
export function formatVector(v: ResourceVector): string {
  const dims = dimensionsOf(v);
  return dims.length ? dims.map((d) => `${d}=${formatDimension(d, v[d] ?? 0)}`).join(' ') : '(nothing)';
}
