/**
 * The npm registry's JSON, read the way npm reads it: a packument per name (abbreviated when the
 * registry offers it), a version document when the packument lacks scripts, and a tarball's size
 * from a 4-byte range request (the compressed size from Content-Range, the unpacked size from the
 * gzip trailer) so no tarball is downloaded to size it.
 */

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

/** A registry client for one resolution: memoises packuments, shares one deadline. */
export class RegistryClient {
  private readonly packuments = new Map<string, Promise<Packument>>();
  requests = 0;

  constructor(
    readonly registry: string,
    private readonly fetchImpl: typeof fetch,
    private readonly signal: AbortSignal,
  ) {}

  packument(name: string): Promise<Packument> {
    let p = this.packuments.get(name);
    if (!p) {
      p = this.json<Packument>(packumentUrl(this.registry, name), ACCEPT_CORGI);
      this.packuments.set(name, p);
    }
    return p;
  }

  /** `/<name>/<version or tag>`: one small document. */
  versionDoc(name: string, versionOrTag: string): Promise<VersionDoc> {
    return this.json<VersionDoc>(
      `${packumentUrl(this.registry, name)}/${encodeURIComponent(versionOrTag)}`,
      'application/json',
    );
  }

  async tarballSize(url: string): Promise<TarballSize> {
    this.requests++;
    const res = await this.fetchImpl(url, { signal: this.signal, headers: { range: 'bytes=-4' } });
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
      throw new Error(`${url}: HTTP ${res.status}`);
    } finally {
      await res.body?.cancel().catch(() => undefined);
    }
  }

  private async json<T>(url: string, accept: string): Promise<T> {
    this.requests++;
    const res = await this.fetchImpl(url, { signal: this.signal, headers: { accept } });
    if (!res.ok) {
      await res.body?.cancel().catch(() => undefined);
      throw new Error(`${url}: HTTP ${res.status}`);
    }
    return (await res.json()) as T;
  }
}

/** The tarball URL npm would fetch when a lockfile omits `resolved`. */
export function defaultTarballUrl(registry: string, name: string, version: string): string {
  const base = name.startsWith('@') ? name.slice(name.indexOf('/') + 1) : name;
  return `${registry}${name}/-/${base}-${version}.tgz`;
}
