/**
 * The resolver chain end to end on real components: a local registry server, profile files in a
 * temporary directory, a profile service on a local socket, a real history file. Each layer answers
 * some dimensions; the first answer per dimension wins and keeps its provenance.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { execArgv } from '../../src/installers/index.js';
import type { Exec, MetadataContext } from '../../src/installers/types.js';
import { HistoryStore } from '../../src/profiles/history.js';
import { DEFAULT_RECOMMEND } from '../../src/profiles/recommend.js';
import { combine } from '../../src/profiles/profile.js';
import { resolveContext, resolveInstallProfile, type ResolveContext } from '../../src/profiles/resolve.js';

const MiB = 2 ** 20;
const GiB = 2 ** 30;
/** What the history recommendation multiplies a measured value by (its safety margin). */
const M = 1 + DEFAULT_RECOMMEND.margin;

async function serve(
  t: { after: (fn: () => void) => void },
  handler: (req: IncomingMessage, res: ServerResponse, base: string) => void,
): Promise<string> {
  let base = '';
  const server = createServer((req, res) => handler(req, res, base));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  return base;
}

const TGZ = gzipSync(Buffer.alloc(300_000, 1));

async function registry(t: { after: (fn: () => void) => void }): Promise<string> {
  return serve(t, (req, res, base) => {
    if (req.url === '/pkg/-/pkg-1.0.0.tgz') {
      res.writeHead(206, { 'content-range': `bytes ${TGZ.length - 4}-${TGZ.length - 1}/${TGZ.length}` });
      return res.end(TGZ.subarray(TGZ.length - 4));
    }
    if (req.url === '/own/latest') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(
        JSON.stringify({ name: 'own', version: '3.0.0', rrm: { requests: { memory: '9Gi', cpu: '3' } } }),
      );
    }
    if (req.url === '/pkg/latest' || req.url === '/pkg/1.0.0') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(
        JSON.stringify({ name: 'pkg', version: '1.0.0', dist: { tarball: `${base}pkg/-/pkg-1.0.0.tgz` } }),
      );
    }
    res.writeHead(404);
    res.end('{}');
  });
}

function metadata(registryUrl: string, cwd: string, exec: Exec = execArgv): MetadataContext {
  return {
    registry: registryUrl,
    timeoutMs: 2000,
    localTimeoutMs: 5000,
    cwd,
    npmCacheDir: join(cwd, '.npm-cache'),
    npmMaxPackages: 50,
    npmConcurrency: 4,
    pipIndexUrl: 'http://127.0.0.1:9/simple/',
    aptArchivesDir: '/nonexistent',
    fetch: globalThis.fetch,
    exec,
  };
}

