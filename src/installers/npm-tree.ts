/**
 * The tree an npm install would fetch, walked breadth-first from the named packages with a bounded
 * fan-out (at most N packages, M requests in flight, one deadline for all), and what it costs:
 * tarball bytes not already in the npm cache (network), unpacked bytes (disk), and which packages
 * run install scripts or compile native addons (CPU, memory, time).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { classifyNpmManifest, type NpmPackageKind } from './npm-classify.js';
import type { ProfilePart } from '../profiles/profile.js';
import { parseProfileSpec } from '../profiles/profile-spec.js';
import { cachedTarball } from './npm-cache.js';
import {
  defaultTarballUrl,
  RegistryClient,
  RegistryHttpError,
  type RegistryAccess,
  type VersionDoc,
} from './npm-registry.js';
import { maxSatisfying, parseRange, satisfies } from './semver.js';

const KiB = 2 ** 10;
const MiB = 2 ** 20;

export interface NpmRoot {
  readonly name: string;
  /** Range or tag. */
  readonly range: string;
  /** Named by the user (a history key). */
  readonly root?: boolean;
  /** From a lockfile: no resolution needed. */
  readonly locked?: {
    readonly version: string;
    readonly resolved?: string;
    readonly integrity?: string;
    readonly hasInstallScript?: boolean;
    readonly os?: readonly string[];
    readonly cpu?: readonly string[];
  };
  /** Where the lockfile says it is installed. */
  readonly installedPath?: string;
}

export interface ResolvedPackage {
  readonly name: string;
  readonly version: string;
  readonly depth: number;
  readonly root: boolean;
  readonly kind: NpmPackageKind | 'unknown';
  /** Already at this version under node_modules: nothing to fetch or build. */
  readonly installed: boolean;
  /** Compressed tarball bytes, when known. */
  readonly size?: number;
  /** Unpacked bytes, when known; `unpackedEstimated` when guessed from the compressed size. */
  readonly unpacked?: number;
  readonly unpackedEstimated?: boolean;
  /** Files in the package (the registry's `dist.fileCount`), when known. */
  readonly fileCount?: number;
  readonly sizeSource?: 'registry' | 'cache' | 'range' | 'content-length';
  /** In the npm cache: no download. */
  readonly cached: boolean;
  readonly rrm?: unknown;
}

export interface NpmTree {
  readonly packages: readonly ResolvedPackage[];
  readonly roots: readonly { name: string; version?: string }[];
  readonly failed: readonly string[];
  /** Packages left unexplored at the bound or the deadline. */
  readonly unexplored: number;
  readonly skippedPlatform: number;
  readonly timedOut: boolean;
  readonly requests: number;
  readonly notes: readonly string[];
  /** Why requests failed (status and URL, never credentials), distinct. */
  readonly errors?: readonly string[];
  /** How the tree was resolved, for the provenance text (`@npmcli/arborist`, or the walk and why). */
  readonly resolver?: string;
}

export interface WalkOptions {
  readonly registry: string;
  readonly fetch: typeof fetch;
  readonly timeoutMs: number;
  readonly maxPackages: number;
  readonly concurrency: number;
  readonly cacheDir?: string;
  /** `<project>/node_modules`: packages already there at the resolved version cost nothing. */
  readonly installedBase?: string;
  readonly platform?: string;
  readonly arch?: string;
  /** `glibc` or `musl` on Linux (packages' `libc` field); absent elsewhere. */
  readonly libc?: string;
  /** Per-scope registries and credentials (.npmrc); without it every name comes from `registry`, unauthenticated. */
  readonly access?: RegistryAccess;
}

interface Item {
  readonly name: string;
  readonly range: string;
  readonly depth: number;
  readonly root: boolean;
  readonly locked?: NpmRoot['locked'];
  readonly installedPath?: string;
}

function isExactVersion(range: string): boolean {
  return /^v?\d+\.\d+\.\d+(-[\w.-]+)?(\+[\w.-]+)?$/.test(range);
}

