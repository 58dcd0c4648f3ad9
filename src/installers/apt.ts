/**
 * apt-get, apt and dpkg. Every change to the package database (install, upgrade, remove, purge,
 * update, dpkg -i ...) takes the named resource `dpkg-lock: 1`, so concurrent apt runs queue in rrm
 * instead of failing on the lock. What an install fetches and unpacks comes from the same solver
 * apt uses: `apt-get -s` (a simulation: no lock, no root needed), then `apt-cache show` for
 * Installed-Size and Size, and the archive cache for what needs no download.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { PackageRef } from '../model/reservation.js';
import type { ProfilePart } from '../profiles/profile.js';
import { parseProfileSpec } from '../profiles/profile-spec.js';
import { allValues, has, programName, scanArgs } from './argv.js';
import type {
  InstallAction,
  InstallerAdapter,
  InstallIntent,
  MetadataContext,
  MetadataResult,
  PackageSpec,
} from './types.js';

const KiB = 2 ** 10;
const MiB = 2 ** 20;
const GiB = 2 ** 30;

export const DPKG_LOCK = 'dpkg-lock';

/** Debian package names, optionally `:arch`, `=version` or `/release`. */
const PACKAGE = /^([a-z0-9][a-z0-9+.-]+)(?::([a-z0-9-]+))?(?:=([A-Za-z0-9.+~:-]+)|\/([A-Za-z0-9.+~-]+))?$/;

const APT_GET_COMMANDS: Readonly<Record<string, InstallAction>> = Object.freeze({
  install: 'install',
  reinstall: 'install',
  'build-dep': 'install',
  upgrade: 'upgrade',
  'dist-upgrade': 'upgrade',
  'full-upgrade': 'upgrade',
  remove: 'remove',
  purge: 'remove',
  autoremove: 'remove',
  autopurge: 'remove',
  update: 'refresh',
  satisfy: 'install',
});

const APT_VALUE_OPTIONS = new Set([
  '-t',
  '--target-release',
  '--default-release',
  '-o',
  '--option',
  '-c',
  '--config-file',
  '-a',
  '--host-architecture',
  '-P',
  '--build-profiles',
]);

/** Options that change what a simulation resolves; everything else stays out of the simulation. */
const SIMULATION_FLAGS = new Set([
  '--no-install-recommends',
  '--install-recommends',
  '--no-install-suggests',
  '--install-suggests',
  '--only-upgrade',
  '--reinstall',
  '--fix-broken',
  '-f',
  '--with-new-pkgs',
  '--purge',
  '--auto-remove',
  '--autoremove',
  '--allow-downgrades',
  '--no-upgrade',
]);

function isSimulation(s: ReturnType<typeof scanArgs>): boolean {
  return (
    has(s, '-s', '--simulate', '--just-print', '--dry-run', '--recon', '--no-act', '--print-uris') ||
    has(s, '-d', '--download-only')
  );
}

export function parseAptPackage(raw: string): PackageSpec {
  if (/\.deb$/.test(raw) && (raw.startsWith('/') || raw.startsWith('./') || raw.startsWith('../')))
    return { raw, kind: 'file', path: raw };
  const m = PACKAGE.exec(raw);
  if (!m) return { raw, kind: 'other' };
  return {
    raw,
    kind: 'registry',
    name: m[1] as string,
    ...(m[3] ? { range: m[3] } : m[4] ? { range: `/${m[4]}` } : {}),
  };
}

export function parseAptGet(argv: readonly string[]): InstallIntent | null {
  const manager = programName(argv[0]);
  if (manager !== 'apt-get' && manager !== 'apt') return null;
  const s = scanArgs(argv.slice(1), { withValue: APT_VALUE_OPTIONS });
  const [sub, ...words] = s.positionals;
  const action = sub !== undefined ? APT_GET_COMMANDS[sub] : undefined;
  if (!action || isSimulation(s)) return null;
  const notes: string[] = [];
  const specs = (action === 'refresh' || sub === 'satisfy' ? [] : words).map(parseAptPackage);
  for (const p of specs) if (p.kind === 'other') notes.push(`${JSON.stringify(p.raw)} is not a package name`);
  const simulation: string[] = [];
  for (const [name, values] of s.options) {
    if (SIMULATION_FLAGS.has(name)) simulation.push(name);
    if (name === '-t' || name === '--target-release' || name === '--default-release') {
      const rel = values.find((v): v is string => typeof v === 'string');
      if (rel && /^[A-Za-z0-9.+~-]+$/.test(rel)) simulation.push('-t', rel);
    }
  }
  if (allValues(s, '-o', '--option').length) notes.push('-o options are not used when sizing');
  return {
    manager,
    family: 'apt',
    action,
    subcommand: sub,
    argv,
    specs,
    named: { [DPKG_LOCK]: 1 },
    options: { aptSimulationArgs: simulation },
    notes,
  };
}

