/**
 * The npm tree walk against a local HTTP server laid out like the registry (packuments, version
 * documents, tarballs that honour Range requests): version resolution, platform filtering, sizes
 * from gzip trailers, the npm cache, the fan-out bound and the deadline. No network needed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { cacachePaths } from '../../src/installers/npm-cache.js';
import { parseInstall } from '../../src/installers/index.js';
import { walkNpmTree } from '../../src/installers/npm-tree.js';
import type { MetadataContext } from '../../src/installers/types.js';
import { addTarball, registryContext, startRegistry, type TestRegistry } from './registry-server.js';

const tarballs = new Map<string, Buffer>();
const tarball = (name: string, version: string, unpacked: number) =>
  addTarball(tarballs, name, version, unpacked);

const packuments: Record<string, object> = {
  app: {
    name: 'app',
    'dist-tags': { latest: '1.0.0' },
    versions: {
      '1.0.0': {
        name: 'app',
        version: '1.0.0',
        dependencies: { lib: '^1.0.0', nat: '~2.0.0' },
        optionalDependencies: { 'only-linux': '1', 'only-win': '1' },
        rrm: { requests: { memory: '3Gi' }, note: 'from the package' },
        dist: tarball('app', '1.0.0', 10_000),
      },
    },
  },
  lib: {
    name: 'lib',
    'dist-tags': { latest: '2.0.0' },
    versions: {
      '1.0.0': { name: 'lib', version: '1.0.0', dist: tarball('lib', '1.0.0', 1000) },
      '1.5.0': { name: 'lib', version: '1.5.0', dist: tarball('lib', '1.5.0', 50_000) },
      '2.0.0': { name: 'lib', version: '2.0.0', dist: tarball('lib', '2.0.0', 3000) },
    },
  },
  nat: {
    name: 'nat',
    'dist-tags': { latest: '2.0.3' },
    versions: {
      '2.0.3': {
        name: 'nat',
        version: '2.0.3',
        gypfile: true,
        scripts: { install: 'node-gyp rebuild' },
        dependencies: { lib: '^1.2.0' },
        dist: tarball('nat', '2.0.3', 200_000),
      },
    },
  },
  'only-linux': {
    name: 'only-linux',
    'dist-tags': { latest: '1.0.0' },
    versions: {
      '1.0.0': {
        name: 'only-linux',
        version: '1.0.0',
        os: ['linux'],
        cpu: ['x64', 'arm64'],
        dist: tarball('only-linux', '1.0.0', 4000),
      },
    },
  },
  'only-win': {
    name: 'only-win',
    'dist-tags': { latest: '1.0.0' },
    versions: {
      '1.0.0': {
        name: 'only-win',
        version: '1.0.0',
        os: ['win32'],
        dist: tarball('only-win', '1.0.0', 4000),
      },
    },
  },
  slow: {
    name: 'slow',
    'dist-tags': { latest: '1.0.0' },
    versions: { '1.0.0': { name: 'slow', version: '1.0.0' } },
  },
};

function registry(t: { after: (fn: () => void) => void }): Promise<TestRegistry> {
  return startRegistry(t, { packuments, tarballs, slow: { slow: 2000 } });
}

function ctx(url: string, extra: Partial<MetadataContext> = {}): MetadataContext {
  return registryContext(url, {
    cwd: mkdtempSync(join(tmpdir(), 'rrm-npm-cwd-')),
    npmCacheDir: mkdtempSync(join(tmpdir(), 'rrm-npm-cache-')),
    // npm's own configuration: none (no .npmrc, no npm_config_*), so the test's registry is the one.
    env: { HOME: mkdtempSync(join(tmpdir(), 'rrm-npm-home-')), PREFIX: '/nonexistent' },
    ...extra,
  });
}

test('the walk resolves ranges breadth-first, skips other platforms, sizes tarballs from their gzip trailers', async (t) => {
  const { url, hits } = await registry(t);
  const tree = await walkNpmTree([{ name: 'app', range: 'latest', root: true }], {
    registry: url,
    fetch: globalThis.fetch,
    timeoutMs: 3000,
    maxPackages: 100,
    concurrency: 4,
    platform: 'linux',
    arch: 'x64',
  });
  const got = Object.fromEntries(tree.packages.map((p) => [p.name, p]));
  assert.deepEqual(Object.keys(got).sort(), ['app', 'lib', 'nat', 'only-linux']);
  assert.equal(got.lib?.version, '1.5.0', 'the highest version matching ^1.0.0 and ^1.2.0, deduplicated');
  assert.equal(got.nat?.kind, 'native');
  assert.equal(got.app?.kind, 'plain');
  assert.equal(got.lib?.unpacked, 50_000, 'the unpacked size from the gzip trailer');
  assert.equal(got.lib?.size, tarballs.get('/lib/-/lib-1.5.0.tgz')?.length);
  assert.equal(tree.skippedPlatform, 1);
  assert.deepEqual(tree.roots, [{ name: 'app', version: '1.0.0' }]);
  assert.ok(hits.includes('GET /app/latest'), 'a tag of a named package is one small version document');
  assert.ok(
    hits.some((h) => h === 'GET /lib/-/lib-1.5.0.tgz bytes=-4'),
    'tarballs are sized by a 4-byte range request',
  );
  assert.ok(!hits.some((h) => /\.tgz$/.test(h)), 'no tarball is downloaded whole');
});

test('tarballs already in the npm cache cost no download and no request', async (t) => {
  const { url, hits } = await registry(t);
  const c = ctx(url);
  const lib = (packuments.lib as { versions: Record<string, { dist: { integrity: string } }> }).versions[
    '1.5.0'
  ]!;
  const [path] = cacachePaths(c.npmCacheDir as string, lib.dist.integrity);
  mkdirSync(dirname(path!), { recursive: true });
  writeFileSync(path!, tarballs.get('/lib/-/lib-1.5.0.tgz')!);
  const intent = parseInstall(['npm', 'install', 'app'])!;
  const meta = await intent.adapter.metadata(intent.intent, c);
  const part = meta.parts.find((p) => p.source.provenance === 'metadata')!;
  const libSize = tarballs.get('/lib/-/lib-1.5.0.tgz')!.length;
  const expected = ['app', 'nat', 'only-linux'].reduce((a, n) => {
    const v = n === 'nat' ? '2.0.3' : '1.0.0';
    return a + tarballs.get(`/${n}/-/${n}-${v}.tgz`)!.length;
  }, 0);
  assert.ok(!hits.some((h) => h.startsWith('GET /lib/-/')), 'the cached tarball was not asked for');
  assert.equal(part.estimates?.downloadBytes, expected, `download excludes the cached ${libSize} bytes`);
  assert.match(part.source.note ?? '', /1 tarballs cached/);
  assert.match(part.source.note ?? '', /tree resolved by @npmcli\/arborist/, part.source.note);
  assert.equal(part.requests.cpu, 1000);
  assert.ok((part.requests.memory ?? 0) > 96 * 2 ** 20 * 1.1, 'a native build asks for compiler memory');
  assert.ok(
    (part.requests.disk ?? 0) >= 10_000 + 50_000 + 200_000 + 4000,
    'disk covers every unpacked package',
  );
  const manifest = meta.parts.find((p) => p.source.provenance === 'manifest');
  assert.equal(manifest?.requests.memory, 3 * 2 ** 30, "the package's own rrm block is a manifest");
  assert.deepEqual(meta.packages, [{ manager: 'npm', name: 'app', version: '1.0.0' }]);
});

test('the fan-out bound and the deadline stop the walk and say so', async (t) => {
  const { url } = await registry(t);
  const bounded = await walkNpmTree([{ name: 'app', range: '1.0.0', root: true }], {
    registry: url,
    fetch: globalThis.fetch,
    timeoutMs: 3000,
    maxPackages: 2,
    concurrency: 1,
  });
  assert.ok(bounded.packages.length <= 2);
  assert.ok(bounded.unexplored > 0);
  assert.match(bounded.notes.join(' '), /bound of 2 packages/);
  const started = Date.now();
  const late = await walkNpmTree(
    [
      { name: 'slow', range: '^1', root: true },
      { name: 'lib', range: '^1', root: true },
    ],
    {
      registry: url,
      fetch: globalThis.fetch,
      timeoutMs: 300,
      maxPackages: 100,
      concurrency: 4,
    },
  );
  assert.ok(Date.now() - started < 1500, `the deadline holds (${Date.now() - started} ms)`);
  assert.equal(late.timedOut, true);
  assert.ok(late.failed.includes('slow@^1'));
  assert.ok(
    late.packages.some((p) => p.name === 'lib'),
    'what answered in time is kept',
  );
});

test('a project install reads the lockfile; packages already installed cost nothing', async (t) => {
  const { url } = await registry(t);
  const c = ctx(url);
  const dir = c.cwd;
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({ name: 'proj', version: '0.1.0', dependencies: { lib: '^1' } }),
  );
  writeFileSync(
    join(dir, 'package-lock.json'),
    JSON.stringify({
      lockfileVersion: 3,
      packages: {
        '': { name: 'proj' },
        'node_modules/lib': { version: '1.5.0', integrity: 'sha512-AAAA' },
        'node_modules/nat': { version: '2.0.3', hasInstallScript: true },
        'node_modules/only-win': { version: '1.0.0', os: ['win32'] },
      },
    }),
  );
  mkdirSync(join(dir, 'node_modules', 'lib'), { recursive: true });
  writeFileSync(
    join(dir, 'node_modules', 'lib', 'package.json'),
    JSON.stringify({ name: 'lib', version: '1.5.0' }),
  );
  const p = parseInstall(['npm', 'ci'])!;
  const meta = await p.adapter.metadata(p.intent, c);
  const part = meta.parts.find((x) => x.source.provenance === 'metadata')!;
  assert.match(part.source.note ?? '', /1 of 2 packages to install \(1 for other platforms skipped\)/);
  assert.match(part.source.note ?? '', /1 native build/);
  assert.deepEqual(meta.packages, [{ manager: 'npm', name: 'project:proj', version: '0.1.0' }]);
  assert.ok(meta.notes.some((n) => /package-lock.json: 3 packages/.test(n)));
});

test('an unreachable registry gives no metadata part, quickly', async () => {
  const p = parseInstall(['npm', 'install', 'x'])!;
  const started = Date.now();
  const meta = await p.adapter.metadata(p.intent, ctx('http://127.0.0.1:9/', { timeoutMs: 500 }));
  assert.ok(Date.now() - started < 1500);
  assert.deepEqual(meta.parts, []);
  assert.deepEqual(meta.packages, [{ manager: 'npm', name: 'x' }]);
});
