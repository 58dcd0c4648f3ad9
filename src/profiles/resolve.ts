/**
 * The resolver chain: flags → installer rules (dpkg-lock) → manifests (project package.json,
 * rrm-profiles.json, /etc/rrm/profiles.d, the package's own rrm block) → profile service → history
 * → registry metadata heuristics → defaults. First answer per dimension wins; every number keeps
 * its provenance and confidence.
 */
import { homedir } from 'node:os';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config.js';
import type { PackageRef } from '../model/reservation.js';
import type { ResourceVector } from '../model/vector.js';
import { execArgv, parseInstall } from '../installers/index.js';
import { projectDir } from '../installers/npm.js';
import { normalizePipName } from '../installers/pip.js';
import type { InstallIntent, ManagerFamily, MetadataContext } from '../installers/types.js';
import { HistoryStore, historyPart, localInstanceClass } from './history.js';
import { manifestParts } from './manifest.js';
import { combine, PROVENANCE_ORDER, type ProfilePart, type ResourceProfile } from './profile.js';
import { servicePart, type ServiceOptions } from './service.js';

const MiB = 2 ** 20;

export const DEFAULT_REQUESTS: ResourceVector = Object.freeze({ cpu: 1000, memory: 512 * MiB });

/** Defaults per manager family, when nothing else answered. */
export const FAMILY_DEFAULTS: Readonly<Record<ManagerFamily, ResourceVector>> = Object.freeze({
  npm: DEFAULT_REQUESTS,
  apt: Object.freeze({ cpu: 500, memory: 256 * MiB }),
  pip: Object.freeze({ cpu: 1000, memory: 512 * MiB }),
});

export interface ResolveFlags {
  readonly requests: ResourceVector;
  readonly limits?: ResourceVector;
}

export interface ResolveContext {
  readonly metadata: MetadataContext;
  /** Directories of profile files (`/etc/rrm/profiles.d`). */
  readonly profileDirs: readonly string[];
  readonly service?: ServiceOptions;
  /** The history store; absent = no history (a cold prediction). */
  readonly history?: Pick<HistoryStore, 'recommend'>;
  readonly instanceClass: string;
  readonly now: number;
  /** false: no registry or apt lookups (flags, manifests, history and defaults only). */
  readonly useMetadata?: boolean;
}

export interface InstallProfile {
  readonly profile: ResourceProfile;
  /** null when the argv is not an install: it runs untouched, on flags and defaults. */
  readonly intent: InstallIntent | null;
  /** The packages installed, versions resolved where metadata could: the history key. */
  readonly packages: readonly PackageRef[];
  /** What the resolvers noticed (a dead service, a bad profile file, a skipped spec). */
  readonly notes: readonly string[];
}

const FLAG_SOURCE = { provenance: 'flag', confidence: 1 } as const;

/** Stable order by provenance: whatever order the resolvers answered in, the chain's order decides. */
function ordered(parts: readonly ProfilePart[]): ProfilePart[] {
  return parts
    .map((p, i) => ({ p, i }))
    .sort(
      (a, b) =>
        PROVENANCE_ORDER.indexOf(a.p.source.provenance) - PROVENANCE_ORDER.indexOf(b.p.source.provenance) ||
        a.i - b.i,
    )
    .map((x) => x.p);
}

/** The named packages as written; a version only when the spec pins one exactly. */
function specPackages(intent: InstallIntent): PackageRef[] {
  const manager = intent.family === 'apt' ? 'apt' : intent.family === 'pip' ? 'pip' : intent.manager;
  return intent.specs
    .filter((s) => s.kind === 'registry' && s.name)
    .map((s) => {
      const r = s.range ?? '';
      const version =
        intent.family === 'npm'
          ? /^v?(\d+\.\d+\.\d+(?:[-+][\w.-]+)?)$/.exec(r)?.[1]
          : intent.family === 'pip'
            ? /^===?([\w.+!-]+)$/.exec(r)?.[1]
            : r && !r.startsWith('/')
              ? r
              : undefined;
      const name = intent.family === 'pip' ? normalizePipName(s.name as string) : (s.name as string);
      return { manager, name, ...(version ? { version } : {}) };
    });
}

