/**
 * Every test file that runs `rrm run` uses a cgroup parent of its own (`rrm-test-<pid>`), so that
 * after all its tests it can check that no rrm cgroup outlived its reservation, and nothing it sees
 * belongs to another run.
 */
import { after } from 'node:test';
import assert from 'node:assert/strict';
import { compileConfig } from '../../src/config.js';
import { localEnforcer } from '../../src/host/local-enforcer.js';
import type { Enforcer } from '../../src/enforce/enforcer.js';

export function testCgroups(): Enforcer {
  process.env.RRM_CGROUP_PARENT ??= `rrm-test-${process.pid}`;
  const enforcer = localEnforcer(compileConfig(process.env));
  after(() => {
    // Checked before any cleanup: a leak fails here, then the parent is removed if it can be.
    assert.deepEqual(enforcer.list(), [], 'no cgroup under the test parent outlives the tests');
    enforcer.removeParentIfEmpty();
  });
  return enforcer;
}
