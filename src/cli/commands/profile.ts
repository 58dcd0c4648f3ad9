/** `rrm profile`: what an install would reserve, dimension by dimension, where each number came from and how sure it is. */
import { formatDuration } from '../../model/duration.js';
import { formatDimension } from '../../model/quantity.js';
import { dimensionsOf } from '../../model/vector.js';
import { parseInstall } from '../../installers/index.js';
import { resolveContext, resolveInstallProfile, type InstallProfile } from '../../profiles/resolve.js';
import type { ResourceProfile, Source } from '../../profiles/profile.js';
import { flag, parseOptions, usageError } from '../args.js';
import { COMMON_OPTIONS, type Context } from '../context.js';
import { printJson, table } from '../output.js';

export const PROFILE_HELP = `Usage: rrm profile <manager>:<package>[@version] ... [options]
       rrm profile [options] -- <install command...>

Explains what an install would reserve: each dimension, its value, where it came from (flag,
installer, manifest, service, history, metadata, default) and how sure that source is (0..1).
Managers: npm, pnpm, yarn, apt (apt-get), pip. Packages of one manager are profiled as one install.

Examples:
  rrm profile npm:sharp npm:better-sqlite3@12
  rrm profile apt:jq pip:requests@2.31.0
  rrm profile -- npm ci --prefix ./app

Options:
  --cold             registry metadata, manifests and defaults only (no history, no service)
  --no-metadata      no registry or apt lookups
  --state-dir DIR    where history.db is read (default: $RRM_STATE_DIR; /var/lib/rrm as root,
                     else $XDG_STATE_HOME/rrm or ~/.local/state/rrm)
  --json             one JSON document
  -h, --help

Profile files: ./rrm-profiles.json, $RRM_PROFILE_DIRS (default /etc/rrm/profiles.d/*.json).
Profile service: $RRM_PROFILE_SERVICE.
`;

const OPTIONS = {
  ...COMMON_OPTIONS,
  cold: { type: 'boolean' },
  'no-metadata': { type: 'boolean' },
} as const;

const ARGV_OF: Readonly<Record<string, (specs: string[]) => string[]>> = Object.freeze({
  npm: (s) => ['npm', 'install', ...s],
  pnpm: (s) => ['pnpm', 'add', ...s],
  yarn: (s) => ['yarn', 'add', ...s],
  apt: (s) => ['apt-get', 'install', ...s],
  'apt-get': (s) => ['apt-get', 'install', ...s],
  pip: (s) => ['pip', 'install', ...s],
});

/** `npm:sharp@1` → the word the manager understands (`sharp@1`, `curl=7.88`, `requests==2.31`). */
function managerWord(manager: string, pkg: string, version: string | undefined): string {
  if (version === undefined) return pkg;
  if (manager === 'apt' || manager === 'apt-get') return `${pkg}=${version}`;
  if (manager === 'pip') return /^[<>=!~]/.test(version) ? `${pkg}${version}` : `${pkg}==${version}`;
  return `${pkg}@${version}`;
}

/** Groups `manager:pkg[@version]` arguments into one install argv per manager. */
export function profileTargets(positionals: readonly string[]): string[][] {
  const groups = new Map<string, string[]>();
  for (const arg of positionals) {
    const m = /^([a-z-]+):(.+)$/.exec(arg);
    if (!m) throw usageError(`rrm profile: ${JSON.stringify(arg)} is not <manager>:<package>[@version]`);
    const manager = m[1] as string;
    if (!ARGV_OF[manager])
      throw usageError(`rrm profile: unknown manager ${JSON.stringify(manager)} (npm, pnpm, yarn, apt, pip)`);
    const rest = m[2] as string;
    const at = rest.indexOf('@', rest.startsWith('@') ? 1 : 0);
    const pkg = at > 0 ? rest.slice(0, at) : rest;
    const version = at > 0 ? rest.slice(at + 1) : undefined;
    const key = manager === 'apt-get' ? 'apt' : manager;
    groups.set(key, [...(groups.get(key) ?? []), managerWord(key, pkg, version)]);
  }
  const out: string[][] = [];
  for (const [manager, words] of groups) {
    const argv = (ARGV_OF[manager] as (s: string[]) => string[])(words);
    const parsed = parseInstall(argv);
    // Every word must be a registry package: an option (`--purge`) or a path is refused here.
    const specs = parsed?.intent.specs ?? [];
    const bad = words.find((w) => !specs.some((s) => s.raw === w && s.kind === 'registry'));
    if (!parsed || bad !== undefined)
      throw usageError(`rrm profile: ${JSON.stringify(bad ?? words.join(' '))} is not a ${manager} package`);
    out.push(argv);
  }
  return out;
}

