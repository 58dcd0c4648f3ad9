/**
 * The resolver chain for `rrm run`: flags, then npm registry metadata for `npm install <pkgs>`,
 * then defaults. Later resolvers (manifest, profile service, history) slot in between.
 */
import type { ResourceVector } from '../model/vector.js';
import { npmInstallSpecs, npmMetadataPart } from './npm-metadata.js';
import { combine, type ProfilePart, type ResourceProfile } from './profile.js';

const MiB = 2 ** 20;

export const DEFAULT_REQUESTS: ResourceVector = Object.freeze({ cpu: 1000, memory: 512 * MiB });

export interface ResolveInput {
  readonly argv: readonly string[];
  readonly flags: ResourceVector;
  readonly flagLimits?: ResourceVector;
  readonly registry: string;
  readonly metadataTimeoutMs: number;
}

export async function resolveProfile(input: ResolveInput): Promise<ResourceProfile> {
  const parts: ProfilePart[] = [
    { requests: input.flags, limits: input.flagLimits, source: { provenance: 'flag', confidence: 1 } },
  ];
  const specs = npmInstallSpecs(input.argv);
  if (specs && specs.length > 0)
    parts.push((await npmMetadataPart(specs, input.registry, input.metadataTimeoutMs)).part);
  parts.push({
    requests: DEFAULT_REQUESTS,
    source: { provenance: 'default', confidence: 0.1, note: 'rrm default' },
  });
  return combine(parts);
}
