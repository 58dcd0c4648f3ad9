/**
 * Recommendations from measured runs, the way the Kubernetes VPA recommender makes them: a high
 * percentile of the measured peaks, weighted so that recent runs count more (exponential decay by
 * age), plus a safety margin. A run that was OOM-killed needed more than its limit, so it counts as
 * limit × oomBump. Pure: samples and `now` in, numbers out.
 */

export interface MeasuredSample {
  /** When the run ended, ms since the epoch. */
  readonly at: number;
  readonly peakMemoryBytes?: number | null;
  readonly cpuUsageUsec?: number | null;
  readonly wallMs: number;
  readonly diskBytes?: number | null;
  readonly oomKills?: number | null;
  readonly exitCode: number;
  /** The memory limit the run had (for OOM-killed runs). */
  readonly memoryLimit?: number | null;
}

export interface RecommendOptions {
  /** Percentile of the weighted samples, 0..1. VPA's target uses 0.9. */
  readonly percentile: number;
  /**
   * Multiplied onto the percentile. VPA uses 15%; installs of one package version from a warm cache
   * repeat closely (the median of three runs is within 5% of the fourth for every package in
   * eval/results/profiles.json), so 10% covers their spread; no warm memory request there was under
   * the measured peak.
   */
  readonly margin: number;
  /** Age at which a sample weighs half as much. */
  readonly halfLifeMs: number;
  /** Samples older than this are ignored. */
  readonly maxAgeMs: number;
  readonly minSamples: number;
  /** An OOM-killed sample's memory becomes max(peak, limit × oomBump). */
  readonly oomBump: number;
  /** Floors, so a tiny measurement never asks for nothing. */
  readonly minCpu: number;
  readonly minMemory: number;
}

export const DEFAULT_RECOMMEND: RecommendOptions = Object.freeze({
  percentile: 0.9,
  margin: 0.1,
  halfLifeMs: 14 * 24 * 3600 * 1000,
  maxAgeMs: 180 * 24 * 3600 * 1000,
  minSamples: 3,
  oomBump: 1.2,
  minCpu: 100,
  minMemory: 16 * 2 ** 20, // a one-package npm install peaks at ~27 MiB: the floor must sit below
});

export interface Recommendation {
  readonly samples: number;
  /** Σ weights: how much recent evidence there is. */
  readonly weight: number;
  readonly oomSamples: number;
  readonly requests: Readonly<Record<string, number>>;
  readonly limits: Readonly<Record<string, number>>;
  readonly estimates: Readonly<Record<string, number>>;
  readonly confidence: number;
}

export function decayWeight(ageMs: number, halfLifeMs: number): number {
  return Math.pow(2, -Math.max(0, ageMs) / halfLifeMs);
}

/** The smallest value v such that the weight of samples ≤ v is at least p of the total. */
export function weightedPercentile(
  values: readonly { v: number; w: number }[],
  p: number,
): number | undefined {
  const xs = values.filter((x) => Number.isFinite(x.v) && x.w > 0).sort((a, b) => a.v - b.v);
  if (xs.length === 0) return undefined;
  const total = xs.reduce((a, x) => a + x.w, 0);
  let cum = 0;
  for (const x of xs) {
    cum += x.w;
    if (cum >= p * total * (1 - 1e-12)) return x.v;
  }
  return xs[xs.length - 1]?.v;
}

/** The memory a sample says the install needs: its peak, or more than its limit when it was OOM-killed. */
export function memoryNeed(s: MeasuredSample, oomBump: number): number | undefined {
  const peak = s.peakMemoryBytes ?? undefined;
  if ((s.oomKills ?? 0) > 0) {
    const base = Math.max(peak ?? 0, s.memoryLimit ?? 0);
    return base > 0 ? base * oomBump : undefined;
  }
  return peak;
}

/** Usable samples: successful runs and OOM-killed ones (a failure for another reason measures nothing useful). */
export function usable(
  samples: readonly MeasuredSample[],
  now: number,
  o: RecommendOptions,
): MeasuredSample[] {
  return samples.filter((s) => now - s.at <= o.maxAgeMs && (s.exitCode === 0 || (s.oomKills ?? 0) > 0));
}

export function recommend(
  samples: readonly MeasuredSample[],
  now: number,
  o: RecommendOptions = DEFAULT_RECOMMEND,
): Recommendation | undefined {
  const xs = usable(samples, now, o);
  if (xs.length < o.minSamples) return undefined;
  const w = (s: MeasuredSample): number => decayWeight(now - s.at, o.halfLifeMs);
  const weight = xs.reduce((a, s) => a + w(s), 0);
  const pick = (f: (s: MeasuredSample) => number | undefined): number | undefined =>
    weightedPercentile(
      xs.flatMap((s) => {
        const v = f(s);
        return v === undefined || !Number.isFinite(v) ? [] : [{ v, w: w(s) }];
      }),
      o.percentile,
    );
  const maxOf = (f: (s: MeasuredSample) => number | undefined): number | undefined => {
    const vs = xs.map(f).filter((v): v is number => v !== undefined && Number.isFinite(v));
    return vs.length ? Math.max(...vs) : undefined;
  };
  const requests: Record<string, number> = {};
  const limits: Record<string, number> = {};
  const estimates: Record<string, number> = {};
  const mem = pick((s) => memoryNeed(s, o.oomBump));
  if (mem !== undefined) {
    requests.memory = Math.max(o.minMemory, Math.ceil(mem * (1 + o.margin)));
    const top = maxOf((s) => memoryNeed(s, o.oomBump)) ?? mem;
    limits.memory = Math.max(Math.ceil(requests.memory * 1.25), Math.ceil(top * 1.1));
  }
  // Cores used on average while it ran: CPU time / wall time, in millicores.
  const cores = pick((s) =>
    s.cpuUsageUsec != null && s.wallMs > 0 && (s.oomKills ?? 0) === 0
      ? s.cpuUsageUsec / 1000 / s.wallMs
      : undefined,
  );
  if (cores !== undefined) requests.cpu = Math.max(o.minCpu, Math.ceil(cores * 1000 * (1 + o.margin)));
  const disk = pick((s) => s.diskBytes ?? undefined);
  if (disk !== undefined) requests.disk = Math.ceil(disk * (1 + o.margin));
  const wall = pick((s) => ((s.oomKills ?? 0) === 0 ? s.wallMs : undefined));
  if (wall !== undefined) estimates.wallMs = Math.ceil(wall * (1 + o.margin));
  const cpuMs = pick((s) =>
    s.cpuUsageUsec != null && (s.oomKills ?? 0) === 0 ? s.cpuUsageUsec / 1000 : undefined,
  );
  if (cpuMs !== undefined) estimates.cpuMs = Math.ceil(cpuMs * (1 + o.margin));
  // More (recent) evidence, more confidence; VPA widens its bounds the same way with little history.
  const confidence = Math.min(0.9, 0.5 + 0.4 * (1 - Math.pow(2, -weight / 5)));
  return {
    samples: xs.length,
    weight,
    oomSamples: xs.filter((s) => (s.oomKills ?? 0) > 0).length,
    requests,
    limits,
    estimates,
    confidence,
  };
}
