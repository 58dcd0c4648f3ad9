/**
 * The tree an npm install would place, resolved by npm's own resolver: @npmcli/arborist's
 * buildIdealTree (the lockfile, node_modules, peer and optional rules, dedupe, overrides: what
 * `npm install` itself computes before it reifies), fetching packuments with pacote and
 * npm-registry-fetch configured from the `.npmrc` layers (scoped registries, credentials, cache).
 * Nothing is written to the project; arborist may add packuments to the npm cache, as npm does.
 *
 * Each node of the ideal tree that is not already installed is then costed from its manifest:
 * `dist.unpackedSize` and `dist.fileCount` (disk), the tarball's bytes unless the npm cache holds
 * them (network), install scripts and node-gyp builds (CPU, memory). Where the registry leaves a
 * size out, the tarball is sized with a 4-byte range request; where a manifest says
 * `hasInstallScript` without its scripts (a lockfile entry), its version document is fetched to
 * tell a native build from a script. Optional packages for other platforms (arborist marks them
 * inert) are skipped, as npm skips them.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cachedTarballAsync } from './npm-cache.js';
import { RegistryClient, type VersionDoc } from './npm-registry.js';
import { classify, packageSizes, type NpmTree, type ResolvedPackage } from './npm-tree.js';
import { redactUrl, type NpmConfig } from './npmrc.js';

/** The part of an arborist Node this module reads. */
interface ArbNode {
  readonly name: string;
  readonly packageName: string;
  readonly version: string;
  readonly location: string;
  readonly depth: number;
  readonly resolved: string | null;
  readonly integrity: string | null;
  readonly package: VersionDoc & { readonly hasInstallScript?: boolean; readonly _resolved?: string };
  readonly isProjectRoot: boolean;
  readonly isLink: boolean;
  readonly inBundle: boolean;
  readonly dev: boolean;
  readonly optional: boolean;
  /** An optional package this platform cannot install (arborist's own os/cpu/libc check): npm skips it. */
  readonly inert: boolean;
  readonly hasInstallScript: boolean;
  readonly errors: readonly unknown[];
  readonly edgesOut: ReadonlyMap<string, { readonly to: ArbNode | null }>;
  readonly inventory: ReadonlyMap<string, ArbNode>;
}

interface ArboristInstance {
  buildIdealTree(opts: {
    add?: readonly string[];
    update?: { all: true } | { names: readonly string[] };
  }): Promise<ArbNode>;
}
type ArboristCtor = new (opts: Record<string, unknown>) => ArboristInstance;

let ctor: ArboristCtor | undefined;
/** Loaded on first use (≈ 0.3 s): only an npm-family install pays for it. */
function arborist(): ArboristCtor {
  ctor ??= createRequire(import.meta.url)('@npmcli/arborist') as ArboristCtor;
  return ctor;
}

export interface ArboristTreeOptions {
  /** The project directory (npm's localPrefix), or `<prefix>/lib` for a global install. */
  readonly path: string;
  readonly global: boolean;
  /** Registry specs to add (`npm install x@^1`); empty for a project install. */
  readonly add: readonly string[];
  /** `npm update`: the names to update, or all. */
  readonly update?: { all: true } | { names: readonly string[] };
  /** The names the user gave (the history key), as they appear under the root. */
  readonly rootNames: readonly string[];
  readonly config: NpmConfig;
  readonly fetch: typeof fetch;
  /** The deadline of arborist's resolution (its registry requests are aborted there). */
  readonly resolveSignal: AbortSignal;
  /** The deadline of the whole estimate (sizing included). */
  readonly signal: AbortSignal;
  readonly concurrency: number;
  readonly maxPackages: number;
  readonly omitDev: boolean;
  /** Packages already installed at their ideal version cost nothing (false for `npm ci`). */
  readonly countInstalled: boolean;
  readonly platform?: string;
  readonly arch?: string;
  readonly libc?: string;
}

/** Why arborist failed, in words fit for the provenance text: status, code, the URL without credentials. */
export function arboristFailure(e: unknown): string {
  const err = e as { code?: unknown; statusCode?: unknown; name?: unknown; uri?: unknown };
  const code = typeof err?.code === 'string' ? err.code : undefined;
  const status = typeof err?.statusCode === 'number' ? err.statusCode : undefined;
  const at = typeof err?.uri === 'string' ? ` from ${redactUrl(err.uri)}` : '';
  if (status !== undefined) return `HTTP ${status}${code ? ` ${code}` : ''}${at}`;
  if (code === 'FETCH_ABORTED' || err?.name === 'AbortError') return 'deadline reached';
  if (code) return `${code}${at}`;
  return 'resolution failed';
}

