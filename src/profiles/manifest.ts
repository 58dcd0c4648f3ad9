/**
 * Manifests: profiles someone wrote down. In order:
 *   1. the `rrm` block of the project's package.json,
 *   2. `rrm-profiles.json` in the project directory (and the cwd, when it differs),
 *   3. `*.json` in each profile directory (`/etc/rrm/profiles.d` by default), in name order.
 * A profile file is `{ "profiles": [ { "match": "npm:sharp@>=0.30", "requests": {...}, ... } ] }`
 * or a map `{ "npm:sharp": {...}, "apt:*-dkms": {...} }`. The package.json block is a profile that
 * applies to the project's own installs (`npm ci`), plus `"packages": { "<match>": {...} }`.
 * A match is `manager:name[@range]`: the manager is a family (npm covers pnpm and yarn, apt covers
 * apt-get and dpkg), `*` globs the name, the range is a semver range, an exact version or a prefix.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { PackageRef } from '../model/reservation.js';
import type { InstallIntent } from '../installers/types.js';
import { parseRange, parseVersion, satisfies } from '../installers/semver.js';
import { aggregateSpecs, parseProfileSpec, type ProfileSpec } from './profile-spec.js';
import type { ProfilePart } from './profile.js';

const FAMILY: Readonly<Record<string, string>> = Object.freeze({
  npm: 'npm',
  pnpm: 'npm',
  yarn: 'npm',
  apt: 'apt',
  'apt-get': 'apt',
  dpkg: 'apt',
  pip: 'pip',
  pip3: 'pip',
});

export interface ManifestOptions {
  readonly projectDir: string;
  readonly cwd: string;
  /** Directories of `*.json` profile files. */
  readonly profileDirs: readonly string[];
}

interface Rule {
  readonly match: string;
  readonly spec: ProfileSpec;
}

export function matchPackage(pattern: string, p: PackageRef): boolean {
  const m = /^([a-z0-9-]+):((?:@[^@/]+\/)?[^@]+)(?:@(.+))?$/.exec(pattern.trim());
  if (!m) return false;
  const [, manager, name, range] = m;
  if ((FAMILY[manager as string] ?? manager) !== (FAMILY[p.manager] ?? p.manager)) return false;
  const norm = (s: string): string =>
    FAMILY[p.manager] === 'pip' ? s.toLowerCase().replace(/[-_.]+/g, '-') : s;
  const glob = new RegExp(
    `^${norm(name as string)
      .split('*')
      .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')}$`,
  );
  if (!glob.test(norm(p.name))) return false;
  if (range === undefined || range === '*') return true;
  if (!p.version) return false;
  if (parseVersion(p.version) && parseRange(range)) return satisfies(p.version, range);
  return p.version === range || p.version.startsWith(range);
}

function readJson(path: string): unknown {
  return JSON.parse(readFileSync(path, 'utf8'));
}

/** The rules of one profile file; bad entries are reported in notes, the rest still apply. */
export function rulesOf(doc: unknown, file: string, notes: string[]): Rule[] {
  const out: Rule[] = [];
  if (typeof doc !== 'object' || doc === null) {
    notes.push(`${file}: not a JSON object`);
    return out;
  }
  const entries: [string, unknown][] = Array.isArray((doc as { profiles?: unknown }).profiles)
    ? ((doc as { profiles: unknown[] }).profiles.map((p) => [
        String((p as { match?: unknown })?.match ?? ''),
        p,
      ]) as [string, unknown][])
    : Object.entries(doc);
  for (const [match, body] of entries) {
    if (!match.includes(':')) {
      notes.push(`${file}: entry ${JSON.stringify(match)} has no manager:name match`);
      continue;
    }
    try {
      out.push({ match, spec: parseProfileSpec(body, `${file} ${match}`) });
    } catch (e) {
      notes.push(e instanceof Error ? e.message : String(e));
    }
  }
  return out;
}

function partOf(
  rules: readonly Rule[],
  packages: readonly PackageRef[],
  where: string,
): ProfilePart | undefined {
  if (packages.length === 0) return undefined;
  const matched: { p: PackageRef; rule: Rule }[] = [];
  for (const p of packages) {
    const rule = rules.find((r) => matchPackage(r.match, p));
    if (rule) matched.push({ p, rule });
  }
  if (matched.length === 0) return undefined;
  const agg = aggregateSpecs(matched.map((m) => m.rule.spec));
  const coverage = matched.length / packages.length;
  const notes = matched.map(
    (m) => `${m.p.name} by ${m.rule.match}${m.rule.spec.note ? ` (${m.rule.spec.note})` : ''}`,
  );
  return {
    requests: agg.requests,
    limits: agg.limits,
    estimates: agg.estimates,
    source: {
      provenance: 'manifest',
      confidence: Number(((agg.confidence ?? 0.7) * (coverage === 1 ? 1 : 0.6)).toFixed(2)),
      note: `${where}: ${notes.join(', ')}${coverage < 1 ? `; ${packages.length - matched.length} of ${packages.length} packages not covered` : ''}`,
    },
  };
}

export function manifestParts(
  intent: InstallIntent,
  packages: readonly PackageRef[],
  opts: ManifestOptions,
): { parts: ProfilePart[]; notes: string[] } {
  const parts: ProfilePart[] = [];
  const notes: string[] = [];
  // 1. The project's package.json rrm block.
  let pkg: { rrm?: unknown } | undefined;
  try {
    pkg = readJson(join(opts.projectDir, 'package.json')) as { rrm?: unknown };
  } catch {
    pkg = undefined;
  }
  if (pkg && typeof pkg.rrm === 'object' && pkg.rrm !== null) {
    const block = pkg.rrm as { packages?: unknown };
    const where = `${join(opts.projectDir, 'package.json')} rrm`;
    if (intent.action === 'project' && intent.family === 'npm') {
      try {
        const spec = parseProfileSpec(block, where);
        if (Object.keys(spec.requests).length || Object.keys(spec.estimates).length)
          parts.push({
            requests: spec.requests,
            limits: spec.limits,
            estimates: spec.estimates,
            source: {
              provenance: 'manifest',
              confidence: spec.confidence ?? 0.7,
              note: `${where}: the project's install`,
            },
          });
      } catch (e) {
        notes.push(e instanceof Error ? e.message : String(e));
      }
    }
    if (block.packages !== undefined) {
      const part = partOf(rulesOf(block.packages, `${where}.packages`, notes), packages, `${where}.packages`);
      if (part) parts.push(part);
    }
  }
  // 2. rrm-profiles.json beside the project (and in the cwd). 3. The profile directories.
  const files = [
    ...new Set([join(opts.projectDir, 'rrm-profiles.json'), resolve(opts.cwd, 'rrm-profiles.json')]),
  ];
  for (const dir of opts.profileDirs) {
    try {
      for (const f of readdirSync(dir)
        .filter((n) => n.endsWith('.json'))
        .sort())
        files.push(join(dir, f));
    } catch {
      // a missing directory is no profile
    }
  }
  for (const file of files) {
    let doc: unknown;
    try {
      doc = readJson(file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
        notes.push(`${file}: ${e instanceof Error ? e.message : String(e)}`);
      continue;
    }
    const part = partOf(rulesOf(doc, file, notes), packages, file);
    if (part) parts.push(part);
  }
  return { parts, notes };
}
