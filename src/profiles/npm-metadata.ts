/**
 * A first estimate for `npm install <pkgs>` from registry metadata: packages with install scripts
 * ask for more than plain ones, and those that compile native addons (node-gyp) for more still.
 * Metadata that cannot be fetched in time falls back to defaults, and says so.
 */
import type { ProfilePart } from './profile.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

export type NpmPackageKind = 'plain' | 'scripts' | 'native';

/** What a package of each kind asks for; the install takes the largest of its packages. */
export const NPM_KIND_PROFILE: Readonly<Record<NpmPackageKind, { cpu: number; memory: number }>> =
  Object.freeze({
    plain: { cpu: 500, memory: 256 * MiB },
    scripts: { cpu: 1000, memory: 512 * MiB },
    native: { cpu: 1000, memory: 1 * GiB },
  });

const NATIVE_DEPS = ['node-gyp', 'nan', 'node-addon-api', 'node-gyp-build', 'cmake-js', 'bindings'];
const PREBUILT_DEPS = ['prebuild-install', '@mapbox/node-pre-gyp', 'node-pre-gyp', 'prebuildify'];

interface VersionManifest {
  readonly name?: string;
  readonly version?: string;
  readonly scripts?: Readonly<Record<string, string>>;
  readonly gypfile?: boolean;
  readonly dependencies?: Readonly<Record<string, string>>;
  readonly dist?: { readonly unpackedSize?: number; readonly fileCount?: number };
}

export function classifyNpmManifest(m: VersionManifest): NpmPackageKind {
  const scripts = m.scripts ?? {};
  const deps = Object.keys(m.dependencies ?? {});
  const hasScript = ['preinstall', 'install', 'postinstall'].some((s) => typeof scripts[s] === 'string');
  const gyp =
    m.gypfile === true ||
    /node-gyp|cmake-js/.test(scripts.install ?? '') ||
    deps.some((d) => NATIVE_DEPS.includes(d));
  if (gyp && hasScript) return 'native';
  if (gyp && !deps.some((d) => PREBUILT_DEPS.includes(d))) return 'native';
  return hasScript ? 'scripts' : 'plain';
}

/** `npm install|i|add [opts] <specs>` → the package specs; undefined when argv is not an npm install. */
export function npmInstallSpecs(argv: readonly string[]): string[] | undefined {
  const [cmd, sub, ...rest] = argv;
  if (!cmd || !/(^|\/)npm$/.test(cmd)) return undefined;
  if (!sub || !['install', 'i', 'add', 'isntall', 'in'].includes(sub)) return undefined;
  const specs: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i] as string;
    if (a === '--') {
      specs.push(...rest.slice(i + 1));
      break;
    }
    if (a.startsWith('-')) {
      if (!a.includes('=') && NPM_VALUE_OPTIONS.has(a)) i++;
      continue;
    }
    specs.push(a);
  }
  return specs;
}

/** npm options that take a value as the next word (`--prefix DIR`), so the value is not a package. */
const NPM_VALUE_OPTIONS = new Set([
  '--prefix',
  '--registry',
  '--cache',
  '--tag',
  '--userconfig',
  '--globalconfig',
  '--workspace',
  '-w',
  '--omit',
  '--include',
  '--install-strategy',
  '--loglevel',
  '--before',
  '--save-prefix',
  '--otp',
  '-C',
]);

/** `name@range` → [name, tagOrVersion]; scoped names keep their `@`. */
export function splitSpec(spec: string): [string, string] {
  const at = spec.lastIndexOf('@');
  if (at > 0) return [spec.slice(0, at), spec.slice(at + 1) || 'latest'];
  return [spec, 'latest'];
}

function isRegistrySpec(spec: string): boolean {
  return /^(@[a-z0-9][\w.-]*\/)?[a-z0-9][\w.-]*(@[\w.^~<>=| -]+)?$/i.test(spec) && !spec.includes('/..');
}

async function fetchManifest(registry: string, spec: string, timeoutMs: number): Promise<VersionManifest> {
  const [name, version] = splitSpec(spec);
  const exact =
    /^\d+\.\d+\.\d+([-+].*)?$/.test(version) || /^[a-z][\w-]*$/i.test(version) ? version : 'latest';
  const url = `${registry}${name.replace('/', '%2f')}/${encodeURIComponent(exact)}`;
  const res = await fetch(url, {
    signal: AbortSignal.timeout(timeoutMs),
    headers: { accept: 'application/json' },
  });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return (await res.json()) as VersionManifest;
}

export async function npmMetadataPart(
  specs: readonly string[],
  registry: string,
  timeoutMs: number,
): Promise<{ part: ProfilePart; kinds: Record<string, NpmPackageKind | 'unknown'> }> {
  const kinds: Record<string, NpmPackageKind | 'unknown'> = {};
  let cpu = NPM_KIND_PROFILE.plain.cpu;
  let memory = NPM_KIND_PROFILE.plain.memory;
  let disk = 0;
  let failures = 0;
  await Promise.all(
    specs.map(async (spec) => {
      if (!isRegistrySpec(spec)) {
        kinds[spec] = 'unknown';
        failures++;
        return;
      }
      try {
        const m = await fetchManifest(registry, spec, timeoutMs);
        const kind = classifyNpmManifest(m);
        kinds[spec] = kind;
        cpu = Math.max(cpu, NPM_KIND_PROFILE[kind].cpu);
        memory = Math.max(memory, NPM_KIND_PROFILE[kind].memory);
        disk += m.dist?.unpackedSize ?? 0;
      } catch {
        kinds[spec] = 'unknown';
        failures++;
      }
    }),
  );
  const known = specs.length - failures;
  const note =
    failures === 0
      ? `registry metadata: ${Object.entries(kinds)
          .map(([s, k]) => `${s} ${k}`)
          .join(', ')}`
      : `registry metadata for ${known} of ${specs.length} packages (${Object.entries(kinds)
          .filter(([, k]) => k === 'unknown')
          .map(([s]) => s)
          .join(', ')} unavailable)`;
  return {
    part: {
      requests: known > 0 ? { cpu, memory, ...(disk > 0 ? { disk } : {}) } : {},
      source: { provenance: 'metadata', confidence: known === specs.length ? 0.4 : 0.2, note },
    },
    kinds,
  };
}