function platformOk(list: readonly string[] | undefined, value: string | undefined): boolean {
  if (!list || list.length === 0) return true;
  if (value === undefined) return true;
  const deny = list.filter((x) => x.startsWith('!')).map((x) => x.slice(1));
  const allow = list.filter((x) => !x.startsWith('!'));
  if (deny.includes(value)) return false;
  return allow.length === 0 || allow.includes(value);
}

function installedVersion(dir: string | undefined): string | undefined {
  if (!dir) return undefined;
  try {
    const v = (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version?: unknown }).version;
    return typeof v === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}

export async function walkNpmTree(roots: readonly NpmRoot[], opts: WalkOptions): Promise<NpmTree> {
  const signal = AbortSignal.timeout(opts.timeoutMs);
  const client = new RegistryClient(opts.registry, opts.fetch, signal, opts.access);
  const platform = opts.platform ?? process.platform;
  const arch = opts.arch ?? process.arch;
  const libc = opts.libc ?? (opts.platform === undefined ? hostLibc() : undefined);
  const fits = (d: { os?: readonly string[]; cpu?: readonly string[]; libc?: readonly string[] }): boolean =>
    platformOk(d.os, platform) && platformOk(d.cpu, arch) && platformOk(d.libc, libc);
  const resolved = new Map<string, ResolvedPackage>(); // name@version
  const versionsOf = new Map<string, string[]>(); // name → resolved versions
  const rootVersions = new Map<string, string>();
  const failed: string[] = [];
  let skippedPlatform = 0;
  const queue: Item[] = roots.map((r) => ({
    name: r.name,
    range: r.range,
    depth: 0,
    root: r.root === true,
    locked: r.locked,
    installedPath: r.installedPath,
  }));
  const claimed = new Set<string>();
  const errors = new Set<string>();

  const alreadyHave = (name: string, range: string): boolean => {
    const have = versionsOf.get(name) ?? [];
    if (have.length === 0) return false;
    if (!parseRange(range)) return true; // a tag: any resolved version of it serves
    return have.some((v) => satisfies(v, range));
  };

  const handle = async (item: Item): Promise<void> => {
    let version: string;
    let doc: VersionDoc;
    if (item.locked) {
      version = item.locked.version;
      if (!fits(item.locked)) {
        skippedPlatform++;
        return;
      }
      doc = item.locked.hasInstallScript
        ? await client.versionDoc(item.name, version)
        : {
            name: item.name,
            version,
            dist: { tarball: item.locked.resolved, integrity: item.locked.integrity },
          };
      if (!doc.dist?.tarball && item.locked.resolved)
        doc = { ...doc, dist: { ...doc.dist, tarball: item.locked.resolved } };
    } else if (item.depth === 0 && (isExactVersion(item.range) || !parseRange(item.range))) {
      // A named version or tag: one small document instead of the whole packument.
      doc = await client.versionDoc(item.name, item.range).catch(async () => {
        const pack = await client.packument(item.name);
        const v = pack['dist-tags']?.[item.range] ?? item.range;
        const d = pack.versions?.[v];
        if (!d) throw new Error(`no version ${item.range} of ${item.name}`);
        return d;
      });
      if (!doc.version) throw new Error(`${item.name}@${item.range}: no version in the document`);
      version = doc.version;
      if (!fits(doc)) {
        skippedPlatform++;
        return;
      }
    } else {
      const pack = await client.packument(item.name);
      const tags = pack['dist-tags'] ?? {};
      const versions = Object.keys(pack.versions ?? {});
      const v = tags[item.range] ?? maxSatisfying(versions, item.range === 'latest' ? '*' : item.range);
      const picked = v ?? (item.range === 'latest' ? tags.latest : undefined);
      if (!picked || !pack.versions?.[picked])
        throw new Error(`no version of ${item.name} matches ${item.range}`);
      version = picked;
      doc = pack.versions[picked];
      if (doc.hasInstallScript === true && doc.scripts === undefined) {
        doc = await client.versionDoc(item.name, version).catch(() => doc);
      }
      if (!fits(doc)) {
        skippedPlatform++;
        return;
      }
    }
    const key = `${item.name}@${version}`;
    if (item.root) rootVersions.set(item.name, version);
    if (resolved.has(key)) return;
    const have = versionsOf.get(item.name) ?? [];
    versionsOf.set(item.name, [...have, version]);
    const installedDir =
      item.installedPath ?? (opts.installedBase ? join(opts.installedBase, item.name) : undefined);
    const installed = installedVersion(installedDir) === version;
    const kind = classify(doc, item.locked?.hasInstallScript);
    const cached = cachedTarball(opts.cacheDir, doc.dist?.integrity);
    const url = doc.dist?.tarball ?? defaultTarballUrl(client.registryFor(item.name), item.name, version);
    const sizes = await packageSizes(client, item.name, doc, cached, !installed && !cached ? url : undefined);
    resolved.set(key, {
      name: item.name,
      version,
      depth: item.depth,
      root: item.root,
      kind,
      installed,
      cached: cached !== undefined,
      ...sizes,
      ...(doc.rrm !== undefined ? { rrm: doc.rrm } : {}),
    });
    if (item.locked || installed) return;
    const bundled = new Set(Array.isArray(doc.bundleDependencies) ? doc.bundleDependencies : []);
    const peers = Object.entries(doc.peerDependencies ?? {}).filter(
      ([n]) => doc.peerDependenciesMeta?.[n]?.optional !== true,
    );
    const deps = [
      ...Object.entries(doc.dependencies ?? {}),
      ...Object.entries(doc.optionalDependencies ?? {}),
      ...peers,
    ];
    for (const [name, range] of deps) {
      if (bundled.has(name) || doc.bundleDependencies === true) continue;
      const alias = /^npm:((?:@[^/@]+\/)?[^@]+)(?:@(.*))?$/.exec(range);
      const depName = alias ? (alias[1] as string) : name;
      const depRange = alias ? (alias[2] ?? 'latest') : range || 'latest';
      if (/^(file:|link:|git|https?:|workspace:)/.test(depRange) || depRange.includes('/')) continue;
      queue.push({ name: depName, range: depRange, depth: item.depth + 1, root: false });
    }
  };

  const timedOut = await new Promise<boolean>((done) => {
    let active = 0;
    const pump = (): void => {
      while (
        !signal.aborted &&
        active < opts.concurrency &&
        queue.length > 0 &&
        resolved.size + active < opts.maxPackages
      ) {
        const item = queue.shift() as Item;
        const key = `${item.name}@${item.range}`;
        if (!item.locked && (claimed.has(key) || alreadyHave(item.name, item.range))) {
          if (item.root && !rootVersions.has(item.name)) {
            const have = versionsOf.get(item.name);
            if (have?.[0]) rootVersions.set(item.name, have[0]);
          }
          continue;
        }
        claimed.add(key);
        active++;
        handle(item)
          .catch((e: unknown) => {
            if (!signal.aborted || item.depth === 0) failed.push(`${item.name}@${item.range}`);
            if (e instanceof RegistryHttpError) errors.add(e.message);
          })
          .finally(() => {
            active--;
            pump();
          });
      }
      if (active === 0) done(signal.aborted);
    };
    pump();
  });

  const notes: string[] = [];
  const unexplored = queue.filter((i) => !alreadyHave(i.name, i.range)).length;
  if (timedOut) notes.push(`the registry walk stopped at its ${opts.timeoutMs} ms deadline`);
  if (unexplored > 0 && !timedOut)
    notes.push(`the walk stopped at its bound of ${opts.maxPackages} packages`);
  return {
    packages: [...resolved.values()],
    roots: roots
      .filter((r) => r.root)
      .map((r) => {
        const version = rootVersions.get(r.name);
        return version ? { name: r.name, version } : { name: r.name };
      }),
    failed,
    unexplored,
    skippedPlatform,
    timedOut,
    requests: client.requests,
    notes,
    ...(errors.size > 0 ? { errors: [...errors] } : {}),
  };
}

