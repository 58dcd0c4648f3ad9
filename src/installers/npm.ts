/**
 * The npm family: npm, pnpm and yarn. Which argv is an install, which packages it names, and the
 * registry metadata of the tree it would install (walked breadth-first with a bounded fan-out).
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import type { PackageRef } from '../model/reservation.js';
import { allValues, has, lastValue, programName, scanArgs } from './argv.js';
import { npmProfilePart, walkNpmTree, type NpmRoot } from './npm-tree.js';
import { parseNpmSpec } from './npm-spec.js';
import type {
  InstallAction,
  InstallerAdapter,
  InstallIntent,
  InstallOptions,
  MetadataContext,
  MetadataResult,
  PackageSpec,
} from './types.js';

const NPM_VALUE_OPTIONS = new Set([
  '--prefix',
  '-C',
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
  '--location',
  '--script-shell',
  '--node-options',
  '--lockfile-version',
  '--cpu',
  '--os',
  '--libc',
  '--fetch-retries',
  '--fetch-timeout',
  '--proxy',
  '--https-proxy',
  '--ca',
  '--cafile',
  '--cert',
  '--key',
  '--scope',
  '--audit-level',
  '--only',
  '--also',
  '--depth',
  '--userconfig',
  '--access',
]);

const NPM_COMMANDS: Readonly<Record<string, InstallAction>> = Object.freeze({
  install: 'install',
  i: 'install',
  in: 'install',
  ins: 'install',
  inst: 'install',
  insta: 'install',
  instal: 'install',
  isnt: 'install',
  isnta: 'install',
  isntal: 'install',
  isntall: 'install',
  add: 'install',
  'install-test': 'install',
  it: 'install',
  'install-ci-test': 'project',
  cit: 'project',
  ci: 'project',
  'clean-install': 'project',
  ic: 'project',
  'install-clean': 'project',
  'isntall-clean': 'project',
  update: 'upgrade',
  up: 'upgrade',
  upgrade: 'upgrade',
  udpate: 'upgrade',
  rebuild: 'rebuild',
  rb: 'rebuild',
});

const CLEAN_INSTALLS = new Set([
  'ci',
  'clean-install',
  'ic',
  'install-clean',
  'isntall-clean',
  'cit',
  'install-ci-test',
]);

const PNPM_VALUE_OPTIONS = new Set([
  '--dir',
  '-C',
  '--filter',
  '-F',
  '--store-dir',
  '--virtual-store-dir',
  '--modules-dir',
  '--lockfile-dir',
  '--reporter',
  '--loglevel',
  '--registry',
  '--workspace-concurrency',
  '--network-concurrency',
  '--child-concurrency',
  '--node-linker',
  '--package-import-method',
  '--resolution-mode',
  '--config',
]);

const PNPM_COMMANDS: Readonly<Record<string, InstallAction>> = Object.freeze({
  add: 'install',
  install: 'install',
  i: 'install',
  update: 'upgrade',
  up: 'upgrade',
  upgrade: 'upgrade',
  rebuild: 'rebuild',
  rb: 'rebuild',
});

const YARN_VALUE_OPTIONS = new Set([
  '--cwd',
  '--modules-folder',
  '--cache-folder',
  '--global-folder',
  '--link-folder',
  '--registry',
  '--network-timeout',
  '--mutex',
  '--network-concurrency',
]);

const YARN_COMMANDS: Readonly<Record<string, InstallAction>> = Object.freeze({
  install: 'project',
  add: 'install',
  upgrade: 'upgrade',
  up: 'upgrade',
});

function intentOf(
  manager: string,
  argv: readonly string[],
  subcommand: string | undefined,
  action: InstallAction,
  words: readonly string[],
  options: InstallOptions,
  notes: string[],
): InstallIntent {
  const specs: PackageSpec[] = words.map(parseNpmSpec);
  for (const s of specs) if (s.kind === 'other') notes.push(`${JSON.stringify(s.raw)} is not a package spec`);
  const act: InstallAction = action === 'install' && specs.length === 0 ? 'project' : action;
  return {
    manager,
    family: 'npm',
    action: act,
    ...(subcommand !== undefined ? { subcommand } : {}),
    argv,
    specs,
    named: {},
    options,
    notes,
  };
}

export function parseNpm(argv: readonly string[]): InstallIntent | null {
  if (programName(argv[0]) !== 'npm') return null;
  const s = scanArgs(argv.slice(1), { withValue: NPM_VALUE_OPTIONS });
  const [sub, ...words] = s.positionals;
  const action = sub !== undefined ? NPM_COMMANDS[sub] : undefined;
  if (!action) return null;
  if (has(s, '--dry-run')) return null;
  const omit = allValues(s, '--omit');
  const options: InstallOptions = {
    prefix: lastValue(s, '--prefix', '-C'),
    global: has(s, '-g', '--global') || lastValue(s, '--location') === 'global',
    ignoreScripts: has(s, '--ignore-scripts'),
    omitDev: omit.includes('dev') || has(s, '--production') || /^prod/.test(lastValue(s, '--only') ?? ''),
    registry: lastValue(s, '--registry'),
  };
  return intentOf('npm', argv, sub, action, action === 'project' ? [] : words, options, []);
}

export function parsePnpm(argv: readonly string[]): InstallIntent | null {
  if (programName(argv[0]) !== 'pnpm') return null;
  const s = scanArgs(argv.slice(1), { withValue: PNPM_VALUE_OPTIONS });
  const [sub, ...words] = s.positionals;
  const action = sub !== undefined ? PNPM_COMMANDS[sub] : undefined;
  if (!action || has(s, '--dry-run')) return null;
  const options: InstallOptions = {
    prefix: lastValue(s, '--dir', '-C'),
    global: has(s, '-g', '--global'),
    ignoreScripts: has(s, '--ignore-scripts'),
    omitDev: has(s, '--prod', '-P', '--production'),
    registry: lastValue(s, '--registry'),
  };
  return intentOf('pnpm', argv, sub, action, words, options, []);
}

export function parseYarn(argv: readonly string[]): InstallIntent | null {
  if (programName(argv[0]) !== 'yarn') return null;
  const s = scanArgs(argv.slice(1), { withValue: YARN_VALUE_OPTIONS });
  let [sub, ...words] = s.positionals;
  let global = false;
  if (sub === 'global') {
    global = true;
    [sub, ...words] = words;
    if (sub !== 'add' && sub !== 'upgrade') return null;
  }
  // `yarn` alone installs the project.
  const action: InstallAction | undefined = sub === undefined ? 'project' : YARN_COMMANDS[sub];
  if (!action) return null;
  const options: InstallOptions = {
    prefix: lastValue(s, '--cwd'),
    global,
    ignoreScripts: has(s, '--ignore-scripts'),
    omitDev: has(s, '--production', '--prod'),
    registry: lastValue(s, '--registry'),
  };
  return intentOf('yarn', argv, sub, action, action === 'project' ? [] : words, options, []);
}

interface ProjectManifest {
  readonly name?: string;
  readonly version?: string;
  readonly dependencies?: Readonly<Record<string, string>>;
  readonly devDependencies?: Readonly<Record<string, string>>;
  readonly optionalDependencies?: Readonly<Record<string, string>>;
}

interface LockEntry {
  readonly version?: string;
  readonly resolved?: string;
  readonly integrity?: string;
  readonly dev?: boolean;
  readonly optional?: boolean;
  readonly hasInstallScript?: boolean;
  readonly link?: boolean;
  readonly os?: readonly string[];
  readonly cpu?: readonly string[];
}

function readJson<T>(path: string): T | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

export function projectDir(intent: InstallIntent, cwd: string): string {
  const p = intent.options.prefix;
  return p === undefined ? cwd : isAbsolute(p) ? p : resolve(cwd, p);
}

/** The roots of a project install: the lockfile's packages, else package.json's dependencies. */
function projectRoots(
  dir: string,
  omitDev: boolean,
): { roots: NpmRoot[]; locked: boolean; project?: ProjectManifest; notes: string[] } {
  const notes: string[] = [];
  const project = readJson<ProjectManifest>(join(dir, 'package.json'));
  for (const file of ['npm-shrinkwrap.json', 'package-lock.json']) {
    const lock = readJson<{ packages?: Record<string, LockEntry> }>(join(dir, file));
    if (!lock?.packages) continue;
    const roots: NpmRoot[] = [];
    for (const [path, e] of Object.entries(lock.packages)) {
      if (path === '' || e.link || !e.version) continue;
      if (omitDev && e.dev) continue;
      const name = path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length);
      roots.push({
        name,
        range: e.version,
        locked: {
          version: e.version,
          resolved: e.resolved,
          integrity: e.integrity,
          hasInstallScript: e.hasInstallScript,
          os: e.os,
          cpu: e.cpu,
        },
        installedPath: join(dir, path),
      });
    }
    notes.push(`${file}: ${roots.length} packages`);
    return { roots, locked: true, project, notes };
  }
  if (!project) {
    notes.push(`no package.json in ${dir}`);
    return { roots: [], locked: false, notes };
  }
  const deps = {
    ...(omitDev ? {} : (project.devDependencies ?? {})),
    ...(project.optionalDependencies ?? {}),
    ...(project.dependencies ?? {}),
  };
  const roots: NpmRoot[] = [];
  for (const [name, range] of Object.entries(deps)) {
    const spec = parseNpmSpec(`${name}@${range}`);
    if (spec.kind === 'registry' && spec.name) roots.push({ name: spec.name, range: spec.range ?? 'latest' });
    else notes.push(`${name}@${range} is not a registry dependency: not sized`);
  }
  notes.push(`package.json: ${roots.length} direct dependencies (no lockfile)`);
  return { roots, locked: false, project, notes };
}