test('the chain: flags → manifest → service → history → metadata → default, first answer per dimension', async (t) => {
  const reg = await registry(t);
  const dir = mkdtempSync(join(tmpdir(), 'rrm-chain-'));
  const profiles = join(dir, 'profiles.d');
  mkdirSync(profiles);
  writeFileSync(
    join(profiles, '10-site.json'),
    JSON.stringify({
      profiles: [{ match: 'npm:pkg@^1', requests: { cpu: '4', memory: '2Gi' }, note: 'site profile' }],
    }),
  );
  let serviceHits = 0;
  const service = await serve(t, (req, res) => {
    serviceHits++;
    assert.match(req.url ?? '', /\/v1\/profile\?package=npm%3Apkg%401\.0\.0&instanceClass=test-class/);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        requests: { memory: '1Gi', disk: '5Gi' },
        expected: { wall: '42s' },
        confidence: 0.7,
      }),
    );
  });
  const history = HistoryStore.open(dir);
  const now = Date.now();
  for (let i = 0; i < 3; i++)
    history.record({
      packages: [{ manager: 'npm', name: 'pkg', version: '1.0.0' }],
      requests: {},
      measured: {
        peakMemoryBytes: 100 * MiB,
        cpuUsageUsec: 1_000_000,
        wallMs: 2000,
        exitCode: 0,
        diskBytes: 10 * MiB,
      },
      instanceClass: 'test-class',
      at: now,
    });
  const ctx: ResolveContext = {
    metadata: metadata(reg, dir),
    profileDirs: [profiles],
    service: {
      url: service,
      timeoutMs: 1000,
      cachePath: join(dir, 'svc.json'),
      ttlMs: 60_000,
      deadForMs: 60_000,
      fetch: globalThis.fetch,
    },
    history,
    instanceClass: 'test-class',
    now,
  };
  const r = await resolveInstallProfile(['npm', 'install', 'pkg'], { requests: { cpu: 250 } }, ctx);
  const src = (d: string): string | undefined => r.profile.sources[d]?.provenance;
  assert.equal(r.profile.requests.cpu, 250);
  assert.equal(src('cpu'), 'flag');
  assert.equal(r.profile.requests.memory, 2 * GiB);
  assert.equal(src('memory'), 'manifest');
  assert.match(r.profile.sources.memory?.note ?? '', /10-site\.json: pkg by npm:pkg@\^1 \(site profile\)/);
  assert.equal(r.profile.requests.disk, 5 * GiB);
  assert.equal(src('disk'), 'service');
  assert.equal(r.profile.estimates?.wallMs, 42_000, 'service before history for estimates too');
  assert.equal(r.profile.estimateSources?.cpuMs?.provenance, 'history');
  assert.equal(src('network'), 'metadata', 'only metadata knew the download');
  assert.deepEqual(r.packages, [{ manager: 'npm', name: 'pkg', version: '1.0.0' }]);
  // A cached service answer: no second request.
  await resolveInstallProfile(['npm', 'install', 'pkg'], { requests: {} }, ctx);
  assert.equal(serviceHits, 1);
  // Without the manifest and the service, history answers memory with its percentile plus margin.
  const r2 = await resolveInstallProfile(
    ['npm', 'install', 'pkg'],
    { requests: {} },
    { ...ctx, profileDirs: [], service: undefined },
  );
  assert.equal(r2.profile.sources.memory?.provenance, 'history');
  assert.equal(r2.profile.requests.memory, Math.ceil(100 * MiB * M));
  assert.equal(r2.profile.requests.cpu, Math.ceil(500 * M));
  assert.equal(r2.profile.limits?.memory, Math.ceil(Math.ceil(100 * MiB * M) * 1.25));
  assert.equal(r2.profile.limitSources?.memory?.provenance, 'history');
  // Cold: metadata only, then defaults.
  const cold = await resolveInstallProfile(
    ['npm', 'install', 'pkg'],
    { requests: {} },
    { ...ctx, profileDirs: [], service: undefined, history: undefined },
  );
  assert.equal(cold.profile.sources.memory?.provenance, 'metadata');
  assert.ok((cold.profile.requests.disk ?? 0) >= 300_000);
  history.close();
});

test("a site profile comes before a package's own rrm block; the block answers what the site left open", async (t) => {
  const reg = await registry(t);
  const dir = mkdtempSync(join(tmpdir(), 'rrm-own-'));
  writeFileSync(join(dir, 'site.json'), JSON.stringify({ 'npm:own': { requests: { memory: '1Gi' } } }));
  const r = await resolveInstallProfile(
    ['npm', 'install', 'own'],
    { requests: {} },
    {
      metadata: metadata(reg, dir),
      profileDirs: [],
      instanceClass: 'c',
      now: Date.now(),
    },
  );
  assert.equal(r.profile.requests.memory, 9 * GiB, 'without a site profile the package says 9Gi');
  const site = await resolveInstallProfile(
    ['npm', 'install', 'own'],
    { requests: {} },
    {
      metadata: metadata(reg, mkdtempSync(join(tmpdir(), 'rrm-own-cwd-'))),
      profileDirs: [dir],
      instanceClass: 'c',
      now: Date.now(),
    },
  );
  assert.equal(site.profile.requests.memory, GiB);
  assert.match(site.profile.sources.memory?.note ?? '', /site\.json/);
  assert.equal(site.profile.requests.cpu, 3000);
  assert.match(site.profile.sources.cpu?.note ?? '', /the rrm block of own@3\.0\.0/);
});