const DPKG_CHANGES = new Map<string, InstallAction>([
  ['-i', 'install'],
  ['--install', 'install'],
  ['--unpack', 'install'],
  ['--configure', 'install'],
  ['--triggers-only', 'install'],
  ['-r', 'remove'],
  ['--remove', 'remove'],
  ['-P', 'remove'],
  ['--purge', 'remove'],
  ['--set-selections', 'install'],
  ['--clear-selections', 'install'],
]);

/** dpkg -i/-r/-P/--configure: takes the dpkg lock; the .deb files are sized locally. */
export function parseDpkg(argv: readonly string[]): InstallIntent | null {
  if (programName(argv[0]) !== 'dpkg') return null;
  const s = scanArgs(argv.slice(1), { withValue: new Set(['--root', '--admindir', '--instdir', '--force']) });
  let action: InstallAction | undefined;
  for (const name of s.options.keys()) action ??= DPKG_CHANGES.get(name);
  if (!action || has(s, '--dry-run', '--no-act', '--simulate')) return null;
  const specs: PackageSpec[] = s.positionals.map((raw) =>
    action === 'install' && raw.endsWith('.deb') ? { raw, kind: 'file', path: raw } : parseAptPackage(raw),
  );
  return {
    manager: 'dpkg',
    family: 'apt',
    action,
    argv,
    specs,
    named: { [DPKG_LOCK]: 1 },
    options: {},
    notes: [],
  };
}

export interface AptChange {
  readonly op: 'Inst' | 'Remv' | 'Purg';
  readonly name: string;
  readonly version?: string;
  readonly arch?: string;
}

/** `Inst libjq1 (1.6-2.1 Debian:12.x/stable [amd64])`, `Inst x [old] (new ...)`, `Remv x [1.0]`. */
export function parseSimulation(stdout: string): AptChange[] {
  const out: AptChange[] = [];
  for (const line of stdout.split('\n')) {
    const inst = /^Inst (\S+)(?: \[[^\]]*\])? \((\S+) .*?\[([^\]]+)\]\)/.exec(line);
    if (inst) {
      out.push({
        op: 'Inst',
        name: (inst[1] as string).replace(/:.*$/, ''),
        version: inst[2],
        arch: inst[3],
      });
      continue;
    }
    const rm = /^(Remv|Purg) (\S+)/.exec(line);
    if (rm) out.push({ op: rm[1] as 'Remv' | 'Purg', name: (rm[2] as string).replace(/:.*$/, '') });
  }
  return out;
}

export interface AptPackageInfo {
  readonly name: string;
  readonly version: string;
  readonly arch?: string;
  /** Bytes (Installed-Size is in KiB). */
  readonly installedSize?: number;
  /** Bytes of the .deb. */
  readonly size?: number;
  readonly depends: readonly string[];
  readonly filename?: string;
  /** X-Rrm-* / Rrm-* fields of the control data: a manifest. */
  readonly rrm?: Record<string, string>;
}