export async function npmMetadata(intent: InstallIntent, ctx: MetadataContext): Promise<MetadataResult> {
  const registry = (intent.options.registry ?? ctx.registry).replace(/\/?$/, '/');
  const dir = projectDir(intent, ctx.cwd);
  const notes: string[] = [...intent.notes];
  let roots: NpmRoot[] = [];
  let packages: PackageRef[] = [];
  let projectKey: PackageRef | undefined;
  if (intent.specs.length > 0) {
    for (const s of intent.specs) {
      if (s.kind === 'registry' && s.name)
        roots.push({ name: s.name, range: s.range ?? 'latest', root: true });
      else if (s.kind !== 'other') notes.push(`${s.raw}: ${s.kind} spec, not sized from the registry`);
    }
  } else {
    const p = projectRoots(dir, intent.options.omitDev === true);
    roots = p.roots;
    notes.push(...p.notes);
    projectKey = {
      manager: intent.manager,
      name: `project:${p.project?.name ?? dir}`,
      ...(p.project?.version ? { version: p.project.version } : {}),
    };
  }
  const installedBase = intent.options.global ? undefined : join(dir, 'node_modules');
  const tree = await walkNpmTree(roots, {
    registry,
    fetch: ctx.fetch,
    timeoutMs: ctx.timeoutMs,
    maxPackages: ctx.npmMaxPackages,
    concurrency: ctx.npmConcurrency,
    cacheDir: ctx.npmCacheDir,
    // `npm ci` removes node_modules first; `rebuild` builds what is there: nothing installed counts as done.
    installedBase:
      intent.action === 'rebuild' || CLEAN_INSTALLS.has(intent.subcommand ?? '') ? undefined : installedBase,
  });
  packages = tree.roots.map((r) => ({
    manager: intent.manager,
    name: r.name,
    ...(r.version ? { version: r.version } : {}),
  }));
  if (projectKey) packages = [projectKey];
  const parts = npmProfilePart(tree, {
    ignoreScripts: intent.options.ignoreScripts === true,
    rebuild: intent.action === 'rebuild',
    specsNotSized: intent.specs.filter((s) => s.kind !== 'registry').length,
  });
  return { parts, packages, notes: [...notes, ...tree.notes] };
}

function adapter(
  manager: string,
  parse: (argv: readonly string[]) => InstallIntent | null,
): InstallerAdapter {
  return {
    manager,
    family: 'npm',
    matches: (argv) => programName(argv[0]) === manager,
    parse,
    metadata: npmMetadata,
  };
}

export const npmAdapter = adapter('npm', parseNpm);
export const pnpmAdapter = adapter('pnpm', parsePnpm);
export const yarnAdapter = adapter('yarn', parseYarn);
