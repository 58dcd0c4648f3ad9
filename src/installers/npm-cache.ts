/**
 * What the local npm cache already holds. npm's cache (cacache) stores a tarball's bytes under a
 * path computed from its integrity hash, so "is this tarball cached?" is one stat, no index read:
 * `<cache>/_cacache/content-v2/<algo>/<hex[0:2]>/<hex[2:4]>/<hex[4:]>` (pacote reads a tarball of
 * known integrity from there, by digest). A tarball without an integrity is found the way
 * make-fetch-happen finds it: the cacache index entry `make-fetch-happen:request-cache:<url>`.
 */
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

interface CacacheInfo {
  readonly integrity: string;
  readonly path: string;
  readonly size?: number;
}
interface Cacache {
  readonly get: {
    info(cache: string, key: string): Promise<CacacheInfo | null>;
    hasContent(cache: string, integrity: string): Promise<{ size?: number } | false>;
  };
}

let cacacheModule: Cacache | undefined;
function cacache(): Cacache {
  cacacheModule ??= createRequire(import.meta.url)('cacache') as Cacache;
  return cacacheModule;
}

/** make-fetch-happen's cache key of a URL (url.format without auth and fragment). */
export function requestCacheKey(url: string): string {
  const u = new URL(url);
  u.username = '';
  u.password = '';
  u.hash = '';
  return `make-fetch-happen:request-cache:${u.toString()}`;
}

/** A tarball in the cache by digest (integrity), else by its URL's index entry. */
export async function cachedTarballAsync(
  cacheDir: string | undefined,
  integrity: string | undefined,
  url: string | undefined,
): Promise<CachedTarball | undefined> {
  const byDigest = cachedTarball(cacheDir, integrity);
  if (byDigest || !cacheDir || !url || !/^https?:/.test(url)) return byDigest;
  try {
    const dir = join(cacheDir, '_cacache');
    const info = await cacache().get.info(dir, requestCacheKey(url));
    if (!info) return undefined;
    const has = await cacache().get.hasContent(dir, info.integrity);
    if (!has) return undefined;
    const size = statSync(info.path).size;
    return { path: info.path, size, ...(gzipTrailer(info.path, size) ?? {}) };
  } catch {
    return undefined;
  }
}

export interface CachedTarball {
  readonly path: string;
  /** Compressed bytes. */
  readonly size: number;
  /** Uncompressed tar bytes from the gzip trailer (mod 2^32), when the file is gzip. */
  readonly unpacked?: number;
}

/** The content path of an SRI integrity string (`sha512-<base64>`); the first hash that parses. */
export function cacachePaths(cacheDir: string, integrity: string): string[] {
  const out: string[] = [];
  for (const part of integrity.trim().split(/\s+/)) {
    const m = /^(sha512|sha384|sha256|sha1)-([A-Za-z0-9+/=]+)(\?.*)?$/.exec(part);
    if (!m) continue;
    const hex = Buffer.from(m[2] as string, 'base64').toString('hex');
    if (hex.length < 8) continue;
    out.push(
      join(
        cacheDir,
        '_cacache',
        'content-v2',
        m[1] as string,
        hex.slice(0, 2),
        hex.slice(2, 4),
        hex.slice(4),
      ),
    );
  }
  return out;
}

export function cachedTarball(
  cacheDir: string | undefined,
  integrity: string | undefined,
): CachedTarball | undefined {
  if (!cacheDir || !integrity) return undefined;
  for (const path of cacachePaths(cacheDir, integrity)) {
    try {
      const st = statSync(path);
      if (!st.isFile()) continue;
      return { path, size: st.size, ...(gzipTrailer(path, st.size) ?? {}) };
    } catch {
      continue;
    }
  }
  return undefined;
}

/** The uncompressed size a gzip file records in its last 4 bytes (little endian, mod 2^32). */
export function gzipTrailer(path: string, size: number): { unpacked: number } | undefined {
  if (size < 18) return undefined;
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const head = Buffer.alloc(2);
    readSync(fd, head, 0, 2, 0);
    if (head[0] !== 0x1f || head[1] !== 0x8b) return undefined;
    const tail = Buffer.alloc(4);
    readSync(fd, tail, 0, 4, size - 4);
    return { unpacked: tail.readUInt32LE(0) };
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