/** Paragraphs of `apt-cache show` → the fields rrm uses. */
export function parseAptCacheShow(stdout: string): AptPackageInfo[] {
  const out: AptPackageInfo[] = [];
  for (const para of stdout.split(/\n\s*\n/)) {
    const fields: Record<string, string> = {};
    let last: string | undefined;
    for (const line of para.split('\n')) {
      if (/^\s/.test(line) && last) {
        fields[last] += `\n${line.trim()}`;
        continue;
      }
      const m = /^([A-Za-z0-9-]+):\s?(.*)$/.exec(line);
      if (m) {
        last = m[1] as string;
        fields[last] = m[2] as string;
      }
    }
    if (!fields.Package || !fields.Version) continue;
    const rrm: Record<string, string> = {};
    for (const [k, v] of Object.entries(fields)) {
      const m = /^(?:X[BCS]*-)?Rrm-(.+)$/i.exec(k);
      if (m) rrm[(m[1] as string).toLowerCase()] = v;
    }
    out.push({
      name: fields.Package,
      version: fields.Version,
      ...(fields.Architecture ? { arch: fields.Architecture } : {}),
      ...(fields['Installed-Size'] ? { installedSize: Number(fields['Installed-Size']) * KiB } : {}),
      ...(fields.Size ? { size: Number(fields.Size) } : {}),
      depends: [fields.Depends, fields['Pre-Depends']]
        .filter(Boolean)
        .join(', ')
        .split(/,\s*/)
        .map((d) => d.trim().split(/[\s(|]/)[0] as string)
        .filter(Boolean),
      ...(fields.Filename ? { filename: fields.Filename } : {}),
      ...(Object.keys(rrm).length ? { rrm } : {}),
    });
  }
  return out;
}

/** What a package's maintainer scripts cost beyond unpacking: DKMS builds a kernel module, kernels rebuild an initramfs. */
export function maintainerWeight(
  info: Pick<AptPackageInfo, 'name' | 'depends'>,
): 'dkms' | 'kernel' | 'plain' {
  if (info.name.endsWith('-dkms') || info.name === 'dkms' || info.depends.includes('dkms')) return 'dkms';
  if (
    /^(linux-image-|initramfs-tools$|linux-headers-)/.test(info.name) ||
    info.depends.includes('initramfs-tools')
  )
    return 'kernel';
  return 'plain';
}

export const APT_COST = Object.freeze({
  plain: { cpu: 750, memory: 96 * MiB, cpuMs: 1500 },
  kernel: { cpu: 1000, memory: 1 * GiB, cpuMs: 60_000 },
  dkms: { cpu: 2000, memory: 2 * GiB, cpuMs: 300_000 },
  /** apt's memory grows with the packages it handles and the files it writes (page cache, charged to the cgroup). */
  memoryPerPackage: 2 * MiB,
  memoryPerInstalledByte: 1,
  memoryMargin: 1.1,
  /** dpkg's work per installed MiB (unpack, triggers). */
  cpuMsPerMiB: 25,
  cpuMsPerPackage: 400,
  downloadRate: 10 * MiB,
  networkWindowS: 20,
  maxNetwork: 20 * MiB,
  /** apt-get update: the indexes of a typical Debian sources.list. */
  refresh: { download: 40 * MiB, cpuMs: 8000 },
});

function archiveName(name: string, version: string, arch: string | undefined): string {
  return `${name}_${version.replace(/:/g, '%3a')}_${arch ?? 'all'}.deb`;
}

export async function aptMetadata(intent: InstallIntent, ctx: MetadataContext): Promise<MetadataResult> {
  const notes = [...intent.notes];
  const named = intent.specs.filter((s) => s.kind === 'registry' && s.name);
  if (intent.action === 'refresh') {
    return {
      parts: [
        {
          requests: {
            cpu: 500,
            memory: 256 * MiB,
            network: Math.min(APT_COST.maxNetwork, APT_COST.refresh.download / APT_COST.networkWindowS),
          },
          estimates: { cpuMs: APT_COST.refresh.cpuMs, downloadBytes: APT_COST.refresh.download },
          source: { provenance: 'metadata', confidence: 0.2, note: 'apt-get update: typical index download' },
        },
      ],
      packages: [],
      notes,
    };
  }
  if (intent.manager === 'dpkg') return { parts: [], packages: refs(intent, []), notes };
  const sub = intent.subcommand ?? 'install';
  // Only names that passed the package-name grammar (and .deb paths that exist) reach the simulation.
  const words = intent.specs
    .filter((s) => (s.kind === 'registry' && s.name) || (s.kind === 'file' && s.path && existsSync(s.path)))
    .map((s) => s.raw);
  if (intent.action !== 'upgrade' && words.length === 0)
    return { parts: [], packages: [], notes: [...notes, 'no package names to size'] };
  const env = { LC_ALL: 'C', LANG: 'C', DEBIAN_FRONTEND: 'noninteractive' };
  const sim = await ctx.exec(
    ['apt-get', '-s', '-q', sub, ...(intent.options.aptSimulationArgs ?? []), ...words],
    {
      timeoutMs: ctx.localTimeoutMs,
      env,
    },
  );
  if (sim.code !== 0) {
    const why = sim.stderr.split('\n').find((l) => /^E:/.test(l)) ?? `exit ${sim.code}`;
    return { parts: [], packages: refs(intent, []), notes: [...notes, `apt-get -s ${sub}: ${why}`] };
  }
  const changes = parseSimulation(sim.stdout);
  const installs = changes.filter((c) => c.op === 'Inst' && c.version);
  let infos: AptPackageInfo[] = [];
  if (installs.length > 0) {
    const show = await ctx.exec(
      ['apt-cache', 'show', '--no-all-versions', ...installs.map((c) => `${c.name}=${c.version}`)],
      { timeoutMs: ctx.localTimeoutMs, env },
    );
    infos = parseAptCacheShow(show.stdout);
  }
  const infoOf = (c: AptChange): AptPackageInfo | undefined =>
    infos.find((i) => i.name === c.name && i.version === c.version);
  let installed = 0;
  let download = 0;
  let cachedDebs = 0;
  let unknown = 0;
  let weight: 'dkms' | 'kernel' | 'plain' = 'plain';
  const heavy: string[] = [];
  const manifests: ProfilePart[] = [];
  for (const c of installs) {
    const info = infoOf(c);
    if (!info) {
      unknown++;
      continue;
    }
    installed += info.installedSize ?? 0;
    const deb = archiveName(c.name, c.version as string, c.arch ?? info.arch);
    const base = info.filename ? info.filename.slice(info.filename.lastIndexOf('/') + 1) : undefined;
    if (existsSync(join(ctx.aptArchivesDir, deb)) || (base && existsSync(join(ctx.aptArchivesDir, base))))
      cachedDebs++;
    else download += info.size ?? 0;
    const w = maintainerWeight(info);
    if (w !== 'plain') heavy.push(`${c.name} (${w})`);
    if (w === 'dkms' || (w === 'kernel' && weight === 'plain')) weight = w;
    if (info.rrm && named.some((n) => n.name === info.name)) {
      try {
        const spec = parseProfileSpec(
          {
            requests: Object.fromEntries(
              Object.entries(info.rrm).flatMap(([k, v]) =>
                k.startsWith('request-') ? [[k.slice(8), v]] : [],
              ),
            ),
            limits: Object.fromEntries(
              Object.entries(info.rrm).flatMap(([k, v]) => (k.startsWith('limit-') ? [[k.slice(6), v]] : [])),
            ),
          },
          `${info.name} control data`,
        );
        manifests.push({
          requests: spec.requests,
          limits: spec.limits,
          source: {
            provenance: 'manifest',
            confidence: 0.6,
            note: `Rrm-* fields of ${info.name}'s control data`,
          },
        });
      } catch {
        notes.push(`${info.name}: bad Rrm-* control fields ignored`);
      }
    }
  }
  const removes = changes.filter((c) => c.op !== 'Inst').length;
  const base = APT_COST[weight];
  const cpuMs =
    base.cpuMs +
    installs.length * APT_COST.cpuMsPerPackage +
    (installed / MiB) * APT_COST.cpuMsPerMiB +
    removes * 200;
  const network =
    download > 0
      ? Math.min(APT_COST.maxNetwork, Math.max(MiB, Math.ceil(download / APT_COST.networkWindowS)))
      : 0;
  const bits = [
    `apt-get -s ${sub}: ${installs.length} to install, ${removes} to remove`,
    `${(installed / MiB).toFixed(1)}Mi installed size`,
    `${(download / MiB).toFixed(1)}Mi to download (${cachedDebs} .deb cached)`,
  ];
  if (heavy.length) bits.push(`maintainer scripts: ${heavy.join(', ')}`);
  if (unknown) bits.push(`${unknown} without apt-cache data`);
  return {
    parts: [
      ...manifests,
      {
        requests: {
          cpu: base.cpu,
          memory: Math.max(
            base.memory,
            Math.ceil(
              (APT_COST.plain.memory +
                installs.length * APT_COST.memoryPerPackage +
                installed * APT_COST.memoryPerInstalledByte) *
                APT_COST.memoryMargin,
            ),
          ),
          disk: Math.ceil(installed + download),
          ...(network ? { network } : {}),
        },
        estimates: {
          cpuMs: Math.round(cpuMs),
          wallMs: Math.round(cpuMs * 1.3 + (download / APT_COST.downloadRate) * 1000),
          downloadBytes: download,
        },
        source: { provenance: 'metadata', confidence: unknown ? 0.3 : 0.5, note: bits.join('; ') },
      },
    ],
    packages: refs(intent, installs),
    notes,
  };
}

/** The named packages, with the versions the simulation chose. */
function refs(intent: InstallIntent, installs: readonly AptChange[]): PackageRef[] {
  return intent.specs
    .filter((s) => s.kind === 'registry' && s.name)
    .map((s) => {
      const v =
        installs.find((c) => c.name === s.name)?.version ??
        (s.range && !s.range.startsWith('/') ? s.range : undefined);
      return { manager: 'apt', name: s.name as string, ...(v ? { version: v } : {}) };
    });
}

export const aptAdapter: InstallerAdapter = {
  manager: 'apt',
  family: 'apt',
  matches: (argv) => ['apt-get', 'apt', 'dpkg'].includes(programName(argv[0])),
  parse: (argv) => parseAptGet(argv) ?? parseDpkg(argv),
  metadata: aptMetadata,
};
