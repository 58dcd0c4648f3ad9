/**
 * npm's configuration, read the way npm reads it (pure: text in, values out; the files are read by
 * npmrc-load.ts). An `.npmrc` is ini (`ini` as npm uses it: `;`/`#` comment lines, inline comments
 * after an unescaped `;` or `#`, quoted values, `key[]` arrays); `${VAR}` in keys and values is
 * replaced from the environment (`${VAR?}` is empty when unset, `\${VAR}` stays literal); the
 * `npm_config_*` environment is a layer of its own. Layers, highest first: command line, environment,
 * project `.npmrc`, user `~/.npmrc`, global `$PREFIX/etc/npmrc`, npm's builtin `npmrc`, defaults.
 *
 * From that: the registry of a package (its scope's `@scope:registry`, else `registry`), the
 * credentials of a URL (the longest `//host[:port]/path/:_authToken`, `:_auth` or
 * `:username`+`:_password` prefix of it, as npm-registry-fetch finds them), and the cache.
 * Credentials are only ever turned into an Authorization header; `secrets()` lists them so that
 * anything printed can be scrubbed.
 */
import { isAbsolute, join, resolve } from 'node:path';

export type NpmrcValue = string | boolean | null | readonly string[];
export type NpmrcData = Readonly<Record<string, NpmrcValue>>;

export type NpmConfigWhere = 'cli' | 'env' | 'project' | 'user' | 'global' | 'builtin' | 'default';

export interface NpmConfigLayer {
  readonly where: NpmConfigWhere;
  /** A file path, `environment`, `command line` or `defaults`. */
  readonly source: string;
  readonly data: NpmrcData;
}

/** Highest precedence first. */
export const NPM_CONFIG_ORDER: readonly NpmConfigWhere[] = Object.freeze([
  'cli',
  'env',
  'project',
  'user',
  'global',
  'builtin',
  'default',
]);

export const DEFAULT_NPM_REGISTRY = 'https://registry.npmjs.org/';

