/**
 * The npm family: npm, pnpm and yarn. Which argv is an install, which packages it names, and the
 * registry metadata of the tree it would install, read with npm's own configuration (the `.npmrc`
 * layers and `npm_config_*`: registries per scope, credentials, cache; npmrc.ts). The tree is
 * resolved by npm's own resolver, @npmcli/arborist (npm-arborist.ts); a lockfile is walked as it
 * is, and when arborist cannot resolve (offline, refused, past its share of the deadline) rrm's own
 * breadth-first walk with a bounded fan-out answers instead (npm-tree.ts), and the profile says so.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import type { PackageRef } from '../model/reservation.js';
import { allValues, has, lastValue, programName, scanArgs, type Scanned } from './argv.js';
import { arboristFailure, arboristTree } from './npm-arborist.js';
import { RegistryHttpError } from './npm-registry.js';
import { COST_MODELS, npmProfilePart, walkNpmTree, type NpmRoot, type NpmTree } from './npm-tree.js';
import { parseNpmSpec } from './npm-spec.js';
import { scrub } from './npmrc.js';
import { loadNpmConfig, localPrefix } from './npmrc-load.js';
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

/** npm options on the command line that are .npmrc keys rrm reads (the `cli` layer). */
const NPM_CLI_CONFIG = new Set(['registry', 'cache', 'userconfig', 'globalconfig', 'prefix']);

function npmCliConfig(s: Scanned): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, values] of s.options) {
    const key = name.startsWith('--') ? name.slice(2) : name === '-C' ? 'prefix' : undefined;
    if (key === undefined) continue;
    if (!NPM_CLI_CONFIG.has(key) && !/^@[^:/]+:registry$/.test(key) && !key.startsWith('//')) continue;
    const last = values.filter((v): v is string => typeof v === 'string').at(-1);
    if (last !== undefined) out[key] = last;
  }
  return out;
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
    npmConfig: npmCliConfig(s),
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
  // `yarn` alone installs the project; `yarn --version` and `yarn --help` alone are not installs.
  if (sub === undefined && has(s, '--version', '-v', '--help', '-h')) return null;
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

/** The name a spec is installed under (an alias's own name). */
function installName(raw: string, name: string): string {
  const at = raw.indexOf('@', raw.startsWith('@') ? 1 : 0);
  return at > 0 && raw.slice(at + 1).startsWith('npm:') ? raw.slice(0, at) : name;
}

/** Why a resolution failed, without credentials: the status, the code, the URL without user info. */
function registryFailure(e: unknown): string {
  if (e instanceof RegistryHttpError) return e.message;
  return arboristFailure(e);
}

