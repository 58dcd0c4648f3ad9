import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { RrmError } from '../../src/model/errors.js';
import {
  checkSelector,
  formatSelector,
  matchesSelector,
  parseSelector,
} from '../../src/placement/selector.js';

const badRequest = (text: string) => (e: unknown) => {
  assert.ok(e instanceof RrmError, `${text}: ${String(e)}`);
  assert.equal(e.code, 'RRM_ERR_BAD_REQUEST', text);
  assert.ok(e.message.includes(JSON.stringify(text)), e.message);
  return true;
};

test('parses equality, inequality and kubectl == selectors', () => {
  assert.deepEqual(parseSelector('os=debian,zone=a'), { os: 'debian', zone: 'a' });
  assert.deepEqual(parseSelector('zone!=b'), { zone: '!b' });
  assert.deepEqual(parseSelector('k==v'), { k: 'v' });
  assert.deepEqual(parseSelector(' os = debian , zone!=b '), { os: 'debian', zone: '!b' });
  assert.deepEqual(parseSelector('example.com/tier=gold-1'), { 'example.com/tier': 'gold-1' });
  assert.deepEqual(parseSelector('zone='), { zone: '' });
  assert.deepEqual(parseSelector('zone!='), { zone: '!' });
});

test('an empty or blank selector selects everything', () => {
  assert.deepEqual(parseSelector(''), {});
  assert.deepEqual(parseSelector('   '), {});
  assert.equal(matchesSelector({ zone: 'a' }, parseSelector('')), true);
  assert.equal(matchesSelector({}, {}), true);
});

test('malformed selectors are bad requests', () => {
  for (const text of [
    '=v',
    'a=b=c',
    'zone=a,zone=b',
    'zone=a,zone!=b',
    'a*b=c',
    '-a=b',
    'a-=b',
    'a=-b',
    'a=!b',
    'a=b c',
    'zone',
    'zone=a,',
    ',zone=a',
    'a!b',
    'zone=a;os=b',
    `${'k'.repeat(65)}=v`,
    `k=${'v'.repeat(64)}`,
  ]) {
    assert.throws(() => parseSelector(text), badRequest(text));
  }
  // the longest valid key and value are accepted
  assert.deepEqual(parseSelector(`${'k'.repeat(64)}=${'v'.repeat(63)}`), {
    ['k'.repeat(64)]: 'v'.repeat(63),
  });
});

test('checkSelector accepts the map form and rejects invalid keys or values', () => {
  const sel = { zone: '!a', os: 'debian' };
  assert.equal(checkSelector(sel), sel);
  assert.throws(() => checkSelector({ 'bad key': 'x' }), { code: 'RRM_ERR_BAD_REQUEST' });
  assert.throws(() => checkSelector({ zone: 'a b' }), { code: 'RRM_ERR_BAD_REQUEST' });
  assert.throws(() => checkSelector({ zone: '!!a' }), { code: 'RRM_ERR_BAD_REQUEST' });
});

test('matchesSelector: equality needs the label; inequality also matches an absent label', () => {
  const labels = { os: 'debian', zone: 'a' };
  assert.equal(matchesSelector(labels, { os: 'debian' }), true);
  assert.equal(matchesSelector(labels, { os: 'debian', zone: 'a' }), true);
  assert.equal(matchesSelector(labels, { os: 'debian', zone: 'b' }), false);
  assert.equal(matchesSelector(labels, { arch: 'x86_64' }), false);
  assert.equal(matchesSelector(labels, { zone: '!b' }), true);
  assert.equal(matchesSelector(labels, { zone: '!a' }), false);
  assert.equal(matchesSelector(labels, { arch: '!arm64' }), true);
  assert.equal(matchesSelector({}, parseSelector('zone!=a')), true);
  assert.equal(matchesSelector({}, parseSelector('zone=')), false);
  assert.equal(matchesSelector({ zone: '' }, parseSelector('zone=')), true);
  assert.equal(matchesSelector({ zone: '' }, parseSelector('zone!=')), false);
});

const alnum = fc.constantFrom(...'abcXYZ019');
const inner = (chars: string, max: number) => fc.string({ unit: fc.constantFrom(...chars), maxLength: max });
const keyArb = fc
  .tuple(alnum, fc.option(fc.tuple(inner('ab9._/-', 6), alnum), { nil: undefined }))
  .map(([a, rest]) => (rest ? a + rest[0] + rest[1] : a));
const valueArb = fc.oneof(
  fc.constant(''),
  fc
    .tuple(alnum, fc.option(fc.tuple(inner('ab9._-', 6), alnum), { nil: undefined }))
    .map(([a, rest]) => (rest ? a + rest[0] + rest[1] : a)),
);
const selectorArb = fc.dictionary(
  keyArb,
  fc.tuple(fc.boolean(), valueArb).map(([not, v]) => (not ? `!${v}` : v)),
  { maxKeys: 5, noNullPrototype: true },
);

test('property: formatSelector round-trips through parseSelector', () => {
  fc.assert(
    fc.property(selectorArb, (sel) => {
      const text = formatSelector(sel);
      assert.deepEqual(parseSelector(text), sel, text);
      assert.equal(formatSelector(parseSelector(text)), text);
      assert.equal(checkSelector(sel), sel);
    }),
    { numRuns: 300 },
  );
});

test('property: a selector matches labels built to satisfy it, and fails when one term is broken', () => {
  fc.assert(
    fc.property(selectorArb, fc.nat(), (sel, pick) => {
      const labels: Record<string, string> = {};
      for (const [k, v] of Object.entries(sel)) if (!v.startsWith('!')) labels[k] = v;
      assert.equal(matchesSelector(labels, sel), true);
      const keys = Object.keys(sel);
      if (keys.length === 0) return;
      const k = keys[pick % keys.length] as string;
      const v = sel[k] as string;
      const broken = { ...labels, [k]: v.startsWith('!') ? v.slice(1) : `${v}x` };
      assert.equal(matchesSelector(broken, sel), false, `${k} in ${JSON.stringify(broken)}`);
    }),
  );
});