/** `glibc` or `musl` on Linux (what npm-install-checks compares a package's `libc` with). */
let libcMemo: string | undefined | null = null;
export function hostLibc(): string | undefined {
  if (libcMemo !== null) return libcMemo;
  libcMemo = undefined;
  if (process.platform === 'linux') {
    try {
      const header = (
        process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined
      )?.header;
      libcMemo = header?.glibcVersionRuntime ? 'glibc' : 'musl';
    } catch {
      libcMemo = undefined;
    }
  }
  return libcMemo;
}

export function classify(doc: VersionDoc, lockHasScript: boolean | undefined): NpmPackageKind | 'unknown' {
  if (doc.scripts === undefined && doc.hasInstallScript === true) return 'scripts';
  if (doc.scripts === undefined && lockHasScript === true) return 'scripts';
  return classifyNpmManifest(doc);
}

/**
 * A package's sizes: unpacked from the registry's `dist.unpackedSize`, else from the npm cache;
 * compressed from the cache, else (given `fetchFrom`) from the tarball itself by a range request.
 */
export async function packageSizes(
  client: RegistryClient,
  name: string,
  doc: VersionDoc,
  cached: { size: number; unpacked?: number } | undefined,
  fetchFrom: string | undefined,
): Promise<Pick<ResolvedPackage, 'size' | 'unpacked' | 'unpackedEstimated' | 'fileCount' | 'sizeSource'>> {
  let size = cached?.size;
  let unpacked = doc.dist?.unpackedSize ?? cached?.unpacked;
  let unpackedEstimated = false;
  let sizeSource: ResolvedPackage['sizeSource'] =
    doc.dist?.unpackedSize !== undefined ? 'registry' : cached ? 'cache' : undefined;
  if (fetchFrom !== undefined) {
    try {
      const t = await client.tarballSize(fetchFrom, name);
      size = t.size;
      if (unpacked === undefined) {
        unpacked = t.unpacked;
        unpackedEstimated = t.unpackedEstimated;
        sizeSource = t.unpackedEstimated ? 'content-length' : 'range';
      }
    } catch {
      // size stays unknown; the profile says so
    }
  }
  return {
    ...(size !== undefined ? { size } : {}),
    ...(unpacked !== undefined ? { unpacked, unpackedEstimated } : {}),
    ...(doc.dist?.fileCount !== undefined ? { fileCount: doc.dist.fileCount } : {}),
    ...(sizeSource ? { sizeSource } : {}),
  };
}