test('a dead profile service costs one short timeout, then nothing until it is retried', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rrm-dead-'));
  const hanging = await serve(t, () => {
    // never answers
  });
  const ctx: ResolveContext = {
    metadata: metadata('http://127.0.0.1:9/', dir),
    profileDirs: [],
    service: {
      url: hanging,
      timeoutMs: 300,
      cachePath: join(dir, 'svc.json'),
      ttlMs: 60_000,
      deadForMs: 60_000,
      fetch: globalThis.fetch,
    },
    instanceClass: 'c',
    now: Date.now(),
    useMetadata: false,
  };
  let started = Date.now();
  const first = await resolveInstallProfile(['npm', 'install', 'x'], { requests: {} }, ctx);
  const firstMs = Date.now() - started;
  assert.ok(firstMs >= 250 && firstMs < 1500, `first: one timeout (${firstMs} ms)`);
  assert.ok(
    first.notes.some((n) => /no answer in 300 ms/.test(n)),
    first.notes.join('; '),
  );
  assert.equal(first.profile.sources.cpu?.provenance, 'default');
  started = Date.now();
  const second = await resolveInstallProfile(['npm', 'install', 'x'], { requests: {} }, ctx);
  assert.ok(Date.now() - started < 100, `second: skipped (${Date.now() - started} ms)`);
  assert.ok(second.notes.some((n) => /profile service skipped/.test(n)));
  const refused = await resolveInstallProfile(
    ['npm', 'install', 'x'],
    { requests: {} },
    {
      ...ctx,
      service: { ...ctx.service!, url: 'http://127.0.0.1:9/', cachePath: join(dir, 'svc2.json') },
    },
  );
  assert.ok(refused.notes.some((n) => /profile service http:\/\/127\.0\.0\.1:9\//.test(n)));
});

test('manifests: the project package.json rrm block and rrm-profiles.json; profile dirs are configurable', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rrm-manifest-'));
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({
      name: 'proj',
      version: '2.0.0',
      rrm: {
        requests: { cpu: '1500m', memory: '3Gi' },
        expected: { wall: '2m' },
        packages: { 'npm:sharp': { requests: { memory: '1500Mi' } } },
      },
    }),
  );
  writeFileSync(
    join(dir, 'rrm-profiles.json'),
    JSON.stringify({
      'apt:*-dkms': { requests: { cpu: '2', memory: '2Gi' } },
      'pip:numpy@1.26': { requests: { memory: '900Mi' } },
    }),
  );
  const base: ResolveContext = {
    metadata: metadata('http://127.0.0.1:9/', dir),
    profileDirs: [],
    instanceClass: 'c',
    now: Date.now(),
    useMetadata: false,
  };
  const ci = await resolveInstallProfile(['npm', 'ci'], { requests: {} }, base);
  assert.equal(ci.profile.requests.memory, 3 * GiB);
  assert.equal(ci.profile.sources.cpu?.provenance, 'manifest');
  assert.equal(ci.profile.estimates?.wallMs, 120_000);
  const sharp = await resolveInstallProfile(['npm', 'install', 'sharp'], { requests: {} }, base);
  assert.equal(sharp.profile.requests.memory, 1500 * MiB);
  assert.equal(sharp.profile.sources.cpu?.provenance, 'default', 'the block names only memory for sharp');
  const dkms = await resolveInstallProfile(['apt-get', 'install', '-y', 'zfs-dkms'], { requests: {} }, base);
  assert.equal(dkms.profile.requests.memory, 2 * GiB);
  assert.equal(dkms.profile.requests['dpkg-lock'], 1);
  assert.equal(dkms.profile.sources['dpkg-lock']?.provenance, 'installer');
  const numpy = await resolveInstallProfile(['pip', 'install', 'numpy==1.26.4'], { requests: {} }, base);
  assert.equal(
    numpy.profile.requests.memory,
    900 * MiB,
    'a pinned version matches pip:numpy@1.26 without metadata',
  );
  const unpinned = await resolveInstallProfile(['pip', 'install', 'numpy'], { requests: {} }, base);
  assert.equal(
    unpinned.profile.sources.memory?.provenance,
    'default',
    'an unknown version does not match a versioned entry',
  );
  const other = join(dir, 'etc');
  mkdirSync(other);
  writeFileSync(join(other, 'a.json'), '{ not json');
  writeFileSync(
    join(other, 'b.json'),
    JSON.stringify({
      profiles: [
        { match: 'pip:NumPy', requests: { memory: '700Mi' } },
        { match: 'pip:x', requests: { memory: '-1' } },
      ],
    }),
  );
  const withDir = await resolveInstallProfile(
    ['pip', 'install', 'numpy'],
    { requests: {} },
    { ...base, profileDirs: [other] },
  );
  assert.equal(withDir.profile.requests.memory, 700 * MiB, 'pip names match normalised');
  assert.ok(
    withDir.notes.some((n) => /a\.json/.test(n)),
    'a bad file is reported',
  );
  assert.ok(
    withDir.notes.some((n) => /is negative/.test(n)),
    'a bad entry is reported',
  );
});

