/**
 * A local HTTP server on loopback laid out like the npm registry: packuments at `/<name>` (scoped
 * names as `/@scope%2fname` or `/@scope/name`), version documents at `/<name>/<version or tag>`,
 * tarballs at `/<name>/-/<base>-<version>.tgz` honouring `Range: bytes=-N`. `REG/` in a document is
 * replaced by the server's own URL. With `bearer`, every request under a scope must carry
 * `Authorization: Bearer <token>` or gets 401. Hits are recorded without credential values.
 */
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { execArgv } from '../../src/installers/index.js';
import type { MetadataContext } from '../../src/installers/types.js';

/** A metadata context against a test registry: nothing reachable but it, no pip index, no apt. */
export function registryContext(
  registry: string,
  over: Partial<MetadataContext> & Pick<MetadataContext, 'cwd' | 'npmCacheDir' | 'env'>,
): MetadataContext {
  return {
    registry,
    timeoutMs: 3000,
    localTimeoutMs: 5000,
    npmMaxPackages: 100,
    npmConcurrency: 4,
    pipIndexUrl: 'http://127.0.0.1:9/simple/',
    aptArchivesDir: '/nonexistent',
    fetch: globalThis.fetch,
    exec: execArgv,
    ...over,
  };
}

export type Packuments = Record<string, object>;

export interface Dist {
  readonly tarball: string;
  readonly integrity: string;
}

/** A gzip tarball of `unpacked` bytes, registered under its registry path; the `dist` a packument gives it. */
export function addTarball(
  tarballs: Map<string, Buffer>,
  name: string,
  version: string,
  unpacked: number,
): Dist {
  const body = gzipSync(Buffer.alloc(unpacked, 7));
  const base = name.startsWith('@') ? name.slice(name.indexOf('/') + 1) : name;
  const path = `/${name}/-/${base}-${version}.tgz`;
  tarballs.set(path, body);
  return { tarball: `REG${path}`, integrity: `sha512-${createHash('sha512').update(body).digest('base64')}` };
}

export interface RegistryOptions {
  readonly packuments: Packuments;
  readonly tarballs: ReadonlyMap<string, Buffer>;
  /** Requests under `scope` (`@acme`) need this bearer token. */
  readonly bearer?: { readonly scope: string; readonly token: string };
  /** Names answered after this delay (ms), to test deadlines. */
  readonly slow?: Readonly<Record<string, number>>;
}

export interface TestRegistry {
  readonly url: string;
  readonly port: number;
  /** `GET /path[ range][ auth=none|ok|bad]`: never the header's value. */
  readonly hits: string[];
  /** Every Authorization header value received, to check where credentials went (tests only). */
  readonly authorizations: string[];
  readonly server: Server;
}

export async function startRegistry(
  t: { after: (fn: () => void) => void },
  opts: RegistryOptions,
): Promise<TestRegistry> {
  const hits: string[] = [];
  const authorizations: string[] = [];
  let url = '';
  const server = createServer((req, res) => {
    const path = decodeURIComponent((req.url ?? '').replace(/\?.*$/, ''));
    const auth = req.headers.authorization;
    if (auth) authorizations.push(auth);
    const scoped = opts.bearer !== undefined && path.startsWith(`/${opts.bearer.scope}/`);
    const authOk = scoped ? auth === `Bearer ${opts.bearer?.token}` : true;
    hits.push(
      `${req.method} ${path}${req.headers.range ? ` ${req.headers.range}` : ''}${
        auth === undefined ? '' : authOk && scoped ? ' auth=ok' : scoped ? ' auth=bad' : ' auth=sent'
      }`,
    );
    if (!authOk) {
      res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer realm="test"' });
      res.end(JSON.stringify({ error: 'authentication required' }));
      return;
    }
    const tgz = opts.tarballs.get(path);
    if (tgz) {
      const m = /^bytes=-(\d+)$/.exec(req.headers.range ?? '');
      if (m) {
        const n = Number(m[1]);
        res.writeHead(206, {
          'content-range': `bytes ${tgz.length - n}-${tgz.length - 1}/${tgz.length}`,
          'content-length': n,
        });
        res.end(tgz.subarray(tgz.length - n));
      } else {
        res.writeHead(200, { 'content-length': tgz.length, 'content-type': 'application/octet-stream' });
        res.end(tgz);
      }
      return;
    }
    const [, name, version] = /^\/((?:@[^/]+\/)?[^/@]+)(?:\/([^/]+))?$/.exec(path) ?? [];
    const doc = name
      ? (opts.packuments[name] as
          { versions: Record<string, object>; 'dist-tags': Record<string, string> } | undefined)
      : undefined;
    const send = (code: number, body: unknown): void => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body).replaceAll('REG/', url));
    };
    const answer = (): void => {
      if (!doc) return send(404, { error: 'not found' });
      if (version === undefined) return send(200, doc);
      const v = doc['dist-tags'][version] ?? version;
      return doc.versions[v] ? send(200, doc.versions[v]) : send(404, { error: 'no such version' });
    };
    const delay = name ? opts.slow?.[name] : undefined;
    if (delay !== undefined) setTimeout(answer, delay).unref();
    else answer();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  const port = (server.address() as AddressInfo).port;
  url = `http://127.0.0.1:${port}/`;
  return { url, port, hits, authorizations, server };
}