export interface NpmCostModel {
  /** CPU an install keeps busy: npm is one node process; node-gyp builds run one compiler job. */
  readonly cpu: Readonly<Record<NpmPackageKind, number>>;
  /** Peak memory: npm with an empty tree, plus per package in the tree, plus a factor of the unpacked
   * bytes (the page cache a cgroup charges to the install), plus what a script or a compiler adds. */
  readonly baseMemory: number;
  readonly memoryPerPackage: number;
  readonly memoryPerUnpackedByte: number;
  readonly extraMemory: Readonly<Record<NpmPackageKind, number>>;
  readonly memoryMargin: number;
  /** Disk a native build leaves (build/ directory, objects), as a multiple of its sources; per package, metadata files npm adds. */
  readonly nativeBuildDiskFactor: number;
  readonly diskPerPackage: number;
  /** Per file the registry counts (`dist.fileCount`): half a 4 KiB block lost to rounding, on average. */
  readonly diskPerFile: number;
  readonly cpuMsBase: number;
  readonly cpuMsPerPackage: number;
  readonly cpuMsPerMiB: number;
  readonly cpuMsScripts: number;
  /** A native build compiles the package's own sources: its cost grows with its unpacked size. */
  readonly nativeCpuMsBase: number;
  readonly nativeCpuMsPerMiB: number;
  readonly nativeMemoryBase: number;
  readonly nativeMemoryPerMiB: number;
  readonly nativeMemoryMax: number;
  /** Share of a core an install keeps busy (wall ≈ cpu / this + download time). */
  readonly busy: number;
  /** Bytes per second a download is assumed to take, for the time estimate. */
  readonly downloadRate: number;
  /** Seconds over which a download's bandwidth is reserved. */
  readonly networkWindowS: number;
  readonly maxNetwork: number;
  /** When sizes are unknown: a package's typical unpacked and compressed bytes. */
  readonly typicalUnpacked: number;
  readonly typicalSize: number;
}