function isQuoted(v: string): boolean {
  return (v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'"));
}

/** `ini`'s unsafe(): a quoted value is JSON (single quotes stripped first); else up to the first unescaped `;` or `#`. */
export function iniValue(raw: string | undefined): string {
  let val = (raw ?? '').trim();
  if (val.length > 1 && isQuoted(val)) {
    if (val.startsWith("'")) val = val.slice(1, -1);
    try {
      const parsed: unknown = JSON.parse(val);
      return typeof parsed === 'string' ? parsed : val;
    } catch {
      return val;
    }
  }
  let esc = false;
  let out = '';
  for (const c of val) {
    if (esc) {
      out += '\\;#'.includes(c) ? c : `\\${c}`;
      esc = false;
    } else if (c === ';' || c === '#') break;
    else if (c === '\\') esc = true;
    else out += c;
  }
  if (esc) out += '\\';
  return out.trim();
}

/**
 * An `.npmrc` as npm's `ini.parse` reads it. `true`/`false`/`null` become booleans and null, a key
 * without `=` is `true`, `key[]` collects an array. `[section]` blocks are not npm configuration
 * (npm would see an object no option reads): their keys are skipped.
 */
export function parseNpmrc(text: string): Record<string, NpmrcValue> {
  const out: Record<string, NpmrcValue> = Object.create(null) as Record<string, NpmrcValue>;
  let inSection = false;
  for (const line of text.split(/[\r\n]+/)) {
    if (!line || /^\s*[;#]/.test(line) || /^\s*$/.test(line)) continue;
    const m = /^\[([^\]]*)\]\s*$|^([^=]+)(=(.*))?$/.exec(line);
    if (!m) continue;
    if (m[1] !== undefined) {
      inSection = true;
      continue;
    }
    if (inSection) continue;
    const keyRaw = iniValue(m[2]);
    const isArray = keyRaw.length > 2 && keyRaw.endsWith('[]');
    const key = isArray ? keyRaw.slice(0, -2) : keyRaw;
    if (key === '__proto__' || key === '') continue;
    const str = m[3] !== undefined ? iniValue(m[4]) : true;
    const value: string | boolean | null =
      str === 'true' ? true : str === 'false' ? false : str === 'null' ? null : str;
    const prev = out[key];
    if (isArray) {
      const list = Array.isArray(prev) ? [...(prev as string[])] : prev === undefined ? [] : [String(prev)];
      list.push(String(value));
      out[key] = list;
    } else if (Array.isArray(prev)) {
      out[key] = [...(prev as string[]), String(value)];
    } else {
      out[key] = value;
    }
  }
  return out;
}

/** npm's env-replace: `${NAME}` from env (left as written when unset), `${NAME?}` empty when unset, `\${` escapes. */
export function envReplace(text: string, env: Readonly<Record<string, string | undefined>>): string {
  return text.replace(
    /(?<!\\)(\\*)\$\{([^${}?]+)(\?)?\}/g,
    (orig: string, esc: string, name: string, modifier: string | undefined) => {
      const fallback = modifier === '?' ? '' : `\${${name}}`;
      const val = env[name] !== undefined ? (env[name] as string) : fallback;
      if (esc.length % 2) return orig.slice((esc.length + 1) / 2);
      return esc.slice(esc.length / 2) + val;
    },
  );
}

/** Env replacement on every key and string value of a layer, as npm does when it loads one. */
export function expandLayer(data: NpmrcData, env: Readonly<Record<string, string | undefined>>): NpmrcData {
  const out: Record<string, NpmrcValue> = Object.create(null) as Record<string, NpmrcValue>;
  for (const [k, v] of Object.entries(data)) {
    const key = envReplace(k, env);
    out[key] =
      typeof v === 'string'
        ? envReplace(v.trim(), env)
        : Array.isArray(v)
          ? (v as string[]).map((x) => envReplace(x, env))
          : v;
  }
  return out;
}

/** The `npm_config_*` environment as npm reads it: any case prefix, `_` → `-` (not in `//` keys), empty values ignored. */
export function npmConfigFromEnv(env: Readonly<Record<string, string | undefined>>): Record<string, string> {
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [envKey, value] of Object.entries(env)) {
    if (!/^npm_config_/i.test(envKey) || value === undefined || value === '') continue;
    let key = envKey.slice('npm_config_'.length);
    if (!key.startsWith('//')) key = key.replace(/(?!^)_/g, '-').toLowerCase();
    out[key] = value;
  }
  return out;
}

/** `//host[:port]/path/` of a URL: the key prefix npm stores its credentials under. */
export function nerfDart(url: string): string {
  const u = new URL(url);
  const rel = new URL('.', `${u.protocol}//${u.host}${u.pathname}`);
  return `//${rel.host}${rel.pathname}`;
}

/** A URL without user info, query or fragment: safe to print. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    u.search = '';
    u.hash = '';
    return u.toString();
  } catch {
    return url.replace(/\/\/[^/@\s]*@/g, '//').replace(/\?.*$/, '');
  }
}

/** `Authorization` for a request, and where it came from (the config key, never the value). */
export interface NpmAuth {
  readonly header: string;
  readonly scheme: 'Bearer' | 'Basic';
  /** `//host/path/:_authToken` and the like. */
  readonly key: string;
}

const AUTH_SUFFIXES = [':_authToken', ':_auth', ':_password', ':username'] as const;
const PATH_KEYS = new Set(['cache', 'userconfig', 'globalconfig', 'prefix', 'cafile']);

/** The merged layers. */
export class NpmConfig {
  readonly layers: readonly NpmConfigLayer[];

  constructor(
    layers: readonly NpmConfigLayer[],
    /** Resolves `~/` and relative paths (`cache`, `userconfig`, ...). */
    private readonly paths: { readonly home: string; readonly cwd: string },
  ) {
    this.layers = [...layers].sort(
      (a, b) => NPM_CONFIG_ORDER.indexOf(a.where) - NPM_CONFIG_ORDER.indexOf(b.where),
    );
  }

  /** The value of the highest layer that sets the key, and which layer that is. */
  lookup(key: string): { value: NpmrcValue; layer: NpmConfigLayer } | undefined {
    for (const layer of this.layers) {
      if (Object.prototype.hasOwnProperty.call(layer.data, key)) {
        return { value: layer.data[key] as NpmrcValue, layer };
      }
    }
    return undefined;
  }

  get(key: string): NpmrcValue | undefined {
    return this.lookup(key)?.value;
  }

  /** A string option; paths (`cache`, `userconfig`, ...) with `~/` and relative paths resolved. */
  string(key: string): string | undefined {
    const v = this.get(key);
    if (typeof v !== 'string' || v === '') return undefined;
    if (!PATH_KEYS.has(key)) return v;
    if (v.startsWith('~/')) return join(this.paths.home, v.slice(2));
    return isAbsolute(v) ? v : resolve(this.paths.cwd, v);
  }

  boolean(key: string): boolean | undefined {
    const v = this.get(key);
    return typeof v === 'boolean' ? v : v === 'true' ? true : v === 'false' ? false : undefined;
  }

  /** The default registry, ending in `/`. */
  get registry(): string {
    return withSlash(this.string('registry') ?? DEFAULT_NPM_REGISTRY);
  }

  /** The registry a package name is fetched from: `@scope:registry` for a scoped name, else `registry`. */
  registryFor(name: string): string {
    if (name.startsWith('@')) {
      const scope = name.slice(0, name.indexOf('/'));
      const scoped = this.string(`${scope}:registry`);
      if (scoped) return withSlash(scoped);
    }
    return this.registry;
  }

  /** npm's cache root (the directory holding `_cacache`). */
  get cache(): string | undefined {
    return this.string('cache');
  }

  /**
   * The Authorization header npm-registry-fetch would send to `url` when fetching `name`: the
   * credentials of the longest configured `//host/path` prefix of the URL; else, for a URL on the
   * host of the package's registry, that registry's credentials.
   */
  authFor(url: string, name?: string): NpmAuth | undefined {
    let found = this.authByPrefix(url);
    if (!found) {
      const registry = name !== undefined ? this.registryFor(name) : this.registry;
      if (url !== registry && sameHost(url, registry)) found = this.authByPrefix(registry);
    }
    return found;
  }

  private authByPrefix(url: string): NpmAuth | undefined {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return undefined;
    }
    let regKey = `//${parsed.host}${parsed.pathname}`;
    while (regKey.length > '//'.length) {
      const token = this.string(`${regKey}:_authToken`);
      if (token) return { header: `Bearer ${token}`, scheme: 'Bearer', key: `${regKey}:_authToken` };
      const auth = this.string(`${regKey}:_auth`);
      if (auth) return { header: `Basic ${auth}`, scheme: 'Basic', key: `${regKey}:_auth` };
      const username = this.string(`${regKey}:username`);
      const password = this.string(`${regKey}:_password`);
      if (username && password) {
        const plain = Buffer.from(password, 'base64').toString('utf8');
        return {
          header: `Basic ${Buffer.from(`${username}:${plain}`, 'utf8').toString('base64')}`,
          scheme: 'Basic',
          key: `${regKey}:username`,
        };
      }
      regKey = regKey.replace(/([^/]+|\/)$/, '');
    }
    if (parsed.username || parsed.password) {
      const user = decodeURIComponent(parsed.username);
      const pass = decodeURIComponent(parsed.password);
      return {
        header: `Basic ${Buffer.from(`${user}:${pass}`, 'utf8').toString('base64')}`,
        scheme: 'Basic',
        key: 'registry URL user info',
      };
    }
    return undefined;
  }

  /** Every configured key that is a scope's registry or a credential (`@x:registry`, `//host/:_authToken`, ...). */
  private keysMatching(test: (key: string) => boolean): string[] {
    const keys = new Set<string>();
    for (const layer of this.layers) for (const k of Object.keys(layer.data)) if (test(k)) keys.add(k);
    return [...keys];
  }

  /** Every credential value (and the forms it is sent in), so printed text can be scrubbed of them. */
  secrets(): string[] {
    const out = new Set<string>();
    for (const key of this.keysMatching((k) => AUTH_SUFFIXES.some((s) => k.endsWith(s)))) {
      if (key.endsWith(':username')) continue;
      const v = this.string(key);
      if (!v) continue;
      out.add(v);
      if (key.endsWith(':_password')) {
        const plain = Buffer.from(v, 'base64').toString('utf8');
        if (plain) out.add(plain);
        const user = this.string(key.replace(/:_password$/, ':username'));
        if (user) out.add(Buffer.from(`${user}:${plain}`, 'utf8').toString('base64'));
      }
      if (key.endsWith(':_auth')) {
        const plain = Buffer.from(v, 'base64').toString('utf8');
        const colon = plain.indexOf(':');
        if (colon >= 0 && plain.length > colon + 1) out.add(plain.slice(colon + 1));
      }
    }
    for (const key of [...this.keysMatching((k) => k === 'registry' || /^@[^:]+:registry$/.test(k))]) {
      const v = this.string(key);
      if (!v) continue;
      try {
        const u = new URL(v);
        if (u.password) out.add(decodeURIComponent(u.password));
      } catch {
        // not a URL: nothing to hide
      }
    }
    return [...out].filter((s) => s.length >= 4);
  }

  /** The options @npmcli/arborist (pacote, npm-registry-fetch) reads, from this config. */
  arboristOptions(): Record<string, unknown> {
    const opts: Record<string, unknown> = { registry: this.registry };
    for (const key of this.keysMatching((k) => /^@[^:]+:registry$/.test(k))) {
      const v = this.string(key);
      if (v) opts[key] = withSlash(v);
    }
    for (const key of this.keysMatching(
      (k) => k.startsWith('//') && [...AUTH_SUFFIXES, ':certfile', ':keyfile'].some((s) => k.endsWith(s)),
    )) {
      const v = this.string(key);
      if (v) opts[key] = v;
    }
    const flags: Record<string, string> = {
      'legacy-peer-deps': 'legacyPeerDeps',
      'strict-peer-deps': 'strictPeerDeps',
      'strict-ssl': 'strictSSL',
      'install-links': 'installLinks',
    };
    for (const [key, flat] of Object.entries(flags)) {
      const v = this.boolean(key);
      if (v !== undefined) opts[flat] = v;
    }
    const strings: Record<string, string> = {
      proxy: 'proxy',
      'https-proxy': 'httpsProxy',
      noproxy: 'noProxy',
      'user-agent': 'userAgent',
    };
    for (const [key, flat] of Object.entries(strings)) {
      const v = this.string(key);
      if (v) opts[flat] = v;
    }
    const before = this.string('before');
    if (before && !Number.isNaN(Date.parse(before))) opts.before = new Date(before);
    return opts;
  }

  /** Which files were read, for the provenance text (paths only). */
  describe(): string {
    const files = this.layers.filter((l) => ['project', 'user', 'global', 'builtin'].includes(l.where));
    return files.length ? files.map((l) => `${l.where} ${l.source}`).join(', ') : 'no .npmrc';
  }
}

function withSlash(url: string): string {
  return url.replace(/\/?$/, '/');
}

function sameHost(a: string, b: string): boolean {
  try {
    return new URL(a).host === new URL(b).host;
  } catch {
    return false;
  }
}

/** Replaces every secret in a text by `***`. */
export function scrub(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) out = out.split(s).join('***');
  return out;
}