export function profileRows(profile: ResourceProfile): string[][] {
  const rows: string[][] = [['DIMENSION', 'VALUE', 'SOURCE', 'CONFIDENCE', 'NOTE']];
  // Each source's note once, on its first row; later rows of the same source say so.
  const seen = new Set<Source>();
  const sourceText = (s: Source | undefined): [string, string, string] => {
    if (!s) return ['-', '-', ''];
    const first = !seen.has(s);
    seen.add(s);
    return [s.provenance, s.confidence.toFixed(2), first ? (s.note ?? '') : '(as above)'];
  };
  for (const dim of dimensionsOf(profile.requests)) {
    rows.push([dim, formatDimension(dim, profile.requests[dim] ?? 0), ...sourceText(profile.sources[dim])]);
  }
  for (const dim of dimensionsOf(profile.limits ?? {})) {
    rows.push([
      `${dim} limit`,
      formatDimension(dim, profile.limits?.[dim] ?? 0),
      ...sourceText(profile.limitSources?.[dim]),
    ]);
  }
  const est = profile.estimates ?? {};
  const label: Record<string, [string, (n: number) => string]> = {
    wallMs: ['expected time', formatDuration],
    cpuMs: ['expected CPU time', formatDuration],
    downloadBytes: ['expected download', (n) => formatDimension('disk', n)],
  };
  for (const [name, n] of Object.entries(est)) {
    const [text, fmt] = label[name] ?? [name, String];
    rows.push([text, fmt(Math.round(n)), ...sourceText(profile.estimateSources?.[name])]);
  }
  return rows;
}

export async function profileCommand(ctx: Context, args: readonly string[]): Promise<number> {
  const dash = args.indexOf('--');
  const own = dash >= 0 ? args.slice(0, dash) : args;
  const command = dash >= 0 ? args.slice(dash + 1) : [];
  const { values, positionals } = parseOptions(own, OPTIONS, true);
  if (flag(values, 'help')) {
    ctx.io.out(PROFILE_HELP);
    return 0;
  }
  if (command.length > 0 && positionals.length > 0)
    throw usageError('rrm profile: give packages or a command after --, not both');
  if (command.length === 0 && positionals.length === 0)
    throw usageError('rrm profile: name at least one <manager>:<package>, or a command after --');
  const targets = command.length > 0 ? [command] : profileTargets(positionals);
  const config = ctx.config(values);
  const cold = flag(values, 'cold');
  const rc = resolveContext(config, ctx.env, { history: cold ? 'none' : 'open' });
  const chain = {
    ...rc,
    ...(cold ? { service: undefined } : {}),
    useMetadata: !flag(values, 'no-metadata'),
  };
  const results: { argv: readonly string[]; result: InstallProfile }[] = [];
  try {
    for (const argv of targets)
      results.push({ argv, result: await resolveInstallProfile(argv, { requests: {} }, chain) });
  } finally {
    rc.history?.close();
  }
  if (flag(values, 'json')) {
    printJson(
      ctx.io,
      results.map(({ argv, result }) => ({
        argv,
        install: result.intent
          ? { manager: result.intent.manager, action: result.intent.action, specs: result.intent.specs }
          : null,
        packages: result.packages,
        profile: result.profile,
        notes: result.notes,
      })),
    );
    return 0;
  }
  for (const [i, { argv, result }] of results.entries()) {
    if (i > 0) ctx.io.out('\n');
    const what = result.intent ? `${result.intent.manager} ${result.intent.action}` : 'not an install';
    ctx.io.out(`${argv.join(' ')}  (${what})\n`);
    if (result.packages.length)
      ctx.io.out(
        `packages: ${result.packages.map((p) => `${p.manager}:${p.name}${p.version ? `@${p.version}` : ''}`).join(' ')}\n`,
      );
    ctx.io.out(table(profileRows(result.profile)));
    for (const n of result.notes) ctx.io.out(`note: ${n}\n`);
  }
  return 0;
}