/** Calibrated on this project's eval (eval/profiles.ts) on a 2-CPU Debian 12 machine, npm 11. */
export const NPM_COST_MODEL: NpmCostModel = Object.freeze({
  cpu: Object.freeze({ plain: 1000, scripts: 1000, native: 1000 }),
  baseMemory: 48 * MiB,
  memoryPerPackage: 0.6 * MiB,
  memoryPerUnpackedByte: 2,
  extraMemory: Object.freeze({ plain: 0, scripts: 64 * MiB, native: 0 }),
  memoryMargin: 1.1,
  nativeBuildDiskFactor: 2,
  diskPerPackage: 4 * KiB,
  diskPerFile: 2 * KiB,
  cpuMsBase: 500,
  cpuMsPerPackage: 30,
  cpuMsPerMiB: 50,
  cpuMsScripts: 1500,
  nativeCpuMsBase: 3000,
  nativeCpuMsPerMiB: 8800,
  nativeMemoryBase: 96 * MiB,
  nativeMemoryPerMiB: 40 * MiB,
  nativeMemoryMax: 1536 * MiB,
  busy: 0.85,
  downloadRate: 10 * MiB,
  networkWindowS: 20,
  maxNetwork: 20 * MiB,
  typicalUnpacked: 150 * KiB,
  typicalSize: 40 * KiB,
});

/**
 * pnpm and yarn are node programs like npm but start larger: with a one-package tree pnpm 9
 * peaked at 68 MiB and yarn 1 at 54 MiB where npm 11 peaked at 29 MiB (measured under cgroups by
 * test/installers/pnpm-yarn.test.ts on the same machine). The rest of npm's model carries over.
 */
export const COST_MODELS: Readonly<Record<string, NpmCostModel>> = Object.freeze({
  npm: NPM_COST_MODEL,
  pnpm: Object.freeze({ ...NPM_COST_MODEL, baseMemory: 84 * MiB }),
  yarn: Object.freeze({ ...NPM_COST_MODEL, baseMemory: 64 * MiB }),
});

