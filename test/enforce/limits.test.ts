import assert from 'node:assert/strict';
import { test } from 'node:test';
import { effectiveLimits } from '../../src/enforce/limits.js';

const MiB = 1024 * 1024;

test('explicit limits are used as given', () => {
  const lim = { cpu: 2000, memory: 512 * MiB };
  assert.deepEqual(effectiveLimits({ mode: 'hard', requests: { cpu: 1000 }, limits: lim }), lim);
  assert.deepEqual(effectiveLimits({ mode: 'soft', requests: { cpu: 1000 }, limits: { memory: MiB } }), {
    memory: MiB,
  });
});

test('hard without limits: cpu and memory capped at request × (1 + margin), rounded up', () => {
  assert.deepEqual(effectiveLimits({ mode: 'hard', requests: { cpu: 1500, memory: 100 * MiB, diskIo: 5 } }), {
    cpu: 1875,
    memory: 125 * MiB,
  });
  assert.deepEqual(effectiveLimits({ mode: 'hard', requests: { cpu: 333, memory: 1001 } }, 0.1), {
    cpu: 367, // ceil(366.3)
    memory: 1102, // ceil(1101.1)
  });
  assert.deepEqual(effectiveLimits({ mode: 'hard', requests: { cpu: 1000 } }, 0), { cpu: 1000 });
  assert.deepEqual(effectiveLimits({ mode: 'hard', requests: {} }), {});
  assert.deepEqual(effectiveLimits({ mode: 'hard', requests: { cpu: 0, 'dpkg-lock': 1 } }), {});
});

test('soft without limits: no caps, except memory where the host has no memory guarantee', () => {
  assert.deepEqual(effectiveLimits({ mode: 'soft', requests: { cpu: 1500, memory: MiB } }), {});
  assert.deepEqual(effectiveLimits({ mode: 'soft', requests: { cpu: 1500, memory: 4 * MiB } }, 0.5, true), {
    memory: 6 * MiB,
  });
  assert.deepEqual(effectiveLimits({ mode: 'soft', requests: { cpu: 1500 } }, 0.5, true), {});
  assert.deepEqual(
    effectiveLimits({ mode: 'soft', requests: { memory: 4 * MiB }, limits: { cpu: 100 } }, 0.5, true),
    { cpu: 100 },
    'limits given are used as given',
  );
});

test('rejects contradictions and bad numbers', () => {
  assert.throws(
    () => effectiveLimits({ mode: 'hard', requests: { memory: 200 }, limits: { memory: 100 } }),
    /limits\.memory \(100\) is below requests\.memory \(200\)/,
  );
  assert.throws(() => effectiveLimits({ mode: 'hard', requests: { cpu: -1 } }), RangeError);
  assert.throws(() => effectiveLimits({ mode: 'hard', requests: { cpu: NaN } }), RangeError);
  assert.throws(() => effectiveLimits({ mode: 'hard', requests: {} }, -0.1), RangeError);
  assert.throws(() => effectiveLimits({ mode: 'soft', requests: {}, limits: { cpu: Infinity } }), RangeError);
});
