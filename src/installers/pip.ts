/**
 * pip (`pip install`, `pip3 install`, `python3 -m pip install`). Local wheels are sized from their
 * zip directory; local sdists and source directories are builds (a compiler when they carry C,
 * C++, Cython, Fortran or Rust sources); names are looked up in the index's JSON API
 * (`/pypi/<name>/json`: files with `packagetype` and `size`), falling back to the PEP 691 simple
 * JSON. Without a reachable index the profile says so and falls through to defaults.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import type { PackageRef } from '../model/reservation.js';
import { allValues, has, lastValue, programName, scanArgs } from './argv.js';
import { listTarGz, listZip, nativeSources, type ArchiveListing } from './archive.js';
import type {
  InstallerAdapter,
  InstallIntent,
  MetadataContext,
  MetadataResult,
  PackageSpec,
} from './types.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

const PIP_VALUE_OPTIONS = new Set([
  '-r',
  '--requirement',
  '-c',
  '--constraint',
  '-e',
  '--editable',
  '-t',
  '--target',
  '--platform',
  '--python-version',
  '--implementation',
  '--abi',
  '--root',
  '--prefix',
  '--src',
  '--upgrade-strategy',
  '-C',
  '--config-settings',
  '--global-option',
  '--install-option',
  '--no-binary',
  '--only-binary',
  '-i',
  '--index-url',
  '--extra-index-url',
  '-f',
  '--find-links',
  '--report',
  '--progress-bar',
  '--log',
  '--proxy',
  '--retries',
  '--timeout',
  '--exists-action',
  '--trusted-host',
  '--cert',
  '--client-cert',
  '--cache-dir',
  '--python',
  '--use-feature',
  '--use-deprecated',
  '--root-user-action',
  '--keyring-provider',
]);

/** PEP 508 name, extras and version specifiers; no URLs or markers with shell syntax. */
const REQUIREMENT =
  /^([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)(\[[A-Za-z0-9._,\s-]*\])?\s*((?:(?:===|==|!=|~=|<=|>=|<|>)\s*[A-Za-z0-9.*+!_-]+\s*,?\s*)*)(?:;[^`$|&<>]*)?$/;

export function normalizePipName(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, '-');
}

export function parsePipSpec(raw: string, editable = false): PackageSpec {
  const t = raw.trim();
  if (/^(git\+|hg\+|svn\+|bzr\+)/.test(t)) return { raw, kind: 'git' };
  if (/^https?:\/\//.test(t) || /^file:/.test(t)) return { raw, kind: 'url' };
  if (editable || t === '.' || /^(\.{1,2}\/|\/|~\/)/.test(t)) {
    if (/\.(whl|tar\.gz|tgz|zip|tar\.bz2)$/.test(t)) return { raw, kind: 'file', path: t };
    return { raw, kind: 'directory', path: t };
  }
  if (/\.(whl|tar\.gz|zip|tar\.bz2)$/.test(t) && !t.startsWith('-')) return { raw, kind: 'file', path: t };
  const m = REQUIREMENT.exec(t);
  if (!m) return { raw, kind: 'other' };
  const range = (m[3] ?? '').replace(/\s+/g, '').replace(/,$/, '');
  return { raw, kind: 'registry', name: m[1] as string, ...(range ? { range } : {}) };
}

/** Where pip's argv starts: `pip`, `pip3.11`, `python3 -m pip`, `/usr/bin/python3 -I -m pip`. */
function pipArgs(argv: readonly string[]): readonly string[] | null {
  const prog = programName(argv[0]);
  if (/^pip(\d+(\.\d+)?)?$/.test(prog)) return argv.slice(1);
  if (/^python(\d+(\.\d+)?)?$/.test(prog)) {
    for (let i = 1; i < argv.length; i++) {
      const a = argv[i] as string;
      if (a === '-m') return argv[i + 1] === 'pip' ? argv.slice(i + 2) : null;
      if (!/^-[IsSEBuqOv]+$/.test(a)) return null;
    }
  }
  return null;
}

export function parsePip(argv: readonly string[]): InstallIntent | null {
  const rest = pipArgs(argv);
  if (!rest) return null;
  const s = scanArgs(rest, { withValue: PIP_VALUE_OPTIONS });
  const [sub, ...words] = s.positionals;
  if (sub !== 'install' || has(s, '--dry-run')) return null;
  const specs = [
    ...words.map((w) => parsePipSpec(w)),
    ...allValues(s, '-e', '--editable').map((w) => parsePipSpec(w, true)),
  ];
  const notes: string[] = [];
  for (const p of specs) if (p.kind === 'other') notes.push(`${JSON.stringify(p.raw)} is not a requirement`);
  const index = [...allValues(s, '-i', '--index-url'), ...allValues(s, '--extra-index-url')];
  const requirementFiles = allValues(s, '-r', '--requirement');
  return {
    manager: 'pip',
    family: 'pip',
    action: specs.length === 0 && requirementFiles.length > 0 ? 'project' : 'install',
    subcommand: 'install',
    argv,
    specs,
    named: {},
    options: {
      prefix: lastValue(s, '-t', '--target', '--prefix', '--root'),
      indexUrls: has(s, '--no-index') ? false : index,
      findLinks: allValues(s, '-f', '--find-links'),
      requirementFiles,
      noBinary: allValues(s, '--no-binary').flatMap((v) => v.split(',')),
    },
    notes,
  };
}

export type PipKind = 'wheel' | 'build' | 'native-build';

export const PIP_COST = Object.freeze({
  wheel: { cpu: 500, memory: 256 * MiB, cpuMs: 1500 },
  build: { cpu: 1000, memory: 512 * MiB, cpuMs: 6000 },
  'native-build': { cpu: 2000, memory: 1536 * MiB, cpuMs: 90_000 },
  /** pip byte-compiles what it installs: installed bytes ≈ unpacked × this. */
  installedFactor: 1.4,
  cpuMsPerMiB: 150,
  downloadRate: 10 * MiB,
  networkWindowS: 20,
  maxNetwork: 20 * MiB,
});

interface Sized {
  readonly label: string;
  readonly name?: string;
  readonly version?: string;
  readonly kind: PipKind;
  readonly download: number;
  readonly unpacked: number;
  readonly estimated: boolean;
  readonly detail: string;
}

function sizeLocal(spec: PackageSpec, cwd: string): Sized | string {
  const path = isAbsolute(spec.path as string) ? (spec.path as string) : resolve(cwd, spec.path as string);
  try {
    if (spec.kind === 'directory') return sizeDirectory(path, spec.raw);
    if (path.endsWith('.whl')) {
      const z = listZip(path);
      const [name, version] = basename(path).split('-');
      const ext = z.entries.filter((e) => /\.(so|pyd)$/.test(e.name)).length;
      return {
        label: spec.raw,
        ...(name ? { name } : {}),
        ...(version ? { version } : {}),
        kind: 'wheel',
        download: 0,
        unpacked: z.unpacked,
        estimated: false,
        detail: `local wheel, ${z.entries.length} files${ext ? `, ${ext} compiled extension(s)` : ''}`,
      };
    }
    const listing: ArchiveListing = path.endsWith('.zip') ? listZip(path) : listTarGz(path);
    const native = nativeSources(listing.entries);
    const m = /^(.+)-([^-]+)\.(tar\.gz|zip|tgz|tar\.bz2)$/.exec(basename(path));
    return {
      label: spec.raw,
      ...(m ? { name: m[1] as string, version: m[2] as string } : {}),
      kind: native.length ? 'native-build' : 'build',
      download: 0,
      unpacked: listing.unpacked,
      estimated: false,
      detail: `local sdist, ${listing.entries.length} files${native.length ? `, ${native.length} native sources (${native.slice(0, 3).join(', ')})` : ', pure Python'}`,
    };
  } catch (e) {
    return `${spec.raw}: ${e instanceof Error ? e.message : String(e)}`;
  }
}

function basename(p: string): string {
  return p.slice(p.lastIndexOf('/') + 1);
}

function sizeDirectory(dir: string, label: string): Sized | string {
  if (!statSync(dir).isDirectory()) return `${label}: not a directory`;
  if (!['setup.py', 'pyproject.toml', 'setup.cfg'].some((f) => existsSync(join(dir, f))))
    return `${label}: no setup.py or pyproject.toml`;
  let bytes = 0;
  let files = 0;
  const native: string[] = [];
  const stack = [dir];
  while (stack.length && files < 5000) {
    const d = stack.pop() as string;
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.name.startsWith('.') || e.name === 'node_modules' || e.name === '__pycache__') continue;
      const p = join(d, e.name);
      if (e.isDirectory()) stack.push(p);
      else if (e.isFile()) {
        files++;
        bytes += statSync(p).size;
        if (nativeSources([{ name: e.name, size: 0 }]).length) native.push(e.name);
      }
    }
  }
  return {
    label,
    kind: native.length ? 'native-build' : 'build',
    download: 0,
    unpacked: bytes,
    estimated: false,
    detail: `source directory, ${files} files${native.length ? `, ${native.length} native sources` : ''}`,
  };
}

/** Wheel filename tags → can this interpreter install it? */
export function wheelCompatible(
  filename: string,
  py: { major: number; minor: number; arch: string },
): boolean {
  const m = /^(.+?)-([^-]+)(?:-(\d[^-]*))?-([^-]+)-([^-]+)-([^-]+)\.whl$/.exec(filename);
  if (!m) return false;
  const pyTags = (m[4] as string).split('.');
  const abis = (m[5] as string).split('.');
  const plats = (m[6] as string).split('.');
  const cp = `cp${py.major}${py.minor}`;
  const pyOk = pyTags.some(
    (t) =>
      t === `py${py.major}` ||
      t === `py${py.major}${py.minor}` ||
      t === cp ||
      (/^cp3\d+$/.test(t) && abis.includes('abi3') && Number(t.slice(3)) <= py.minor),
  );
  const abiOk = abis.some((a) => a === 'none' || a === 'abi3' || a === cp);
  const platOk = plats.some(
    (p) => p === 'any' || p === `linux_${py.arch}` || (/^manylinux/.test(p) && p.endsWith(`_${py.arch}`)),
  );
  return pyOk && abiOk && platOk;
}

interface IndexFile {
  readonly filename: string;
  readonly packagetype?: string;
  readonly size?: number;
  readonly url?: string;
}

/** The index's JSON for one project: PyPI's JSON API, else PEP 691 simple JSON. */
async function indexFiles(
  indexUrl: string,
  name: string,
  pinned: string | undefined,
  ctx: MetadataContext,
  signal: AbortSignal,
): Promise<{ version?: string; files: IndexFile[]; api: string }> {
  const base = indexUrl.replace(/\/+$/, '');
  const root = base.replace(/\/simple$/, '');
  const norm = normalizePipName(name);
  const jsonUrl = pinned
    ? `${root}/pypi/${norm}/${encodeURIComponent(pinned)}/json`
    : `${root}/pypi/${norm}/json`;
  try {
    const res = await ctx.fetch(jsonUrl, { signal, headers: { accept: 'application/json' } });
    if (res.ok) {
      const doc = (await res.json()) as { info?: { version?: string }; urls?: IndexFile[] };
      if (Array.isArray(doc.urls))
        return {
          ...(doc.info?.version ? { version: doc.info.version } : {}),
          files: doc.urls,
          api: 'JSON API',
        };
    } else await res.body?.cancel().catch(() => undefined);
  } catch (e) {
    if (signal.aborted) throw e;
  }
  const res = await ctx.fetch(`${base}/${norm}/`, {
    signal,
    headers: { accept: 'application/vnd.pypi.simple.v1+json' },
  });
  if (!res.ok) {
    await res.body?.cancel().catch(() => undefined);
    throw new Error(`${base}/${norm}/: HTTP ${res.status}`);
  }
  const doc = (await res.json()) as {
    files?: { filename: string; size?: number; url?: string }[];
    versions?: string[];
  };
  const files = (doc.files ?? []).map((f) => ({
    ...f,
    packagetype: f.filename.endsWith('.whl') ? 'bdist_wheel' : 'sdist',
  }));
  const versionOf = (f: IndexFile): string | undefined => {
    const m = /^[^-]+-([^-]+?)(?:-|\.tar\.gz$|\.zip$)/.exec(f.filename);
    return m?.[1];
  };
  const version =
    pinned ??
    doc.versions?.[doc.versions.length - 1] ??
    versionOf(files[files.length - 1] ?? { filename: '' });
  return {
    ...(version ? { version } : {}),
    files: files.filter((f) => versionOf(f) === version),
    api: 'simple JSON',
  };
}

async function sizeFromIndex(
  spec: PackageSpec,
  indexes: readonly string[],
  py: { major: number; minor: number; arch: string },
  noBinary: readonly string[],
  ctx: MetadataContext,
  signal: AbortSignal,
): Promise<Sized | string> {
  const name = spec.name as string;
  const pinned = /^===?([A-Za-z0-9.+!_-]+)$/.exec(spec.range ?? '')?.[1];
  let lastError = 'no index';
  for (const index of indexes) {
    try {
      const { version, files, api } = await indexFiles(index, name, pinned, ctx, signal);
      const source =
        noBinary.includes(':all:') || noBinary.map(normalizePipName).includes(normalizePipName(name));
      const wheel = source
        ? undefined
        : files.find((f) => f.filename.endsWith('.whl') && wheelCompatible(f.filename, py));
      const sdist = files.find((f) => f.packagetype === 'sdist' || /\.(tar\.gz|zip)$/.test(f.filename));
      const file = wheel ?? sdist;
      if (!file) return `${name}: no installable file for this interpreter in ${index}`;
      const size = file.size ?? 0;
      const kind: PipKind = wheel
        ? 'wheel'
        : /numpy|scipy|cython|pybind11|setuptools-rust|maturin/i.test(name)
          ? 'native-build'
          : 'build';
      return {
        label: spec.raw,
        name,
        ...(version ? { version } : {}),
        kind,
        download: size,
        unpacked: size * (wheel ? 2.5 : 3),
        estimated: true,
        detail: `${index} (${api}): ${file.filename}${file.size === undefined ? ' (size unknown)' : ''}${kind !== 'wheel' ? ', no compatible wheel: built from source' : ''}`,
      };
    } catch (e) {
      lastError = `${index}: ${e instanceof Error ? e.message : String(e)}`;
      if (signal.aborted) break;
    }
  }
  return `${name}: ${lastError}`;
}

/** Local find-links directories: the first file named for the project. */
function sizeFromFindLinks(spec: PackageSpec, dirs: readonly string[], cwd: string): Sized | undefined {
  const norm = normalizePipName(spec.name as string).replace(/-/g, '_');
  for (const d of dirs) {
    const dir = isAbsolute(d) ? d : resolve(cwd, d);
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    const hit = names
      .filter(
        (f) => normalizePipName(f).replace(/-/g, '_').startsWith(`${norm}_`) || f.startsWith(`${spec.name}-`),
      )
      .sort((a, b) => (a.endsWith('.whl') ? -1 : 0) - (b.endsWith('.whl') ? -1 : 0))[0];
    if (!hit) continue;
    const sized = sizeLocal({ raw: spec.raw, kind: 'file', path: join(dir, hit) }, cwd);
    if (typeof sized !== 'string')
      return { ...sized, label: spec.raw, detail: `find-links ${d}: ${sized.detail}` };
  }
  return undefined;
}

function requirementLines(files: readonly string[], cwd: string, notes: string[]): PackageSpec[] {
  const out: PackageSpec[] = [];
  for (const f of files) {
    try {
      const text = readFileSync(isAbsolute(f) ? f : resolve(cwd, f), 'utf8');
      for (const line of text.split('\n')) {
        const l = line.replace(/(^|\s)#.*$/, '').trim();
        if (!l || l.startsWith('-')) continue;
        out.push(parsePipSpec(l));
      }
    } catch (e) {
      notes.push(`${f}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  return out;
}

async function interpreter(
  intent: InstallIntent,
  ctx: MetadataContext,
): Promise<{ major: number; minor: number; arch: string }> {
  const prog = programName(intent.argv[0]);
  const python = /^python/.test(prog) ? (intent.argv[0] as string) : 'python3';
  const fallback = { major: 3, minor: 11, arch: process.arch === 'arm64' ? 'aarch64' : 'x86_64' };
  try {
    const r = await ctx.exec(
      [python, '-c', 'import sys,platform;print(sys.version_info[0],sys.version_info[1],platform.machine())'],
      {
        timeoutMs: Math.min(3000, ctx.localTimeoutMs),
      },
    );
    const [major, minor, arch] = r.stdout.trim().split(/\s+/);
    if (r.code === 0 && major && minor && arch) return { major: Number(major), minor: Number(minor), arch };
  } catch {
    // the fallback below
  }
  return fallback;
}

export async function pipMetadata(intent: InstallIntent, ctx: MetadataContext): Promise<MetadataResult> {
  const notes = [...intent.notes];
  const specs = [...intent.specs, ...requirementLines(intent.options.requirementFiles ?? [], ctx.cwd, notes)];
  const sized: Sized[] = [];
  const signal = AbortSignal.timeout(ctx.timeoutMs);
  const indexes =
    intent.options.indexUrls === false
      ? []
      : intent.options.indexUrls?.length
        ? intent.options.indexUrls
        : [ctx.pipIndexUrl];
  const needsIndex = specs.some((s) => s.kind === 'registry');
  const py = needsIndex ? await interpreter(intent, ctx) : { major: 3, minor: 11, arch: 'x86_64' };
  const results = await Promise.all(
    specs.map(async (s): Promise<Sized | string> => {
      if (s.kind === 'file' || s.kind === 'directory') return sizeLocal(s, ctx.cwd);
      if (s.kind !== 'registry') return `${s.raw}: ${s.kind} requirement not sized`;
      const local = sizeFromFindLinks(s, intent.options.findLinks ?? [], ctx.cwd);
      if (local) return local;
      if (indexes.length === 0) return `${s.raw}: --no-index and no matching file in --find-links`;
      return sizeFromIndex(s, indexes, py, intent.options.noBinary ?? [], ctx, signal);
    }),
  );
  for (const r of results) (typeof r === 'string' ? notes : sized).push(r as never);
  const packages: PackageRef[] = specs
    .map((s, i) => {
      const r = results[i];
      const name = typeof r === 'object' && r.name ? r.name : s.name;
      if (!name) return undefined;
      const version = typeof r === 'object' && r.version ? r.version : undefined;
      return { manager: 'pip', name: normalizePipName(name), ...(version ? { version } : {}) };
    })
    .filter((p): p is { manager: string; name: string; version?: string } => p !== undefined);
  if (sized.length === 0) return { parts: [], packages, notes };
  let cpu = 0;
  let memory = 0;
  let cpuMs = 0;
  let download = 0;
  let unpacked = 0;
  for (const s of sized) {
    const c = PIP_COST[s.kind];
    cpu = Math.max(cpu, c.cpu);
    memory = Math.max(memory, c.memory);
    cpuMs += c.cpuMs + (s.unpacked / MiB) * PIP_COST.cpuMsPerMiB;
    download += s.download;
    unpacked += s.unpacked;
  }
  const builds = sized.filter((s) => s.kind !== 'wheel');
  const disk = Math.ceil(
    unpacked * PIP_COST.installedFactor + download + builds.reduce((a, s) => a + s.unpacked, 0),
  );
  const network =
    download > 0
      ? Math.min(PIP_COST.maxNetwork, Math.max(MiB, Math.ceil(download / PIP_COST.networkWindowS)))
      : 0;
  const missing = specs.length - sized.length;
  const note = [
    ...sized.map((s) => `${s.label}: ${s.kind}, ${s.detail}`),
    ...(missing ? [`${missing} of ${specs.length} requirements not sized`] : []),
    'dependencies are not resolved',
  ].join('; ');
  return {
    parts: [
      {
        requests: { cpu, memory: memory + Math.min(GiB, unpacked), disk, ...(network ? { network } : {}) },
        estimates: {
          cpuMs: Math.round(cpuMs),
          wallMs: Math.round(cpuMs * 1.1 + (download / PIP_COST.downloadRate) * 1000),
          downloadBytes: download,
        },
        source: {
          provenance: 'metadata',
          confidence: missing ? 0.2 : sized.some((s) => s.estimated) ? 0.3 : 0.4,
          note: `pip metadata: ${note}`,
        },
      },
    ],
    packages,
    notes,
  };
}

export const pipAdapter: InstallerAdapter = {
  manager: 'pip',
  family: 'pip',
  matches: (argv) => pipArgs(argv) !== null,
  parse: parsePip,
  metadata: pipMetadata,
};