test('apt: the simulation and apt-cache sizes, the dpkg lock, and a DKMS package asks for more', async () => {
  const calls: string[][] = [];
  const exec: Exec = async (argv) => {
    calls.push([...argv]);
    if (argv[0] === 'apt-get')
      return {
        code: 0,
        stderr: '',
        stdout: 'Inst dkms (3.0.10-8 Debian:12 [all])\nInst foo-dkms (1.0-1 Debian:12 [all])\n',
      };
    return {
      code: 0,
      stderr: '',
      stdout: [
        'Package: dkms\nVersion: 3.0.10-8\nInstalled-Size: 400\nArchitecture: all\nSize: 100000\nFilename: pool/d/dkms_3.0.10-8_all.deb\n',
        'Package: foo-dkms\nVersion: 1.0-1\nInstalled-Size: 2048\nArchitecture: all\nDepends: dkms\nSize: 500000\n',
      ].join('\n'),
    };
  };
  const dir = mkdtempSync(join(tmpdir(), 'rrm-apt-'));
  const r = await resolveInstallProfile(
    ['apt-get', 'install', '-y', '--no-install-recommends', 'foo-dkms', '; rm -rf /'],
    { requests: {} },
    {
      metadata: metadata('http://127.0.0.1:9/', dir, exec),
      profileDirs: [],
      instanceClass: 'c',
      now: Date.now(),
    },
  );
  assert.deepEqual(
    calls[0],
    ['apt-get', '-s', '-q', 'install', '--no-install-recommends', 'foo-dkms'],
    'the hostile word never reaches the simulation',
  );
  assert.deepEqual(calls[1], ['apt-cache', 'show', '--no-all-versions', 'dkms=3.0.10-8', 'foo-dkms=1.0-1']);
  assert.equal(r.profile.requests['dpkg-lock'], 1);
  assert.equal(r.profile.requests.cpu, 2000);
  assert.equal(r.profile.requests.memory, 2 * GiB);
  assert.equal(r.profile.requests.disk, (400 + 2048) * 1024 + 600_000);
  assert.equal(r.profile.estimates?.downloadBytes, 600_000);
  assert.match(r.profile.sources.memory?.note ?? '', /maintainer scripts: dkms \(dkms\), foo-dkms \(dkms\)/);
  assert.deepEqual(r.packages, [{ manager: 'apt', name: 'foo-dkms', version: '1.0-1' }]);
  assert.ok(r.notes.some((n) => /"; rm -rf \/" is not a package name/.test(n)));
});

test('what is not an install runs on flags and defaults; resolveContext reads the environment once', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rrm-ctx-'));
  const ctx = resolveContext(
    { npmRegistry: 'http://127.0.0.1:9/', metadataTimeoutMs: 500, stateDir: dir },
    {
      RRM_PROFILE_DIRS: `${dir}/a:${dir}/b`,
      RRM_PROFILE_SERVICE: 'http://127.0.0.1:9',
      RRM_INSTANCE_CLASS: 'big',
      HOME: dir,
    },
    { cwd: dir },
  );
  assert.deepEqual(ctx.profileDirs, [`${dir}/a`, `${dir}/b`]);
  assert.equal(ctx.service?.url, 'http://127.0.0.1:9');
  assert.equal(ctx.instanceClass, 'big');
  assert.equal(ctx.metadata.npmCacheDir, join(dir, '.npm'));
  const r = await resolveInstallProfile(['npm', 'run', 'build'], { requests: { memory: 1 } }, ctx);
  assert.equal(r.intent, null);
  assert.deepEqual(r.packages, []);
  assert.equal(r.profile.sources.cpu?.provenance, 'default');
  assert.equal(r.profile.sources.memory?.provenance, 'flag');
});

test('combine: a weaker source never caps a stronger request; zero is an answer', () => {
  const p = combine([
    { requests: { memory: 2 * GiB }, source: { provenance: 'flag', confidence: 1 } },
    {
      requests: { memory: GiB, cpu: 0 },
      limits: { memory: GiB },
      source: { provenance: 'history', confidence: 0.5 },
    },
    { requests: { cpu: 500 }, limits: { cpu: 1000 }, source: { provenance: 'default', confidence: 0.1 } },
  ]);
  assert.deepEqual(p.requests, { memory: 2 * GiB });
  assert.equal(p.limits, undefined);
  assert.equal(p.sources.cpu?.provenance, 'history');
  const capped = combine([
    { requests: {}, limits: { memory: GiB }, source: { provenance: 'flag', confidence: 1 } },
    {
      requests: { memory: 1.5 * GiB },
      limits: { memory: 2 * GiB },
      source: { provenance: 'history', confidence: 0.5 },
    },
  ]);
  assert.deepEqual(capped.requests, { memory: GiB }, "the user's cap bounds a weaker source's request");
  assert.deepEqual(capped.limits, { memory: GiB });
});
