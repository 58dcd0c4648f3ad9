/**
 * The npm registry's JSON, read the way npm reads it: a packument per name (abbreviated when the
 * registry offers it), a version document when the packument lacks scripts, and a tarball's size
 * from a 4-byte range request (the compressed size from Content-Range, the unpacked size from the
 * gzip trailer) so no tarball is downloaded to size it.
 */
import { redactUrl } from './npmrc.js';

export interface VersionDoc {
  readonly name?: string;
  readonly version?: string;
  readonly scripts?: Readonly<Record<string, string>>;
  readonly gypfile?: boolean;
  readonly hasInstallScript?: boolean;
  readonly dependencies?: Readonly<Record<string, string>>;
  readonly optionalDependencies?: Readonly<Record<string, string>>;
  readonly peerDependencies?: Readonly<Record<string, string>>;
  readonly peerDependenciesMeta?: Readonly<Record<string, { optional?: boolean }>>;
  readonly bundleDependencies?: readonly string[] | boolean;
  readonly os?: readonly string[];
  readonly cpu?: readonly string[];
  readonly libc?: readonly string[];
  readonly dist?: {
    readonly tarball?: string;
    readonly integrity?: string;
    readonly shasum?: string;
    readonly unpackedSize?: number;
    readonly fileCount?: number;
  };
  /** A package's own statement of what installing it needs (manifest provenance). */
  readonly rrm?: unknown;
}

/** Which registry serves a package and what credentials a URL takes (npmrc.ts's NpmConfig). */
export interface RegistryAccess {
  registryFor(name: string): string;
  authFor(url: string, name?: string): { readonly header: string } | undefined;
}

/** fetch refuses URLs with user info: move it to a Basic header (when no other credentials apply). */
function withoutUserInfo(url: string): { url: string; basic?: string } {
  try {
    const u = new URL(url);
    if (!u.username && !u.password) return { url };
    const basic = Buffer.from(
      `${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`,
      'utf8',
    ).toString('base64');
    u.username = '';
    u.password = '';
    return { url: u.toString(), basic: `Basic ${basic}` };
  } catch {
    return { url };
  }
}

/** Thrown for a registry answer that is not 2xx: the status and a printable URL, never credentials. */
export class RegistryHttpError extends Error {
  constructor(
    readonly status: number,
    url: string,
  ) {
    super(`${redactUrl(url)}: HTTP ${status}`);
  }
}

export interface Packument {
  readonly name?: string;
  readonly 'dist-tags'?: Readonly<Record<string, string>>;
  readonly versions?: Readonly<Record<string, VersionDoc>>;
}

export interface TarballSize {
  /** Compressed bytes (what a download costs). */
  readonly size: number;
  /** Uncompressed tar bytes; estimated as 4× when the server ignored the range request. */
  readonly unpacked: number;
  readonly unpackedEstimated: boolean;
}

const ACCEPT_CORGI = 'application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*';

export function packumentUrl(registry: string, name: string): string {
  return `${registry}${name.startsWith('@') ? name.replace('/', '%2f') : encodeURIComponent(name)}`;
}

/**
 * A registry client for one resolution: memoises packuments, shares one deadline. With `access`,
 * each package is fetched from its scope's registry with the credentials npm would send.
 */
export class RegistryClient {
  private readonly packuments = new Map<string, Promise<Packument>>();
  requests = 0;

  constructor(
    readonly registry: string,
    private readonly fetchImpl: typeof fetch,
    private readonly signal: AbortSignal,
    private readonly access?: RegistryAccess,
  ) {}

  /** The registry `name` is fetched from, ending in `/`. */
  registryFor(name: string): string {
    return this.access?.registryFor(name) ?? this.registry;
  }

  packument(name: string): Promise<Packument> {
    let p = this.packuments.get(name);
    if (!p) {
      p = this.json<Packument>(packumentUrl(this.registryFor(name), name), ACCEPT_CORGI, name);
      this.packuments.set(name, p);
    }
    return p;
  }

  /** `/<name>/<version or tag>`: one small document. */
  versionDoc(name: string, versionOrTag: string): Promise<VersionDoc> {
    return this.json<VersionDoc>(
      `${packumentUrl(this.registryFor(name), name)}/${encodeURIComponent(versionOrTag)}`,
      'application/json',
      name,
    );
  }

  private request(url: string, headers: Record<string, string>, name?: string): Promise<Response> {
    const plain = withoutUserInfo(url);
    const auth = this.access?.authFor(url, name)?.header ?? plain.basic;
    return this.fetchImpl(plain.url, {
      signal: this.signal,
      headers: auth ? { ...headers, authorization: auth } : headers,
    });
  }

  async tarballSize(url: string, name?: string): Promise<TarballSize> {
    this.requests++;
    const res = await this.request(url, { range: 'bytes=-4' }, name);
    try {
      if (res.status === 206) {
        const total = /\/(\d+)\s*$/.exec(res.headers.get('content-range') ?? '');
        const tail = Buffer.from(await res.arrayBuffer());
        if (total && tail.length === 4) {
          return { size: Number(total[1]), unpacked: tail.readUInt32LE(0), unpackedEstimated: false };
        }
      }
      if (res.ok) {
        const len = Number(res.headers.get('content-length'));
        if (Number.isFinite(len) && len > 0) return { size: len, unpacked: len * 4, unpackedEstimated: true };
      }
      throw new RegistryHttpError(res.status, url);
    } finally {
      await res.body?.cancel().catch(() => undefined);
    }
  }

  private async json<T>(url: string, accept: string, name?: string): Promise<T> {
    this.requests++;
    const res = await this.request(url, { accept }, name);
    if (!res.ok) {
      await res.body?.cancel().catch(() => undefined);
      throw new RegistryHttpError(res.status, url);
    }
    return (await res.json()) as T;
  }
}

/** The tarball URL npm would fetch when a lockfile omits `resolved`. */
export function defaultTarballUrl(registry: string, name: string, version: string): string {
  const base = name.startsWith('@') ? name.slice(name.indexOf('/') + 1) : name;
  return `${registry}${name}/-/${base}-${version}.tgz`;
}
