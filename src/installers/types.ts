/**
 * Installer adapters: one per package manager. An adapter recognises which argv is an install
 * (anything else passes through untouched and unreserved), names the packages it installs, and
 * turns them into profile parts from the manager's own metadata. It never rewrites or runs the
 * user's argv: rrm runs the argv as given, as an argv array, never through a shell.
 */
import type { PackageRef } from '../model/reservation.js';
import type { ResourceVector } from '../model/vector.js';
import type { ProfilePart } from '../profiles/profile.js';

export type ManagerFamily = 'npm' | 'apt' | 'pip';

/** What kind of change the command makes. */
export type InstallAction =
  /** Installs the named packages (`npm install x`, `apt-get install x`, `pip install x`). */
  | 'install'
  /** Installs what the project declares (`npm ci`, `npm install` without names, `pip install -r`). */
  | 'project'
  /** Upgrades installed packages (`apt-get upgrade`, `npm update`). */
  | 'upgrade'
  /** Removes packages (`apt-get remove`): takes locks, needs little else. */
  | 'remove'
  /** Refreshes indexes (`apt-get update`). */
  | 'refresh'
  /** Rebuilds what is installed (`npm rebuild`): compiles native addons again. */
  | 'rebuild';

export type SpecKind = 'registry' | 'file' | 'directory' | 'url' | 'git' | 'other';

/** One package the user named, as written and as understood. */
export interface PackageSpec {
  readonly raw: string;
  readonly kind: SpecKind;
  /** Registry name (`sharp`, `@scope/x`, `libc6`, `requests`); absent for paths and URLs. */
  readonly name?: string;
  /** Version or range as written (`^1.2`, `1.2.3`, `latest`, `>=2,<3`); absent = newest. */
  readonly range?: string;
  /** Local path for file and directory specs, as written. */
  readonly path?: string;
}

export interface InstallIntent {
  /** The manager's own name: npm, pnpm, yarn, apt-get, apt, dpkg, pip. */
  readonly manager: string;
  readonly family: ManagerFamily;
  readonly action: InstallAction;
  /** The manager's subcommand as written (`install`, `ci`, `add`, `dist-upgrade`). */
  readonly subcommand?: string;
  /** The argv to run: exactly what the user gave, never rewritten. */
  readonly argv: readonly string[];
  readonly specs: readonly PackageSpec[];
  /** Named resources the command always takes (`dpkg-lock: 1` for every apt change). */
  readonly named: ResourceVector;
  /** Parsed options that change what is installed or what it costs. */
  readonly options: InstallOptions;
  /** What the parser noticed and skipped (unknown option, name that is not a package name, ...). */
  readonly notes: readonly string[];
}

export interface InstallOptions {
  /** The project directory (npm --prefix/-C, pnpm --dir, pip -e DIR...); absent = cwd. */
  readonly prefix?: string;
  readonly global?: boolean;
  /** npm --ignore-scripts, pip --no-build-isolation is not this. */
  readonly ignoreScripts?: boolean;
  /** npm --omit=dev / --production. */
  readonly omitDev?: boolean;
  /** npm --registry. */
  readonly registry?: string;
  /** npm configuration given on the command line (`--cache`, `--userconfig`, `--globalconfig`, `--@scope:registry=`): the highest .npmrc layer. */
  readonly npmConfig?: Readonly<Record<string, string>>;
  /** pip index URLs (-i / --index-url, --extra-index-url); `false` with --no-index. */
  readonly indexUrls?: readonly string[] | false;
  /** pip -f / --find-links. */
  readonly findLinks?: readonly string[];
  /** pip -r requirement files. */
  readonly requirementFiles?: readonly string[];
  /** pip --no-binary :all: / --no-binary NAME: build from source. */
  readonly noBinary?: readonly string[];
  /** apt options that change what a simulation resolves (`--no-install-recommends`, `-t REL`). */
  readonly aptSimulationArgs?: readonly string[];
}

/** Runs a local command (argv, never a shell) for metadata: apt-get -s, apt-cache show. `env` is added to the inherited environment. */
export type Exec = (
  argv: readonly string[],
  opts: { readonly timeoutMs: number; readonly env?: NodeJS.ProcessEnv },
) => Promise<{ readonly code: number | null; readonly stdout: string; readonly stderr: string }>;

/** Everything an adapter may use to look up metadata; the CLI compiles it once. */
export interface MetadataContext {
  /** npm registry URL ending in `/`. */
  readonly registry: string;
  /** Budget for all network metadata of one resolution. */
  readonly timeoutMs: number;
  /** Budget for local commands (apt-get -s, apt-cache show). */
  readonly localTimeoutMs: number;
  readonly cwd: string;
  /** npm cache root (`~/.npm`); its `_cacache` tells which tarballs need no download. */
  readonly npmCacheDir?: string;
  /** Bounds on the npm dependency walk. */
  readonly npmMaxPackages: number;
  readonly npmConcurrency: number;
  /** pip index (PIP_INDEX_URL or https://pypi.org/simple/) unless the argv names one. */
  readonly pipIndexUrl: string;
  /** apt archive cache: which .deb files need no download. */
  readonly aptArchivesDir: string;
  readonly fetch: typeof fetch;
  readonly exec: Exec;
  /**
   * The environment the install runs with: npm reads its `npm_config_*` layer, `${VAR}` in `.npmrc`
   * values, HOME and PREFIX from it. Absent: this process's environment.
   */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/** An adapter's answer: profile parts (manifest and metadata provenance) and the packages resolved. */
export interface MetadataResult {
  readonly parts: readonly ProfilePart[];
  /** The packages named, with versions where they were resolved: the history key. */
  readonly packages: readonly PackageRef[];
  readonly notes: readonly string[];
}

export interface InstallerAdapter {
  /** The adapter's name (npm, pnpm, yarn, apt, pip). */
  readonly manager: string;
  readonly family: ManagerFamily;
  /** True when argv runs this manager (whatever the subcommand). */
  matches(argv: readonly string[]): boolean;
  /** The install this argv performs, or null when it is not an install (`npm run`, `pip download`). */
  parse(argv: readonly string[]): InstallIntent | null;
  metadata(intent: InstallIntent, ctx: MetadataContext): Promise<MetadataResult>;
}
