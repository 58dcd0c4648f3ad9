import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  releaseResourceReservation,
  requestResourceReservation,
  withReservation,
} from '../src/client/sdk.js';
import { compileConfig } from '../src/config.js';
import { openLedger } from '../src/ledger/open.js';
import { stateDir } from './support/cli.js';

test('withReservation releases in finally, on success and on failure', async () => {
  const dir = stateDir();
  const env = { RRM_STATE_DIR: dir };
  const seen: string[] = [];
  const value = await withReservation(
    { requests: { cpu: '500m', memory: '64Mi' } },
    async (h) => {
      seen.push(h.id);
      return 42;
    },
    { env },
  );
  assert.equal(value, 42);
  await assert.rejects(
    withReservation(
      { requests: { cpu: 1 } },
      async (h) => {
        seen.push(h.id);
        throw new Error('install failed');
      },
      { env },
    ),
    /install failed/,
  );
  const ledger = await openLedger(compileConfig(env));
  for (const id of seen) assert.equal((await ledger.get(id))?.state, 'released');
  await ledger.close();
});

test('request/release by hand, await using, and a fail-fast request that does not fit', async () => {
  const dir = stateDir();
  const env = { RRM_STATE_DIR: dir };
  const ledger = await openLedger(compileConfig(env));
  await ledger.setAllocatable(
    'local',
    { cpu: 1000, memory: 2 ** 30 },
    { cpu: 1000, memory: 2 ** 30 },
    'test',
  );
  const h = await requestResourceReservation({ requests: { cpu: 1 } }, { env });
  await assert.rejects(requestResourceReservation({ requests: { cpu: '1' }, waitMs: 0 }, { env }), {
    code: 'RRM_ERR_CAPACITY_SHORT',
  });
  await releaseResourceReservation(h);
  await releaseResourceReservation(h);
  assert.equal((await ledger.get(h.id))?.state, 'released');
  let id = '';
  {
    await using scoped = await requestResourceReservation({ requests: { cpu: 1 } }, { env });
    id = scoped.id;
    assert.equal((await ledger.get(id))?.state, 'granted');
  }
  assert.equal((await ledger.get(id))?.state, 'released');
  await assert.rejects(requestResourceReservation({ requests: { cpu: '-1' } }, { env }), {
    code: 'RRM_ERR_BAD_QUANTITY',
  });
  await ledger.close();
});