export function npmProfilePart(
  tree: NpmTree,
  opts: { ignoreScripts: boolean; rebuild: boolean; specsNotSized: number },
  model: NpmCostModel = NPM_COST_MODEL,
): ProfilePart[] {
  const parts: ProfilePart[] = [];
  const manifests = tree.packages.filter((p) => p.root && p.rrm !== undefined);
  for (const p of manifests) {
    try {
      const spec = parseProfileSpec(p.rrm, `${p.name}@${p.version} rrm`);
      parts.push({
        requests: spec.requests,
        limits: spec.limits,
        estimates: spec.estimates,
        source: {
          provenance: 'manifest',
          confidence: spec.confidence ?? 0.6,
          note: `the rrm block of ${p.name}@${p.version}'s package.json`,
        },
      });
    } catch {
      // a bad block is ignored; metadata answers instead
    }
  }
  if (tree.packages.length === 0) return parts;
  const work = tree.packages.filter((p) => opts.rebuild || !p.installed);
  const kindOf = (p: ResolvedPackage): NpmPackageKind =>
    opts.ignoreScripts ? 'plain' : p.kind === 'unknown' ? 'plain' : p.kind;
  let cpu = model.cpu.plain;
  let extra = 0;
  let native = 0;
  let nativeCpuMs = 0;
  let nativeSrc = 0;
  let scripts = 0;
  for (const p of work) {
    const k = kindOf(p);
    cpu = Math.max(cpu, model.cpu[k]);
    extra = Math.max(extra, model.extraMemory[k]);
    if (k === 'native') {
      native++;
      nativeSrc += p.unpacked ?? model.typicalUnpacked;
      const srcMiB = (p.unpacked ?? model.typicalUnpacked) / MiB;
      nativeCpuMs += model.nativeCpuMsBase + srcMiB * model.nativeCpuMsPerMiB;
      extra = Math.max(
        extra,
        Math.min(model.nativeMemoryMax, model.nativeMemoryBase + srcMiB * model.nativeMemoryPerMiB),
      );
    }
    if (k === 'scripts') scripts++;
  }
  let unpacked = 0;
  let download = 0;
  let unknownSizes = 0;
  let estimated = 0;
  let files = 0;
  if (!opts.rebuild) {
    for (const p of work) {
      files += p.fileCount ?? 0;
      if (p.unpacked === undefined) unknownSizes++;
      if (p.unpackedEstimated) estimated++;
      unpacked += p.unpacked ?? model.typicalUnpacked;
      if (!p.cached) download += p.size ?? model.typicalSize;
    }
  }
  const gap = tree.unexplored;
  unpacked += gap * model.typicalUnpacked;
  download += gap * model.typicalSize;
  const n = (opts.rebuild ? 0 : work.length) + gap;
  const memory = Math.ceil(
    (model.baseMemory + n * model.memoryPerPackage + unpacked * model.memoryPerUnpackedByte + extra) *
      model.memoryMargin,
  );
  const disk =
    unpacked +
    download +
    n * model.diskPerPackage +
    files * model.diskPerFile +
    nativeSrc * model.nativeBuildDiskFactor;
  const cpuMs = Math.round(
    model.cpuMsBase +
      n * model.cpuMsPerPackage +
      (unpacked / MiB) * model.cpuMsPerMiB +
      scripts * model.cpuMsScripts +
      nativeCpuMs,
  );
  const wallMs = Math.round(cpuMs / model.busy + (download / model.downloadRate) * 1000);
  const network =
    download > 0 ? Math.min(model.maxNetwork, Math.max(MiB, Math.ceil(download / model.networkWindowS))) : 0;
  const named = tree.roots.map((r) => {
    const p = tree.packages.find((x) => x.name === r.name && x.version === r.version);
    return `${r.name}${r.version ? `@${r.version}` : ''} ${p ? (p.installed && !opts.rebuild ? 'installed' : kindOf(p)) : 'unresolved'}`;
  });
  const bits = [
    named.length
      ? named.join(', ')
      : `${tree.packages.length} ${tree.resolver?.includes('lockfile') ? 'locked ' : ''}packages of the project`,
    `${work.length} of ${tree.packages.length} packages to install${tree.skippedPlatform ? ` (${tree.skippedPlatform} for other platforms skipped)` : ''}`,
    `${fmt(download)} to download (${work.filter((p) => p.cached).length} tarballs cached)`,
    `${fmt(unpacked)} unpacked${files ? ` in ${files} files` : ''}`,
  ];
  if (native) bits.push(`${native} native build(s)`);
  if (scripts) bits.push(`${scripts} with install scripts`);
  if (opts.ignoreScripts) bits.push('--ignore-scripts: no scripts run');
  if (estimated) bits.push(`${estimated} unpacked sizes guessed from content-length`);
  if (unknownSizes) bits.push(`${unknownSizes} sizes unknown (typical size assumed)`);
  const fromTrailer = work.filter((p) => p.sizeSource === 'range' || p.sizeSource === 'cache').length;
  if (fromTrailer)
    bits.push(`${fromTrailer} unpacked sizes from gzip trailers (no unpackedSize in the registry)`);
  if (tree.failed.length)
    bits.push(
      `metadata unavailable for ${tree.failed.slice(0, 5).join(', ')}${tree.failed.length > 5 ? ', ...' : ''}`,
    );
  if (gap) bits.push(`${gap} packages not explored (${tree.timedOut ? 'deadline' : 'bound'})`);
  if (opts.specsNotSized) bits.push(`${opts.specsNotSized} non-registry spec(s) not sized`);
  if (tree.resolver) bits.push(tree.resolver);
  const complete = tree.failed.length === 0 && gap === 0 && unknownSizes === 0;
  parts.push({
    requests: { cpu, memory, disk: Math.ceil(disk), ...(network ? { network } : {}) },
    estimates: { cpuMs, wallMs, downloadBytes: Math.ceil(download) },
    source: {
      provenance: 'metadata',
      confidence: complete ? 0.4 : tree.failed.length > 0 ? 0.2 : 0.3,
      note: `npm registry metadata: ${bits.join('; ')}`,
    },
  });
  return parts;
}

function fmt(bytes: number): string {
  if (bytes >= MiB) return `${(bytes / MiB).toFixed(1)}Mi`;
  if (bytes >= KiB) return `${(bytes / KiB).toFixed(0)}Ki`;
  return `${Math.round(bytes)}B`;
}
