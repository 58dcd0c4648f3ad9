/** `rrm profile`: usage errors (exit 64), --help, the table and --json, against a local registry and a real history file. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROFILE_HELP, profileCommand, profileTargets } from '../../src/cli/commands/profile.js';
import { makeContext } from '../../src/cli/context.js';
import type { Io } from '../../src/cli/output.js';
import { isRrmError } from '../../src/model/errors.js';
import { HistoryStore } from '../../src/profiles/history.js';

function io(): Io & { stdout: () => string } {
  let out = '';
  return { out: (t) => (out += t), err: () => undefined, isTTY: false, stdout: () => out };
}

async function usage(args: string[]): Promise<string> {
  try {
    await profileCommand(makeContext(io(), { RRM_STATE_DIR: mkdtempSync(join(tmpdir(), 'rrm-p-')) }), args);
  } catch (e) {
    assert.ok(isRrmError(e), String(e));
    assert.equal(e.code, 'RRM_ERR_USAGE');
    assert.equal(e.exitCode, 64);
    return e.message;
  }
  assert.fail(`rrm profile ${args.join(' ')} did not fail`);
}

test('usage errors exit 64 and name what was wrong; --help prints the help', async () => {
  assert.match(await usage([]), /name at least one/);
  assert.match(await usage(['sharp']), /not <manager>:<package>/);
  assert.match(await usage(['gem:rails']), /unknown manager "gem"/);
  assert.match(await usage(['npm:; rm -rf /']), /is not a npm package/);
  assert.match(await usage(['apt:--purge']), /is not a apt package/);
  assert.match(await usage(['npm:./local-dir']), /is not a npm package/);
  assert.match(await usage(['--bogus', 'npm:x']), /unknown option '--bogus'/);
  assert.match(await usage(['npm:x', '--', 'npm', 'i', 'y']), /not both/);
  const out = io();
  assert.equal(await profileCommand(makeContext(out, {}), ['--help']), 0);
  assert.equal(out.stdout(), PROFILE_HELP);
});

test('targets: one install argv per manager, versions in each manager’s own syntax', () => {
  assert.deepEqual(
    profileTargets([
      'npm:sharp@0.33',
      'apt:jq@1.6-2.1',
      'pip:requests@2.31.0',
      'npm:@scope/x',
      'pip:numpy@>=1.26',
      'apt-get:curl',
    ]),
    [
      ['npm', 'install', 'sharp@0.33', '@scope/x'],
      ['apt-get', 'install', 'jq=1.6-2.1', 'curl'],
      ['pip', 'install', 'requests==2.31.0', 'numpy>=1.26'],
    ],
  );
});

test('the table and --json: each dimension, its value, its source and confidence', async (t) => {
  const server = createServer((req, res) => {
    if (req.url === '/tiny/latest') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(
        JSON.stringify({ name: 'tiny', version: '1.2.3', dist: { tarball: 'http://127.0.0.1:9/t.tgz' } }),
      );
    }
    res.writeHead(404);
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => server.close());
  const registry = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  const state = mkdtempSync(join(tmpdir(), 'rrm-p-'));
  const store = HistoryStore.open(state);
  for (let i = 0; i < 3; i++)
    store.record({
      packages: [{ manager: 'npm', name: 'tiny', version: '1.2.3' }],
      requests: {},
      measured: { peakMemoryBytes: 64 * 2 ** 20, cpuUsageUsec: 400_000, wallMs: 1000, exitCode: 0 },
      instanceClass: 'k',
    });
  store.close();
  const dirs = join(state, 'profiles');
  mkdirSync(dirs);
  writeFileSync(join(dirs, 'p.json'), JSON.stringify({ 'apt:sl': { requests: { memory: '100Mi' } } }));
  const env = {
    RRM_STATE_DIR: state,
    npm_config_registry: registry,
    RRM_INSTANCE_CLASS: 'k',
    RRM_PROFILE_DIRS: dirs,
    HOME: state,
  };
  const out = io();
  assert.equal(await profileCommand(makeContext(out, env), ['npm:tiny@1.2.3', 'apt:sl', '--no-metadata']), 0);
  const text = out.stdout();
  assert.match(text, /^npm install tiny@1\.2\.3 {2}\(npm install\)$/m);
  // 400 ms of CPU per 1 s and 64 MiB, each plus the 10% margin.
  assert.match(text, /^cpu +441m +history +0\.\d\d +p90 of 3 measured run\(s\) .* \+ 10%/m);
  assert.match(text, /^memory +70\.4Mi +history +0\.\d\d +\(as above\)$/m);
  assert.match(text, /^expected time +1\.1s +history /m);
  assert.match(text, /^apt-get install sl {2}\(apt-get install\)$/m);
  assert.match(text, /^memory +100Mi +manifest +0\.70 /m);
  assert.match(text, /^dpkg-lock +1 +installer +1\.00 /m);
  assert.match(text, /^cpu +500m +default +0\.10 /m);
  const json = io();
  assert.equal(await profileCommand(makeContext(json, env), ['npm:tiny', '--json', '--cold']), 0);
  const doc = JSON.parse(json.stdout()) as {
    packages: unknown;
    profile: { sources: Record<string, { provenance: string }> };
  }[];
  assert.deepEqual(
    doc[0]?.packages,
    [{ manager: 'npm', name: 'tiny', version: '1.2.3' }],
    'cold: the version from the registry',
  );
  assert.equal(doc[0]?.profile.sources.memory?.provenance, 'metadata');
});
