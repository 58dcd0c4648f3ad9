/**
 * Reads the `.npmrc` files npm would read for an install, in npm's order (see npmrc.ts for the
 * parsing): the project's (`<localPrefix>/.npmrc`, where localPrefix is `--prefix` or the nearest
 * directory up from the working directory with a package.json or node_modules; not in global mode),
 * the user's (`$npm_config_userconfig` or `~/.npmrc`), the global one (`$npm_config_globalconfig` or
 * `$PREFIX/etc/npmrc`, PREFIX being npm's global prefix: `prefix` config, `$PREFIX`, or the directory
 * above node's `bin/`) and npm's builtin `<prefix>/lib/node_modules/npm/npmrc`.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import {
  DEFAULT_NPM_REGISTRY,
  expandLayer,
  NpmConfig,
  npmConfigFromEnv,
  parseNpmrc,
  type NpmConfigLayer,
  type NpmConfigWhere,
  type NpmrcData,
} from './npmrc.js';

export interface LoadNpmConfigOptions {
  /** The directory the install runs in. */
  readonly cwd: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Options from the command line (`--registry`, `--cache`, `--userconfig`, `--prefix`, ...). */
  readonly cli?: Readonly<Record<string, string>>;
  readonly global?: boolean;
  /** Lowest layer: what rrm's own config says when npm's files say nothing. */
  readonly defaults?: { readonly registry?: string; readonly cache?: string };
  readonly home?: string;
  /** node's executable, for the default global prefix. */
  readonly execPath?: string;
}

function readLayer(where: NpmConfigWhere, file: string, env: LoadNpmConfigOptions['env']): NpmConfigLayer {
  let data: NpmrcData = {};
  try {
    data = expandLayer(parseNpmrc(readFileSync(file, 'utf8')), env);
  } catch {
    // missing or unreadable: npm ignores it too
  }
  return { where, source: file, data };
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** npm's localPrefix: the nearest directory up from cwd with a package.json or node_modules, else cwd. */
export function localPrefix(cwd: string): string {
  let dir = resolve(cwd);
  for (;;) {
    if (existsSync(join(dir, 'package.json')) || existsSync(join(dir, 'node_modules'))) return dir;
    const up = dirname(dir);
    if (up === dir) return resolve(cwd);
    dir = up;
  }
}

export function loadNpmConfig(opts: LoadNpmConfigOptions): NpmConfig {
  const env = opts.env;
  const home = opts.home ?? env.HOME ?? '/';
  const cwd = resolve(opts.cwd);
  let globalPrefix = env.PREFIX || dirname(dirname(opts.execPath ?? process.execPath));
  if (!env.PREFIX && env.DESTDIR) globalPrefix = join(env.DESTDIR, globalPrefix);
  const defaults: NpmConfigLayer = {
    where: 'default',
    source: 'defaults',
    data: {
      registry: opts.defaults?.registry ?? DEFAULT_NPM_REGISTRY,
      cache: opts.defaults?.cache ?? join(home, '.npm'),
      prefix: globalPrefix,
      userconfig: join(home, '.npmrc'),
    },
  };
  const layers: NpmConfigLayer[] = [defaults];
  const config = (): NpmConfig => new NpmConfig(layers, { home, cwd });
  if (opts.cli && Object.keys(opts.cli).length > 0) {
    layers.push({ where: 'cli', source: 'command line', data: expandLayer(opts.cli, env) });
  }
  layers.push({ where: 'env', source: 'environment', data: expandLayer(npmConfigFromEnv(env), env) });
  const builtin = join(globalPrefix, 'lib', 'node_modules', 'npm', 'npmrc');
  if (isFile(builtin)) layers.push(readLayer('builtin', builtin, env));

  const global = opts.global === true || config().string('location') === 'global';
  if (!global) {
    const cliPrefix = opts.cli?.prefix;
    const project = join(cliPrefix ? resolve(cwd, cliPrefix) : localPrefix(cwd), '.npmrc');
    if (project !== config().string('userconfig') && isFile(project)) {
      layers.push(readLayer('project', project, env));
    }
  }
  const user = config().string('userconfig');
  if (user && isFile(user)) layers.push(readLayer('user', user, env));
  const globalFile =
    config().string('globalconfig') ?? join(config().string('prefix') ?? globalPrefix, 'etc', 'npmrc');
  if (isFile(globalFile)) layers.push(readLayer('global', globalFile, env));
  return config();
}
