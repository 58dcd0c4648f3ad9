/**
 * Which ledger a client uses: the default agent socket counts only while an agent listens on it.
 * Real sockets: one this process listens on, and one left behind by a process killed with SIGKILL.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { chooseAgent, listening } from '../src/client/connect.js';

/** A token in the environment, so choosing an agent needs no token file. */
const ENV = { RRM_AGENT_TOKEN: 'token-for-the-test-0000' };

test('the default socket is used while an agent listens on it, not when its process was killed', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rrm-connect-'));
  const live = join(dir, 'live.sock');
  const server = createServer(() => undefined);
  server.listen(live);
  await once(server, 'listening');
  try {
    assert.equal(listening(live), true);
    assert.equal(chooseAgent(ENV, undefined, false, live)?.socketPath, live);
    // A state directory named explicitly (flag or RRM_STATE_DIR) means the embedded ledger.
    assert.equal(chooseAgent(ENV, undefined, true, live), undefined);
    assert.equal(chooseAgent({ ...ENV, RRM_STATE_DIR: dir }, undefined, false, live), undefined);
  } finally {
    server.close();
  }

  const stale = join(dir, 'stale.sock');
  const child = spawn(
    process.execPath,
    ['-e', `require('net').createServer().listen(${JSON.stringify(stale)}, () => console.log('up'))`],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await once(child.stdout, 'data');
  assert.equal(listening(stale), true, 'listening while its process lives');
  child.kill('SIGKILL');
  await once(child, 'exit');
  assert.ok(existsSync(stale), 'the socket file outlives the process');
  assert.equal(listening(stale), false);
  assert.equal(chooseAgent(ENV, undefined, false, stale), undefined, 'a stale socket falls back to embedded');
  // Named explicitly, it is used as given (and fails loudly if nothing answers).
  assert.equal(chooseAgent({ ...ENV, RRM_AGENT: stale }, undefined, false, stale)?.socketPath, stale);
  assert.equal(listening(join(dir, 'missing.sock')), false);
});
