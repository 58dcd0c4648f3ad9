/**
 * History is learned from real runs: every `rrm run` of an install that ends by itself records what
 * its cgroup measured in `<state dir>/history.db`, and after three runs `rrm profile` answers from
 * them. A real npm install from the registry, the real rrm executable, real cgroups where they are
 * writable (advisory mode records wall time only).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HistoryStore } from '../../src/profiles/history.js';
import { rrm, rrmJson, stateDir } from '../support/cli.js';
import { testCgroups } from '../support/cgroups-left.js';

const enforced = testCgroups().report.driver !== 'none';
const SPEC = 'is-number@7.0.0';

function samples(dir: string): number {
  const h = HistoryStore.open(dir);
  try {
    return h.count();
  } finally {
    h.close();
  }
}

interface ProfileJson {
  profile: { requests: Record<string, number>; sources: Record<string, { provenance: string }> };
}

test('each finished install is a history sample; three make the profile come from history', async () => {
  const dir = stateDir();
  const prefix = mkdtempSync(join(tmpdir(), 'rrm-learn-'));
  const install = ['npm', 'install', '--no-save', '--no-audit', '--no-fund', '--prefix', prefix, SPEC];
  const [before] = await rrmJson<ProfileJson[]>(dir, ['profile', `npm:${SPEC}`]);
  assert.notEqual(before!.profile.sources.memory?.provenance, 'history', 'nothing learned yet');
  for (let i = 1; i <= 3; i++) {
    const r = await rrm(dir, ['run', '--', ...install]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(samples(dir), i, `run ${i} recorded one sample`);
    rmSync(join(prefix, 'node_modules'), { recursive: true, force: true });
  }
  // A command that is not an install of known packages teaches nothing.
  assert.equal((await rrm(dir, ['run', '--', 'true'])).code, 0);
  assert.equal(samples(dir), 3);
  const [after] = await rrmJson<ProfileJson[]>(dir, ['profile', `npm:${SPEC}`]);
  if (!enforced) return; // advisory mode measures no memory to learn from
  assert.equal(after!.profile.sources.memory?.provenance, 'history');
  const history = await rrmJson<Array<{ command?: string[]; usage?: { peakMemoryBytes?: number } }>>(dir, [
    'history',
  ]);
  const peaks = history.flatMap((h) =>
    h.command?.[0] === 'npm' && h.usage?.peakMemoryBytes ? [h.usage.peakMemoryBytes] : [],
  );
  assert.equal(peaks.length, 3, 'three measured runs');
  const memory = after!.profile.requests.memory ?? 0;
  assert.ok(memory >= Math.max(...peaks), `request ${memory} covers the highest measured peak`);
  assert.ok(memory <= Math.max(...peaks) * 1.5, `request ${memory} is near the measurements, not a guess`);
  rmSync(prefix, { recursive: true, force: true });
});
