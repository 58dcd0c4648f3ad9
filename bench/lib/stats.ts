/** Small statistics and timing helpers. Every comparison is measured side by side in one run. */

export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return (s[lo] as number) + ((s[hi] as number) - (s[lo] as number)) * (pos - lo);
}

export const median = (xs: readonly number[]): number => quantile(xs, 0.5);

export function mean(xs: readonly number[]): number {
  return xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length;
}

export interface Summary {
  readonly n: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

export function summarize(xs: readonly number[]): Summary {
  return {
    n: xs.length,
    p50: quantile(xs, 0.5),
    p90: quantile(xs, 0.9),
    p99: quantile(xs, 0.99),
    max: xs.length ? Math.max(...xs) : NaN,
    mean: mean(xs),
  };
}

/** Milliseconds on the system-wide monotonic clock (comparable across processes on one host). */
export function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Runs `fn` repeatedly for at least `minMs` (and at least `minIters` times) and returns calls per
 * second. `fn` gets the iteration number; its result is kept in a sink so it is not optimised away.
 */
export function opsPerSecond(fn: (i: number) => unknown, minMs: number, minIters = 3): number {
  let sink: unknown;
  let i = 0;
  const start = nowMs();
  let elapsed = 0;
  do {
    sink = fn(i++);
    elapsed = nowMs() - start;
  } while (elapsed < minMs || i < minIters);
  keep(sink);
  return (i / elapsed) * 1000;
}

let kept: unknown;
function keep(x: unknown): void {
  kept = x;
}
export function lastKept(): unknown {
  return kept;
}

/**
 * Measures candidates in alternating rounds (A B C, A B C, …) so that slow phases of a noisy machine
 * hit all of them alike. Returns the median ops/s of each and the per-round ratios to the first.
 */
export function interleaved(
  candidates: ReadonlyArray<{ readonly name: string; readonly fn: (i: number) => unknown }>,
  opts: { rounds: number; minMs: number; minIters?: number },
): Record<string, { opsPerSec: number; rounds: number[] }> {
  const rounds: Record<string, number[]> = {};
  for (const c of candidates) rounds[c.name] = [];
  for (const c of candidates) opsPerSecond(c.fn, Math.min(50, opts.minMs), 1); // warm-up
  for (let r = 0; r < opts.rounds; r++) {
    for (const c of candidates) rounds[c.name]!.push(opsPerSecond(c.fn, opts.minMs, opts.minIters ?? 3));
  }
  const out: Record<string, { opsPerSec: number; rounds: number[] }> = {};
  for (const c of candidates) out[c.name] = { opsPerSec: median(rounds[c.name]!), rounds: rounds[c.name]! };
  return out;
}

export function round(x: number, digits = 3): number {
  if (!Number.isFinite(x)) return x;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** 12345.6 → "12,346"; 0.01234 → "0.0123" (3 significant digits below 100). */
export function fmt(x: number | undefined | null, unit = ''): string {
  if (x === undefined || x === null || Number.isNaN(x)) return '–';
  if (!Number.isFinite(x)) return '∞';
  const abs = Math.abs(x);
  const s =
    abs >= 100 || Number.isInteger(x)
      ? Math.round(x).toLocaleString('en-US')
      : abs >= 10
        ? x.toFixed(1)
        : abs >= 1
          ? x.toFixed(2)
          : abs === 0
            ? '0'
            : x.toPrecision(3);
  return unit ? `${s} ${unit}` : s;
}
