/**
 * A profile service: an HTTP endpoint that answers what an install needs, shared by a fleet.
 *
 *   GET <url>/v1/profile?package=npm:sharp@0.33.5&package=npm:x&instanceClass=2c-24Gi
 *   200 { "requests": {...}, "limits": {...}, "expected": {...}, "confidence": 0.7, "note": "..." }
 *   404 or 204: no profile for these packages
 *
 * Answers (and "no profile") are cached in a file for `ttlMs`. A service that does not answer in
 * `timeoutMs` (or refuses the connection, or answers 5xx) is marked dead for `deadForMs` in the same
 * file, so every rrm process after it skips it at no cost: a dead service costs one short timeout.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { PackageRef } from '../model/reservation.js';
import { parseProfileSpec, type ProfileSpec } from './profile-spec.js';
import type { ProfilePart } from './profile.js';

export interface ServiceOptions {
  readonly url: string;
  readonly timeoutMs: number;
  /** The cache file; absent = no cache across processes. */
  readonly cachePath?: string;
  readonly ttlMs: number;
  readonly deadForMs: number;
  readonly fetch: typeof fetch;
}

interface CacheFile {
  deadUntil?: number;
  deadReason?: string;
  entries: Record<string, { at: number; spec: unknown | null }>;
}

function readCache(path: string | undefined): CacheFile {
  if (!path) return { entries: {} };
  try {
    const c = JSON.parse(readFileSync(path, 'utf8')) as CacheFile;
    return { ...c, entries: c.entries ?? {} };
  } catch {
    return { entries: {} };
  }
}

function writeCache(path: string | undefined, c: CacheFile, now: number, ttlMs: number): void {
  if (!path) return;
  try {
    for (const [k, e] of Object.entries(c.entries)) if (now - e.at > ttlMs) delete c.entries[k];
    mkdirSync(dirname(path), { recursive: true });
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(c));
    renameSync(tmp, path);
  } catch {
    // a cache that cannot be written costs a lookup next time, nothing more
  }
}

export function serviceUrl(base: string, packages: readonly PackageRef[], instanceClass: string): string {
  const u = new URL(`${base.replace(/\/+$/, '')}/v1/profile`);
  for (const p of packages)
    u.searchParams.append('package', `${p.manager}:${p.name}${p.version ? `@${p.version}` : ''}`);
  u.searchParams.set('instanceClass', instanceClass);
  return u.toString();
}

export async function servicePart(
  packages: readonly PackageRef[],
  instanceClass: string,
  now: number,
  o: ServiceOptions,
): Promise<{ part?: ProfilePart; note: string }> {
  if (packages.length === 0) return { note: 'no packages to ask about' };
  const cache = readCache(o.cachePath);
  if (cache.deadUntil !== undefined && cache.deadUntil > now)
    return {
      note: `profile service skipped: ${cache.deadReason ?? 'did not answer'} (until ${new Date(cache.deadUntil).toISOString()})`,
    };
  const url = serviceUrl(o.url, packages, instanceClass);
  const hit = cache.entries[url];
  let raw: unknown | null;
  let cached = false;
  if (hit && now - hit.at <= o.ttlMs) {
    raw = hit.spec;
    cached = true;
  } else {
    try {
      const res = await o.fetch(url, {
        signal: AbortSignal.timeout(o.timeoutMs),
        headers: { accept: 'application/json' },
      });
      if (res.status === 404 || res.status === 204) {
        await res.body?.cancel().catch(() => undefined);
        raw = null;
      } else if (!res.ok) {
        await res.body?.cancel().catch(() => undefined);
        throw new Error(`HTTP ${res.status}`);
      } else raw = await res.json();
      cache.entries[url] = { at: now, spec: raw };
      delete cache.deadUntil;
      delete cache.deadReason;
      writeCache(o.cachePath, cache, now, o.ttlMs);
    } catch (e) {
      const why =
        e instanceof Error
          ? e.name === 'TimeoutError'
            ? `no answer in ${o.timeoutMs} ms`
            : e.message
          : String(e);
      cache.deadUntil = now + o.deadForMs;
      cache.deadReason = why;
      writeCache(o.cachePath, cache, now, o.ttlMs);
      return { note: `profile service ${o.url}: ${why}` };
    }
  }
  if (raw === null) return { note: `profile service: no profile${cached ? ' (cached)' : ''}` };
  let spec: ProfileSpec;
  try {
    spec = parseProfileSpec(raw, 'profile service answer');
  } catch (e) {
    return { note: e instanceof Error ? e.message : String(e) };
  }
  return {
    part: {
      requests: spec.requests,
      limits: spec.limits,
      estimates: spec.estimates,
      source: {
        provenance: 'service',
        confidence: spec.confidence ?? 0.6,
        note: `profile service ${o.url}${cached ? ' (cached)' : ''}${spec.note ? `: ${spec.note}` : ''}`,
      },
    },
    note: 'profile service answered',
  };
}