function installedVersion(dir: string): string | undefined {
  try {
    const v = (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version?: unknown }).version;
    return typeof v === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Resolves with arborist, then costs each node. Throws when arborist cannot resolve the tree. */
export async function arboristTree(opts: ArboristTreeOptions): Promise<NpmTree> {
  const Arborist = arborist();
  const cache = opts.config.cache;
  // npm creates a missing prefix; arborist cannot read one. An empty directory resolves the same tree.
  const scratch = existsSync(opts.path) ? undefined : mkdtempSync(join(tmpdir(), 'rrm-arborist-'));
  try {
    return await resolveAndCost(Arborist, scratch ?? opts.path, cache, opts);
  } finally {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  }
}

async function resolveAndCost(
  Arborist: ArboristCtor,
  path: string,
  cache: string | undefined,
  opts: ArboristTreeOptions,
): Promise<NpmTree> {
  const arb = new Arborist({
    ...opts.config.arboristOptions(),
    path,
    global: opts.global,
    ...(cache ? { cache: join(cache, '_cacache') } : {}),
    signal: opts.resolveSignal,
    // One retry, quickly: a resolution has a deadline, and the walk is the fallback.
    fetchRetries: 1,
    fetchRetryMintimeout: 100,
    fetchRetryMaxtimeout: 500,
    audit: false,
    fund: false,
    progress: false,
    ...(opts.platform ? { os: opts.platform } : {}),
    ...(opts.arch ? { cpu: opts.arch } : {}),
    ...(opts.libc ? { libc: opts.libc } : {}),
  });
  const ideal = await arb.buildIdealTree({
    ...(opts.add.length > 0 ? { add: opts.add } : {}),
    ...(opts.update ? { update: opts.update } : {}),
  });
  if (opts.resolveSignal.aborted)
    throw Object.assign(new Error('deadline reached'), { code: 'FETCH_ABORTED' });

  const client = new RegistryClient(opts.config.registry, opts.fetch, opts.signal, opts.config);
  const failed: string[] = [];
  let skippedPlatform = 0;
  const nodes: ArbNode[] = [];
  for (const node of ideal.inventory.values()) {
    if (node.isProjectRoot || node.isLink || node.inBundle) continue; // links are local; bundled deps ride in their parent's tarball
    if (node.location === '' || !node.version) continue;
    if (opts.omitDev && node.dev) continue;
    if (node.inert) {
      skippedPlatform++;
      continue;
    }
    if (node.errors.length > 0) {
      failed.push(`${node.packageName}@${node.version}`);
      continue;
    }
    nodes.push(node);
  }
  const rootVersions = new Map<string, string>();
  const rootNodes = new Set<ArbNode>();
  for (const name of opts.rootNames) {
    const to = ideal.edgesOut.get(name)?.to;
    if (to) {
      rootVersions.set(name, to.version);
      rootNodes.add(to);
    }
  }

  let sized = 0;
  const cost = async (node: ArbNode): Promise<ResolvedPackage> => {
    const installed =
      opts.countInstalled && installedVersion(join(opts.path, node.location)) === node.version;
    let doc: VersionDoc = node.package;
    const hasScript = node.hasInstallScript || doc.hasInstallScript === true;
    if (!installed && doc.scripts === undefined && hasScript) {
      doc = await client.versionDoc(node.packageName, node.version).catch(() => doc);
    }
    const kind = classify(doc, hasScript);
    const tarball = node.resolved ?? doc.dist?.tarball ?? node.package._resolved;
    const integrity = node.integrity ?? doc.dist?.integrity;
    const cached = installed ? undefined : await cachedTarballAsync(cache, integrity ?? undefined, tarball);
    const fetch = !installed && !cached && tarball && /^https?:/.test(tarball) && sized < opts.maxPackages;
    if (fetch) sized++;
    const sizes = await packageSizes(client, node.packageName, doc, cached, fetch ? tarball : undefined);
    const root = rootNodes.has(node);
    return {
      name: node.packageName,
      version: node.version,
      depth: Math.max(0, node.depth - 1),
      root,
      kind,
      installed,
      cached: cached !== undefined,
      ...sizes,
      ...(root && doc.rrm !== undefined ? { rrm: doc.rrm } : {}),
    };
  };

  const packages: ResolvedPackage[] = [];
  const queue = [...nodes];
  const worker = async (): Promise<void> => {
    for (let node = queue.shift(); node; node = queue.shift()) packages.push(await cost(node));
  };
  await Promise.all(Array.from({ length: Math.max(1, opts.concurrency) }, worker));
  const notes: string[] = [];
  const timedOut = opts.signal.aborted;
  if (timedOut) notes.push('the deadline cut sizing short: some sizes are typical, not measured');
  if (sized >= opts.maxPackages && nodes.length > opts.maxPackages)
    notes.push(`tarballs sized up to the bound of ${opts.maxPackages}`);
  return {
    packages,
    roots: opts.rootNames.map((name) => {
      const version = rootVersions.get(name);
      return version ? { name, version } : { name };
    }),
    failed,
    unexplored: 0,
    skippedPlatform,
    timedOut,
    requests: client.requests,
    notes,
    resolver: 'tree resolved by @npmcli/arborist',
  };
}
