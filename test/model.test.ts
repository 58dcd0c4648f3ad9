import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseDuration } from '../src/model/duration.js';
import { parsePriority } from '../src/model/priority.js';
import { formatQuantity, parseNamedResource, parseQuantity } from '../src/model/quantity.js';
import { add, fits, shortfall, sub } from '../src/model/vector.js';

test('quantities are read as Kubernetes writes them', () => {
  const cases: Array<[string, Parameters<typeof parseQuantity>[1], number]> = [
    ['500m', 'cpu', 500],
    ['2', 'cpu', 2000],
    ['1.5', 'cpu', 1500],
    ['0.1', 'cpu', 100],
    ['1.5Gi', 'bytes', 1.5 * 2 ** 30],
    ['200M', 'bytes', 200_000_000],
    ['20Mi', 'rate', 20 * 2 ** 20],
    ['20Mi/s', 'rate', 20 * 2 ** 20],
    ['1k', 'bytes', 1000],
    ['0', 'bytes', 0],
    ['3', 'count', 3],
  ];
  for (const [text, kind, want] of cases) assert.equal(parseQuantity(text, kind), want, text);
});

test('quantities refuse negatives, NaN, unknown units, overflow and empty text', () => {
  for (const [text, kind] of [
    ['-1', 'bytes'],
    ['NaN', 'cpu'],
    ['abc', 'cpu'],
    ['1Zi', 'bytes'],
    ['1e3', 'bytes'],
    ['', 'cpu'],
    ['  ', 'bytes'],
    ['9007199254740993', 'bytes'],
    ['8Ei', 'bytes'],
    ['1.5', 'count'],
    ['10Mi/s', 'bytes'],
    ['Infinity', 'cpu'],
  ] as const) {
    assert.throws(() => parseQuantity(text, kind), { code: 'RRM_ERR_BAD_QUANTITY' }, `${text} as ${kind}`);
  }
});

test('formatted quantities read back to the same amount', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 2 ** 40 }), (n) => {
      const back = parseQuantity(formatQuantity(n, 'bytes'), 'bytes');
      assert.ok(Math.abs(back - n) <= n * 0.005 + 1, `${n} → ${formatQuantity(n, 'bytes')} → ${back}`);
    }),
  );
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 1e9 }), (m) =>
      assert.equal(parseQuantity(formatQuantity(m, 'cpu'), 'cpu'), m),
    ),
  );
});

test('named resources need a valid name that is not a built-in dimension', () => {
  assert.deepEqual(parseNamedResource('dpkg-lock=1'), ['dpkg-lock', 1]);
  for (const bad of ['=1', 'cpu=1', 'GPU=1', 'a b=1', 'gpu', 'gpu=-1', 'gpu=x'])
    assert.throws(() => parseNamedResource(bad), bad);
});

test('priorities are classes or integers', () => {
  assert.equal(parsePriority('critical'), 1000);
  assert.equal(parsePriority('batch'), 100);
  assert.equal(parsePriority('250'), 250);
  for (const bad of ['urgent', '1.5', '', 'Critical', '99999999999'])
    assert.throws(() => parsePriority(bad), { code: 'RRM_ERR_BAD_PRIORITY' });
});

test('durations', () => {
  assert.equal(parseDuration('500ms'), 500);
  assert.equal(parseDuration('1h30m'), 5_400_000);
  assert.equal(parseDuration('90'), 90_000);
  for (const bad of ['soon', '-1s', '', '5x', '1h 30m'])
    assert.throws(() => parseDuration(bad), { code: 'RRM_ERR_BAD_DURATION' });
});

test('vector arithmetic: add and sub are inverse, shortfall names each short dimension', () => {
  const vec = fc.dictionary(fc.constantFrom('cpu', 'memory', 'gpu'), fc.integer({ min: 0, max: 1e6 }));
  fc.assert(
    fc.property(vec, vec, (a, b) => {
      assert.ok(fits(a, add(a, b)));
      const back = sub(add(a, b), b);
      for (const k of ['cpu', 'memory', 'gpu']) assert.equal(back[k] ?? 0, a[k] ?? 0);
      const short = shortfall(a, b);
      assert.equal(short.length === 0, fits(a, b));
      for (const s of short) assert.equal(s.short, (a[s.dimension] ?? 0) - (b[s.dimension] ?? 0));
    }),
  );
});
