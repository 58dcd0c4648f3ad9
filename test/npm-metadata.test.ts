/** npm metadata heuristics, against a local HTTP server laid out like the registry (no network needed). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  classifyNpmManifest,
  npmInstallSpecs,
  npmMetadataPart,
  splitSpec,
} from '../src/profiles/npm-metadata.js';
import { resolveProfile } from '../src/profiles/resolve.js';

test('which argv is an npm install, and its package specs', () => {
  const cases: Array<[string[], string[] | undefined]> = [
    [['npm', 'install', 'sharp'], ['sharp']],
    [
      ['npm', 'i', '--save-dev', 'a@1.2.3', '@scope/b'],
      ['a@1.2.3', '@scope/b'],
    ],
    [['/usr/bin/npm', 'add', '--prefix', '/tmp/x', 'c', '--registry=http://r/'], ['c']],
    [['npm', 'run', 'build'], undefined],
    [['npm'], undefined],
    [['pnpm', 'install', 'x'], undefined],
    [['npm', 'install'], []],
  ];
  for (const [argv, want] of cases) assert.deepEqual(npmInstallSpecs(argv), want, argv.join(' '));
  assert.deepEqual(splitSpec('@scope/pkg@^2'), ['@scope/pkg', '^2']);
  assert.deepEqual(splitSpec('pkg'), ['pkg', 'latest']);
});

test('classification: plain, install scripts, native builds', () => {
  assert.equal(classifyNpmManifest({}), 'plain');
  assert.equal(classifyNpmManifest({ scripts: { postinstall: 'node setup.js' } }), 'scripts');
  assert.equal(classifyNpmManifest({ gypfile: true, scripts: { install: 'node-gyp rebuild' } }), 'native');
  assert.equal(
    classifyNpmManifest({
      scripts: { install: 'prebuild-install || node-gyp rebuild' },
      dependencies: { 'prebuild-install': '^7' },
    }),
    'native',
  );
  assert.equal(
    classifyNpmManifest({ dependencies: { 'node-addon-api': '^7', 'prebuild-install': '^7' } }),
    'plain',
  );
});

test('registry metadata decides the profile; an unreachable registry falls back to defaults and says so', async (t) => {
  const docs: Record<string, object> = {
    '/plain/latest': { name: 'plain', version: '1.0.0', dist: { unpackedSize: 1000 } },
    '/native/1.0.0': {
      name: 'native',
      version: '1.0.0',
      gypfile: true,
      scripts: { install: 'node-gyp rebuild' },
      dist: { unpackedSize: 5000 },
    },
  };
  const server = createServer((req, res) => {
    const doc = docs[req.url ?? ''];
    res.writeHead(doc ? 200 : 404, { 'content-type': 'application/json' });
    res.end(JSON.stringify(doc ?? { error: 'not found' }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  const registry = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  const { part, kinds } = await npmMetadataPart(['plain', 'native@1.0.0', 'missing'], registry, 2000);
  assert.deepEqual(kinds, { plain: 'plain', 'native@1.0.0': 'native', missing: 'unknown' });
  assert.deepEqual(part.requests, { cpu: 1000, memory: 2 ** 30, disk: 6000 });
  assert.match(part.source.note ?? '', /2 of 3 packages \(missing unavailable\)/);
  const profile = await resolveProfile({
    argv: ['npm', 'install', 'plain'],
    flags: { cpu: 250 },
    registry,
    metadataTimeoutMs: 2000,
  });
  assert.equal(profile.requests.cpu, 250);
  assert.equal(profile.sources.cpu?.provenance, 'flag');
  assert.equal(profile.sources.memory?.provenance, 'metadata');
  const offline = await resolveProfile({
    argv: ['npm', 'install', 'x'],
    flags: {},
    registry: 'http://127.0.0.1:9/',
    metadataTimeoutMs: 500,
  });
  assert.equal(offline.sources.cpu?.provenance, 'default');
});
