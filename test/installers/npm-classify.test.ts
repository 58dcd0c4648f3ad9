import { test } from 'node:test';
import assert from 'node:assert/strict';
import { classifyNpmManifest } from '../../src/installers/npm-classify.js';

test('npm package kinds: plain, install scripts, native builds (prebuilt binaries are not builds)', () => {
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
  assert.equal(classifyNpmManifest({ dependencies: { nan: '^2' } }), 'native');
});
