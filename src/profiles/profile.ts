/**
 * A ResourceProfile: what one install needs, and for every number where it came from.
 * Resolvers are tried in order; the first that answers a dimension wins it.
 */
import type { ResourceVector } from '../model/vector.js';

export type Provenance = 'flag' | 'manifest' | 'service' | 'history' | 'metadata' | 'default';

export interface Source {
  readonly provenance: Provenance;
  /** 0..1: how sure the resolver is. */
  readonly confidence: number;
  readonly note?: string;
}

export interface ResourceProfile {
  readonly requests: ResourceVector;
  readonly limits?: ResourceVector;
  readonly sources: Readonly<Record<string, Source>>;
}

/** One resolver's partial answer. */
export interface ProfilePart {
  readonly requests: ResourceVector;
  readonly limits?: ResourceVector;
  readonly source: Source;
}

/** First answer per dimension wins, in the order given. */
export function combine(parts: readonly ProfilePart[]): ResourceProfile {
  const requests: Record<string, number> = {};
  const limits: Record<string, number> = {};
  const sources: Record<string, Source> = {};
  for (const part of parts) {
    for (const [dim, n] of Object.entries(part.requests)) {
      if (dim in sources) continue;
      requests[dim] = n;
      sources[dim] = part.source;
    }
    for (const [dim, n] of Object.entries(part.limits ?? {})) if (!(dim in limits)) limits[dim] = n;
  }
  for (const dim of Object.keys(requests)) if (requests[dim] === 0) delete requests[dim];
  return { requests, ...(Object.keys(limits).length ? { limits } : {}), sources };
}