export async function npmMetadata(intent: InstallIntent, ctx: MetadataContext): Promise<MetadataResult> {
  const env = ctx.env ?? process.env;
  const dir = projectDir(intent, ctx.cwd);
  const cli: Record<string, string> = { ...(intent.options.npmConfig ?? {}) };
  if (intent.options.registry !== undefined) cli.registry = intent.options.registry;
  const config = loadNpmConfig({
    // npm's --prefix is npm's localPrefix; pnpm --dir and yarn --cwd move the working directory.
    cwd: intent.manager === 'npm' ? ctx.cwd : dir,
    env,
    cli,
    global: intent.options.global === true,
    defaults: { registry: ctx.registry, ...(ctx.npmCacheDir ? { cache: ctx.npmCacheDir } : {}) },
  });
  const secrets = config.secrets();
  const root = intent.manager === 'npm' && intent.options.prefix !== undefined ? dir : localPrefix(dir);
  const registry = config.registry;
  const notes: string[] = [...intent.notes];
  let roots: NpmRoot[] = [];
  let packages: PackageRef[] = [];
  let projectKey: PackageRef | undefined;
  let locked = false;
  const addSpecs: string[] = [];
  const rootNames: string[] = [];
  if (intent.specs.length > 0) {
    for (const s of intent.specs) {
      if (s.kind === 'registry' && s.name) {
        roots.push({ name: s.name, range: s.range ?? 'latest', root: true });
        addSpecs.push(s.raw);
        rootNames.push(installName(s.raw, s.name));
      } else if (s.kind !== 'other') notes.push(`${s.raw}: ${s.kind} spec, not sized from the registry`);
    }
  } else {
    const p = projectRoots(root, intent.options.omitDev === true);
    roots = p.roots;
    locked = p.locked;
    notes.push(...p.notes);
    projectKey = {
      manager: intent.manager,
      name: `project:${p.project?.name ?? root}`,
      ...(p.project?.version ? { version: p.project.version } : {}),
    };
  }
  const clean = intent.action === 'rebuild' || CLEAN_INSTALLS.has(intent.subcommand ?? '');
  const installedBase = intent.options.global ? undefined : join(root, 'node_modules');
  const started = Date.now();
  const deadline = AbortSignal.timeout(ctx.timeoutMs);
  let tree: NpmTree | undefined;
  let fallback: string | undefined;
  // npm's resolver for what npm resolves: named installs, updates, and projects without a lockfile.
  // A lockfile is already npm's resolution (walked as it is); `npm rebuild` fetches nothing.
  const useArborist =
    intent.action !== 'rebuild' &&
    (addSpecs.length > 0 ||
      (intent.specs.length === 0 && roots.length > 0 && (!locked || intent.action === 'upgrade')));
  if (useArborist) {
    try {
      const globalLib = join(config.string('prefix') ?? '/usr/local', 'lib');
      tree = await arboristTree({
        path: intent.options.global ? globalLib : root,
        global: intent.options.global === true,
        add: intent.action === 'upgrade' ? [] : addSpecs,
        ...(intent.action === 'upgrade'
          ? { update: addSpecs.length > 0 ? { names: rootNames } : { all: true as const } }
          : {}),
        rootNames,
        config,
        fetch: ctx.fetch,
        // Resolution may take most of the budget, not all: the walk gets the rest if it fails.
        resolveSignal: AbortSignal.any([deadline, AbortSignal.timeout(Math.round(ctx.timeoutMs * 0.8))]),
        signal: deadline,
        concurrency: ctx.npmConcurrency,
        maxPackages: ctx.npmMaxPackages,
        omitDev: intent.options.omitDev === true,
        countInstalled: !clean,
      });
    } catch (e) {
      fallback = `@npmcli/arborist could not resolve the tree (${registryFailure(e)}): rrm's own registry walk instead`;
    }
  }
  if (!tree) {
    const left = Math.max(0, ctx.timeoutMs - (Date.now() - started));
    tree = await walkNpmTree(roots, {
      registry,
      fetch: ctx.fetch,
      timeoutMs: left,
      maxPackages: ctx.npmMaxPackages,
      concurrency: ctx.npmConcurrency,
      cacheDir: config.cache,
      access: config,
      // `npm ci` removes node_modules first; `rebuild` builds what is there: nothing installed counts as done.
      installedBase: clean ? undefined : installedBase,
    });
    tree = {
      ...tree,
      resolver: fallback ?? (locked ? 'tree from the lockfile' : "rrm's registry walk"),
    };
    if (fallback) notes.push(fallback);
  }
  notes.push(`npm config: ${config.describe()}`);
  packages = tree.roots.map((r) => ({
    manager: intent.manager,
    name: r.name,
    ...(r.version ? { version: r.version } : {}),
  }));
  if (projectKey) packages = [projectKey];
  const parts = npmProfilePart(
    tree,
    {
      ignoreScripts: intent.options.ignoreScripts === true,
      rebuild: intent.action === 'rebuild',
      specsNotSized: intent.specs.filter((s) => s.kind !== 'registry').length,
    },
    COST_MODELS[intent.manager],
  );
  if (tree.failed.length > 0 && tree.packages.length === 0)
    notes.push(`npm metadata unavailable for ${tree.failed.slice(0, 5).join(', ')}`);
  for (const e of (tree.errors ?? []).slice(0, 5)) notes.push(`npm registry: ${e}`);
  // Credentials never leave: whatever a message picked up is scrubbed.
  const scrubbed = (t: string): string => scrub(t, secrets);
  return {
    parts: parts.map((p) =>
      p.source.note === undefined ? p : { ...p, source: { ...p.source, note: scrubbed(p.source.note) } },
    ),
    packages,
    notes: [...notes, ...tree.notes].map(scrubbed),
  };
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
