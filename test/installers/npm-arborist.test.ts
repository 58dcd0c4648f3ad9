/**
 * The npm estimate through npm's own resolver (@npmcli/arborist) against two local registries on
 * loopback: a public one, and a private one for `@acme` that answers only with the right bearer
 * token, configured the way a project configures it — a project `.npmrc` with
 * `@acme:registry=http://127.0.0.1:PORT/` and `//127.0.0.1:PORT/:_authToken=${TEST_TOKEN}`.
 * With the token the tree resolves; without it the registry says 401, the estimate falls back to
 * rrm's own walk and says why; the token never appears in anything rrm returns. A tarball npm
 * has already cached (`npm cache add`, the real npm) costs no network.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { compileConfig } from '../../src/config.js';
import { parseInstall } from '../../src/installers/index.js';
import { cachedTarballAsync } from '../../src/installers/npm-cache.js';
import type { MetadataContext, MetadataResult } from '../../src/installers/types.js';
import { resolveContext, resolveInstallProfile } from '../../src/profiles/resolve.js';
import { addTarball, registryContext, startRegistry, type TestRegistry } from './registry-server.js';

const TOKEN = 'npm_T0ken-for-the-acme-registry-0123456789';

const publicTarballs = new Map<string, Buffer>();
const publicPackuments = {
  lib: {
    name: 'lib',
    'dist-tags': { latest: '1.5.0' },
    versions: {
      '1.0.0': { name: 'lib', version: '1.0.0', dist: addTarball(publicTarballs, 'lib', '1.0.0', 1000) },
      '1.5.0': { name: 'lib', version: '1.5.0', dist: addTarball(publicTarballs, 'lib', '1.5.0', 50_000) },
    },
  },
  tool: {
    name: 'tool',
    'dist-tags': { latest: '3.1.0' },
    versions: {
      '3.1.0': {
        name: 'tool',
        version: '3.1.0',
        scripts: { postinstall: 'node setup.js' },
        dependencies: { lib: '^1.0.0' },
        dist: addTarball(publicTarballs, 'tool', '3.1.0', 30_000),
      },
    },
  },
};

const acmeTarballs = new Map<string, Buffer>();
const acmePackuments = {
  '@acme/widget': {
    name: '@acme/widget',
    'dist-tags': { latest: '1.2.0' },
    versions: {
      '1.2.0': {
        name: '@acme/widget',
        version: '1.2.0',
        dependencies: { '@acme/core': '^2.0.0', lib: '^1.0.0' },
        dist: {
          ...addTarball(acmeTarballs, '@acme/widget', '1.2.0', 20_000),
          unpackedSize: 20_000,
          fileCount: 12,
        },
      },
    },
  },
  '@acme/core': {
    name: '@acme/core',
    'dist-tags': { latest: '2.0.1' },
    versions: {
      '2.0.1': {
        name: '@acme/core',
        version: '2.0.1',
        gypfile: true,
        scripts: { install: 'node-gyp rebuild' },
        dist: addTarball(acmeTarballs, '@acme/core', '2.0.1', 120_000),
      },
    },
  },
};

interface Setup {
  readonly pub: TestRegistry;
  readonly acme: TestRegistry;
  readonly ctx: (env?: Record<string, string>) => MetadataContext;
  readonly dir: string;
  readonly cache: string;
}

async function setup(t: { after: (fn: () => void) => void }): Promise<Setup> {
  const pub = await startRegistry(t, { packuments: publicPackuments, tarballs: publicTarballs });
  // The public registry's documents point tarballs at the public server; the private one's at itself.
  const acme = await startRegistry(t, {
    packuments: acmePackuments,
    tarballs: acmeTarballs,
    bearer: { scope: '@acme', token: TOKEN },
  });
  const dir = mkdtempSync(join(tmpdir(), 'rrm-arb-project-'));
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'proj', version: '1.0.0' }));
  writeFileSync(
    join(dir, '.npmrc'),
    [
      '; the private scope, with its token from the environment (never written down)',
      `@acme:registry=http://127.0.0.1:${acme.port}/`,
      `//127.0.0.1:${acme.port}/:_authToken=\${TEST_TOKEN}`,
      '',
    ].join('\n'),
  );
  const home = mkdtempSync(join(tmpdir(), 'rrm-arb-home-'));
  const cache = join(home, 'npm-cache');
  const ctx = (env: Record<string, string> = {}): MetadataContext =>
    registryContext(pub.url, {
      timeoutMs: 5000,
      cwd: dir,
      npmCacheDir: cache,
      env: { HOME: home, PREFIX: join(home, 'prefix'), ...env },
    });
  return { pub, acme, ctx, dir, cache };
}

async function metadata(argv: string[], ctx: MetadataContext): Promise<MetadataResult> {
  const p = parseInstall(argv);
  assert.ok(p, argv.join(' '));
  return p.adapter.metadata(p.intent, ctx);
}

function noToken(value: unknown, label: string): void {
  assert.ok(!JSON.stringify(value).includes(TOKEN), `${label}: the token leaked`);
}

test('a project .npmrc with a scoped registry and ${TEST_TOKEN} resolves the private tree with arborist', async (t) => {
  const s = await setup(t);
  const started = Date.now();
  const meta = await metadata(['npm', 'install', '@acme/widget', 'tool'], s.ctx({ TEST_TOKEN: TOKEN }));
  const ms = Date.now() - started;
  const part = meta.parts.find((p) => p.source.provenance === 'metadata');
  assert.ok(part, JSON.stringify(meta.notes));
  const note = part.source.note ?? '';
  assert.match(note, /tree resolved by @npmcli\/arborist/, note);
  assert.match(note, /4 of 4 packages to install/, note);
  assert.match(note, /1 native build/, note);
  assert.match(note, /1 with install scripts/, note);
  assert.match(note, /in 12 files/, "the registry's fileCount is read");
  assert.deepEqual(
    [...meta.packages].sort((a, b) => a.name.localeCompare(b.name)),
    [
      { manager: 'npm', name: '@acme/widget', version: '1.2.0' },
      { manager: 'npm', name: 'tool', version: '3.1.0' },
    ],
  );
  const size = (m: Map<string, Buffer>, path: string): number => m.get(path)?.length ?? NaN;
  assert.equal(
    part.estimates?.downloadBytes,
    size(acmeTarballs, '/@acme/widget/-/widget-1.2.0.tgz') +
      size(acmeTarballs, '/@acme/core/-/core-2.0.1.tgz') +
      size(publicTarballs, '/lib/-/lib-1.5.0.tgz') +
      size(publicTarballs, '/tool/-/tool-3.1.0.tgz'),
    'every tarball of the tree, none cached',
  );
  assert.ok((part.requests.disk ?? 0) >= 20_000 + 120_000 + 50_000 + 30_000 + 12 * 2048);
  // the private registry got every @acme request, each with the right token; the public one no credentials
  const acmeHits = s.acme.hits.filter((h) => h.startsWith('GET /@acme/'));
  assert.ok(acmeHits.length >= 3, s.acme.hits.join('\n'));
  assert.ok(
    acmeHits.every((h) => h.endsWith(' auth=ok')),
    s.acme.hits.join('\n'),
  );
  assert.ok(
    s.acme.hits.some((h) => /^GET \/@acme\/core\/-\/core-2\.0\.1\.tgz bytes=-4 auth=ok$/.test(h)),
    'tarballs are sized with the scope credentials too',
  );
  assert.deepEqual(s.pub.authorizations, [], 'no credentials sent to the public registry');
  assert.ok(!s.pub.hits.some((h) => h.includes('@acme')), 'no @acme request went to the public registry');
  noToken(meta, 'metadata');
  assert.ok(ms < 5000, `${ms} ms`);
});

test('without the token the private registry says 401: the estimate falls back and says why, token-free', async (t) => {
  const s = await setup(t);
  // TEST_TOKEN unset: npm sends the literal `${TEST_TOKEN}`, as npm does, and is refused.
  const only = await metadata(['npm', 'install', '@acme/widget'], s.ctx());
  assert.deepEqual(only.parts, [], 'nothing could be sized: no metadata part');
  const notes = only.notes.join('\n');
  assert.match(
    notes,
    new RegExp(
      `@npmcli/arborist could not resolve the tree \\(HTTP 401 E401 from http://127\\.0\\.0\\.1:${s.acme.port}/@acme%2fwidget\\)`,
    ),
    notes,
  );
  assert.match(notes, /rrm's own registry walk instead/, notes);
  assert.match(notes, new RegExp(`127\\.0\\.0\\.1:${s.acme.port}/@acme%2fwidget.*HTTP 401`), notes);
  assert.ok(s.acme.hits.some((h) => h.endsWith(' auth=bad')));

  // A mixed install still gets a metadata part for what resolved, and its provenance says what happened.
  const mixed = await metadata(['npm', 'install', '@acme/widget', 'tool'], s.ctx());
  const part = mixed.parts.find((p) => p.source.provenance === 'metadata');
  assert.ok(part, mixed.notes.join('\n'));
  const note = part.source.note ?? '';
  assert.match(note, /^npm registry metadata: @acme\/widget unresolved, tool@3\.1\.0 scripts;/, note);
  assert.match(
    note,
    /; @npmcli\/arborist could not resolve the tree \(HTTP 401 E401 from [^)]+\): rrm's own registry walk instead$/,
    note,
  );
  assert.match(note, /metadata unavailable for @acme\/widget@latest/, note);
  assert.match(note, /tool@3\.1\.0 scripts/, note);
  assert.equal(part.source.confidence, 0.2, 'a partial tree is low confidence');

  // A wrong token: refused, and never printed.
  const wrong = `${TOKEN}-wrong`;
  const bad = await metadata(['npm', 'install', '@acme/widget', 'tool'], s.ctx({ TEST_TOKEN: wrong }));
  assert.ok(!JSON.stringify(bad).includes(wrong), 'the wrong token leaked');
  assert.match(bad.notes.join('\n'), /HTTP 401/);

  // Through the whole chain: the profile falls back to defaults for the private-only install.
  const config = compileConfig({}, { stateDir: mkdtempSync(join(tmpdir(), 'rrm-arb-state-')) });
  const rctx = {
    ...resolveContext(config, { RRM_PROFILE_DIRS: '' }, { history: 'none', cwd: s.dir }),
    metadata: s.ctx({ TEST_TOKEN: wrong }),
  };
  const r = await resolveInstallProfile(['npm', 'install', '@acme/widget'], { requests: {} }, rctx);
  assert.equal(r.profile.sources.memory?.provenance, 'default');
  assert.match(r.profile.sources.memory?.note ?? '', /metadata unavailable/);
  assert.ok(!JSON.stringify(r).includes(wrong), 'the token leaked into the profile');
  const ok = await resolveInstallProfile(
    ['npm', 'install', '@acme/widget'],
    { requests: {} },
    { ...rctx, metadata: s.ctx({ TEST_TOKEN: TOKEN }) },
  );
  assert.equal(ok.profile.sources.memory?.provenance, 'metadata', ok.profile.sources.memory?.note);
  noToken(ok, 'profile');
});

test('a tarball already in the npm cache (npm cache add) is not network', async (t) => {
  const s = await setup(t);
  const ctx = s.ctx({ TEST_TOKEN: TOKEN });
  const before = await metadata(['npm', 'install', 'tool'], ctx);
  const b = before.parts.find((p) => p.source.provenance === 'metadata');
  assert.ok(b);
  assert.match(b.source.note ?? '', /0 tarballs cached/);
  // The real npm fills the cache from the same registry, the way an earlier install would have.
  // (Asynchronously: the registry answering it runs in this process.)
  await promisify(execFile)(
    'npm',
    ['cache', 'add', 'lib@1.5.0', '--registry', s.pub.url, '--cache', s.cache],
    {
      env: { ...process.env, npm_config_userconfig: '/dev/null', npm_config_update_notifier: 'false' },
      timeout: 60_000,
    },
  );
  const hitsBefore = s.pub.hits.length;
  const after = await metadata(['npm', 'install', 'tool'], ctx);
  const a = after.parts.find((p) => p.source.provenance === 'metadata');
  assert.ok(a);
  assert.match(a.source.note ?? '', /tree resolved by @npmcli\/arborist/);
  assert.match(a.source.note ?? '', /1 tarballs cached/, a.source.note);
  const lib = publicTarballs.get('/lib/-/lib-1.5.0.tgz')?.length ?? NaN;
  assert.equal(
    a.estimates?.downloadBytes,
    (b.estimates?.downloadBytes ?? NaN) - lib,
    'the cached tarball is not counted as download',
  );
  assert.ok(!s.pub.hits.slice(hitsBefore).some((h) => h.startsWith('GET /lib/-/')), 'nor asked for');

  // The cache the .npmrc names is the one read (here ~/ in the user's .npmrc).
  const home = ctx.env?.HOME as string;
  writeFileSync(join(home, '.npmrc'), 'cache=~/npm-cache\n');
  const viaNpmrc = await metadata(['npm', 'install', 'tool'], { ...ctx, npmCacheDir: '/nonexistent' });
  assert.match(
    viaNpmrc.parts.find((p) => p.source.provenance === 'metadata')?.source.note ?? '',
    /1 tarballs cached/,
  );
  assert.ok(viaNpmrc.notes.some((n) => n.includes(`user ${join(home, '.npmrc')}`)));
});

test('a tarball with no integrity is found in the cache by its URL key (make-fetch-happen index)', async (t) => {
  const s = await setup(t);
  const body = publicTarballs.get('/lib/-/lib-1.0.0.tgz') as Buffer;
  const url = `${s.pub.url}lib/-/lib-1.0.0.tgz`;
  // The cache entry make-fetch-happen writes for a fetched URL, written with cacache itself.
  const cacache = createRequire(import.meta.url)('cacache') as {
    put: (cache: string, key: string, data: Buffer) => Promise<string>;
  };
  mkdirSync(s.cache, { recursive: true });
  await cacache.put(join(s.cache, '_cacache'), `make-fetch-happen:request-cache:${url}`, body);
  const hit = await cachedTarballAsync(s.cache, undefined, url);
  assert.equal(hit?.size, body.length);
  assert.equal(hit?.unpacked, 1000, 'the gzip trailer of the cached bytes');
  assert.equal(await cachedTarballAsync(s.cache, undefined, `${s.pub.url}lib/-/lib-1.5.0.tgz`), undefined);

  // End to end: a package whose registry entry has no integrity, resolved by arborist, costs no download.
  const saved = publicPackuments.lib.versions['1.0.0'];
  publicPackuments.lib.versions['1.0.0'] = {
    name: 'lib',
    version: '1.0.0',
    dist: { tarball: 'REG/lib/-/lib-1.0.0.tgz' },
  } as typeof saved;
  t.after(() => {
    publicPackuments.lib.versions['1.0.0'] = saved;
  });
  const meta = await metadata(['npm', 'install', 'lib@1.0.0'], s.ctx());
  const part = meta.parts.find((p) => p.source.provenance === 'metadata');
  assert.ok(part, meta.notes.join('\n'));
  assert.match(part.source.note ?? '', /tree resolved by @npmcli\/arborist/, part.source.note);
  assert.match(part.source.note ?? '', /0B to download \(1 tarballs cached\)/, part.source.note);
  assert.equal(part.estimates?.downloadBytes, 0);
});

test('the rrm executable: --dry-run with the project .npmrc resolves the private scope; the token is in no output', async (t) => {
  const s = await setup(t);
  const rrm = join(import.meta.dirname, '../../bin/rrm.js');
  const base = s.ctx().env as Record<string, string>;
  const run = async (
    env: Record<string, string>,
  ): Promise<{ stdout: string; stderr: string; code: number }> => {
    const r = await promisify(execFile)(
      process.execPath,
      [rrm, 'run', '--dry-run', '--', 'npm', 'install', '@acme/widget', 'tool'],
      {
        cwd: s.dir,
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          ...base,
          npm_config_registry: s.pub.url,
          RRM_STATE_DIR: mkdtempSync(join(tmpdir(), 'rrm-arb-cli-state-')),
          RRM_PROFILE_DIRS: '',
          RRM_METADATA_TIMEOUT: '10s',
          ...env,
        },
        timeout: 60_000,
      },
    ).catch((e: { stdout: string; stderr: string; code: number }) => e);
    return { stdout: r.stdout, stderr: r.stderr, code: 'code' in r ? r.code : 0 };
  };
  const ok = await run({ TEST_TOKEN: TOKEN });
  const okOut = `${ok.stdout}\n${ok.stderr}`;
  assert.equal(ok.code, 0, okOut);
  assert.match(okOut, /tree resolved by @npmcli\/arborist/, okOut);
  assert.match(okOut, /@acme\/widget@1\.2\.0/, okOut);
  assert.ok(!okOut.includes(TOKEN), 'the token is in rrm output');
  assert.ok(s.acme.hits.some((h) => h.endsWith(' auth=ok')));

  const wrong = `${TOKEN}-wrong`;
  const refused = await run({ TEST_TOKEN: wrong });
  const refusedOut = `${refused.stdout}\n${refused.stderr}`;
  assert.equal(refused.code, 0, refusedOut);
  assert.match(refusedOut, /@npmcli\/arborist could not resolve the tree \(HTTP 401/, refusedOut);
  assert.ok(!refusedOut.includes(wrong), 'the refused token is in rrm output');
});