/** The one entry point: argv and flags in, the profile, the intent and the packages out. */
export async function resolveInstallProfile(
  argv: readonly string[],
  flags: ResolveFlags,
  ctx: ResolveContext,
): Promise<InstallProfile> {
  const parts: ProfilePart[] = [
    { requests: flags.requests, ...(flags.limits ? { limits: flags.limits } : {}), source: FLAG_SOURCE },
  ];
  const parsed = parseInstall(argv);
  if (!parsed) {
    parts.push({
      requests: DEFAULT_REQUESTS,
      source: { provenance: 'default', confidence: 0.1, note: 'rrm default (not an install)' },
    });
    return { profile: combine(parts), intent: null, packages: [], notes: [] };
  }
  const { adapter, intent } = parsed;
  const notes: string[] = [...intent.notes];
  if (Object.keys(intent.named).length)
    parts.push({
      requests: intent.named,
      source: {
        provenance: 'installer',
        confidence: 1,
        note: `${intent.manager} ${intent.subcommand ?? intent.action} changes the package database: it takes the dpkg lock`,
      },
    });
  let packages: PackageRef[] = specPackages(intent);
  // The adapter's parts go in after the manifests: within one provenance, files someone wrote for
  // this machine or project come before what a package says about itself.
  const adapterParts: ProfilePart[] = [];
  if (ctx.useMetadata !== false) {
    try {
      const meta = await adapter.metadata(intent, ctx.metadata);
      adapterParts.push(...meta.parts);
      if (meta.packages.length) packages = [...meta.packages];
      notes.push(...meta.notes);
    } catch (e) {
      notes.push(`${adapter.manager} metadata failed: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  const m = manifestParts(intent, packages, {
    projectDir: intent.family === 'npm' ? projectDir(intent, ctx.metadata.cwd) : ctx.metadata.cwd,
    cwd: ctx.metadata.cwd,
    profileDirs: ctx.profileDirs,
  });
  parts.push(...m.parts);
  notes.push(...m.notes);
  if (ctx.service) {
    const s = await servicePart(packages, ctx.instanceClass, ctx.now, ctx.service);
    if (s.part) parts.push(s.part);
    else notes.push(s.note);
  }
  if (ctx.history) {
    try {
      const r = ctx.history.recommend(packages, ctx.instanceClass, ctx.now);
      if (r) parts.push(historyPart(r));
    } catch (e) {
      notes.push(`history unavailable: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  parts.push(...adapterParts);
  const metadataAnswered = parts.some((p) => p.source.provenance === 'metadata');
  parts.push({
    requests: FAMILY_DEFAULTS[intent.family],
    source: {
      provenance: 'default',
      confidence: 0.1,
      note: `rrm default for ${intent.family}${metadataAnswered || ctx.useMetadata === false ? '' : ' (metadata unavailable)'}`,
    },
  });
  return { profile: combine(ordered(parts)), intent, packages, notes };
}

/** The metadata context from the compiled config and the environment (read here, once, by the CLI). */
export function metadataContext(
  config: Pick<Config, 'npmRegistry' | 'metadataTimeoutMs'>,
  env: NodeJS.ProcessEnv,
  cwd: string,
): MetadataContext {
  const home = env.HOME || homedir();
  return {
    registry: config.npmRegistry,
    timeoutMs: config.metadataTimeoutMs,
    localTimeoutMs:
      Number(env.RRM_LOCAL_METADATA_TIMEOUT_MS) > 0 ? Number(env.RRM_LOCAL_METADATA_TIMEOUT_MS) : 15_000,
    cwd,
    env,
    npmCacheDir: env.npm_config_cache || env.NPM_CONFIG_CACHE || join(home, '.npm'),
    npmMaxPackages: 300,
    npmConcurrency: 12,
    pipIndexUrl: env.PIP_INDEX_URL || 'https://pypi.org/simple/',
    aptArchivesDir: '/var/cache/apt/archives',
    fetch: globalThis.fetch,
    exec: execArgv,
  };
}

export interface ContextOptions {
  /** Use history: the store, or `'open'` to open `<stateDir>/history.db` when it exists. */
  readonly history?: HistoryStore | 'open' | 'none';
  readonly now?: number;
  readonly cwd?: string;
}

/**
 * Everything the chain needs, from the config and environment:
 * RRM_PROFILE_DIRS (colon-separated; default /etc/rrm/profiles.d), RRM_PROFILE_SERVICE (URL),
 * RRM_PROFILE_SERVICE_TIMEOUT_MS (default 1000), RRM_INSTANCE_CLASS (default cpus-c-memGi),
 * npm_config_cache, PIP_INDEX_URL. The caller closes a history store it asked to open.
 */
export function resolveContext(
  config: Pick<Config, 'npmRegistry' | 'metadataTimeoutMs' | 'stateDir'>,
  env: NodeJS.ProcessEnv,
  opts: ContextOptions = {},
): ResolveContext & { history?: HistoryStore } {
  const cwd = opts.cwd ?? process.cwd();
  let history: HistoryStore | undefined;
  if (opts.history instanceof HistoryStore) history = opts.history;
  else if (opts.history === 'open' && existsSync(join(config.stateDir, 'history.db'))) {
    try {
      history = HistoryStore.open(config.stateDir);
    } catch {
      history = undefined; // unreadable (another user's state): profile without history
    }
  }
  const service: ServiceOptions | undefined = env.RRM_PROFILE_SERVICE
    ? {
        url: env.RRM_PROFILE_SERVICE,
        timeoutMs:
          Number(env.RRM_PROFILE_SERVICE_TIMEOUT_MS) > 0 ? Number(env.RRM_PROFILE_SERVICE_TIMEOUT_MS) : 1000,
        cachePath: join(config.stateDir, 'profile-service-cache.json'),
        ttlMs: 3_600_000,
        deadForMs: 300_000,
        fetch: globalThis.fetch,
      }
    : undefined;
  return {
    metadata: metadataContext(config, env, cwd),
    profileDirs:
      env.RRM_PROFILE_DIRS !== undefined
        ? env.RRM_PROFILE_DIRS.split(':').filter(Boolean)
        : ['/etc/rrm/profiles.d'],
    ...(service ? { service } : {}),
    ...(history ? { history } : {}),
    instanceClass: env.RRM_INSTANCE_CLASS || localInstanceClass(),
    now: opts.now ?? Date.now(),
  };
}
