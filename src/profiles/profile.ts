/**
 * A ResourceProfile: what one install needs, and for every number where it came from.
 * Resolvers are tried in order; the first that answers a dimension wins it.
 */
import type { ResourceVector } from '../model/vector.js';

export type Provenance =
  | 'flag'
  /** A rule of the installer itself: every apt change takes the dpkg lock. */
  | 'installer'
  | 'manifest'
  | 'service'
  | 'history'
  | 'metadata'
  | 'default';

export const PROVENANCE_ORDER: readonly Provenance[] = [
  'flag',
  'installer',
  'manifest',
  'service',
  'history',
  'metadata',
  'default',
];

export interface Source {
  readonly provenance: Provenance;
  /** 0..1: how sure the resolver is. */
  readonly confidence: number;
  readonly note?: string;
}

/**
 * What is predicted but not reserved: `wallMs` (how long the install runs), `cpuMs` (CPU time it
 * uses), `downloadBytes` (what it fetches).
 */
export type Estimates = Readonly<Record<string, number>>;

export interface ResourceProfile {
  readonly requests: ResourceVector;
  readonly limits?: ResourceVector;
  /** Where each request came from, by dimension. */
  readonly sources: Readonly<Record<string, Source>>;
  /** Where each limit came from, by dimension. */
  readonly limitSources?: Readonly<Record<string, Source>>;
  readonly estimates?: Estimates;
  readonly estimateSources?: Readonly<Record<string, Source>>;
}

/** One resolver's partial answer. */
export interface ProfilePart {
  readonly requests: ResourceVector;
  readonly limits?: ResourceVector;
  readonly estimates?: Estimates;
  readonly source: Source;
}

/**
 * First answer per dimension wins, in the order given. A limit is taken only from the part that won
 * the dimension's request or an earlier one (a weaker source never caps a stronger request); a
 * stronger source's limit below the request lowers the request to it (requests ≤ limits always).
 * A request of 0 is an answer ("none"): it wins and is dropped.
 */
export function combine(parts: readonly ProfilePart[]): ResourceProfile {
  const requests: Record<string, number> = {};
  const limits: Record<string, number> = {};
  const estimates: Record<string, number> = {};
  const sources: Record<string, Source> = {};
  const limitSources: Record<string, Source> = {};
  const estimateSources: Record<string, Source> = {};
  const winner: Record<string, number> = {};
  parts.forEach((part, i) => {
    for (const [dim, n] of Object.entries(part.requests)) {
      if (dim in sources || !Number.isFinite(n)) continue;
      requests[dim] = n;
      sources[dim] = part.source;
      winner[dim] = i;
    }
    for (const [name, n] of Object.entries(part.estimates ?? {})) {
      if (name in estimateSources || !Number.isFinite(n)) continue;
      estimates[name] = n;
      estimateSources[name] = part.source;
    }
  });
  parts.forEach((part, i) => {
    for (const [dim, n] of Object.entries(part.limits ?? {})) {
      if (dim in limits || !Number.isFinite(n)) continue;
      const w = winner[dim];
      if (w !== undefined && i > w) continue;
      if (n < (requests[dim] ?? 0)) {
        // A stronger source's cap (`--memory-limit 1Gi` over a history request of 1.5Gi) bounds the request.
        if (w === undefined || i >= w) continue;
        requests[dim] = n;
      }
      limits[dim] = n;
      limitSources[dim] = part.source;
    }
  });
  for (const dim of Object.keys(requests)) if (requests[dim] === 0) delete requests[dim];
  return {
    requests,
    ...(Object.keys(limits).length ? { limits, limitSources } : {}),
    sources,
    ...(Object.keys(estimates).length ? { estimates, estimateSources } : {}),
  };
}
