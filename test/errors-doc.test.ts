import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CATALOGUE } from '../src/model/errors.js';
import { ROOT } from './support/cli.js';

test('docs/errors.md documents every code with its exit code and HTTP status, and nothing else', () => {
  const doc = readFileSync(join(ROOT, 'docs/errors.md'), 'utf8');
  const rows = new Map<string, [number, number]>();
  for (const m of doc.matchAll(/^\| `(RRM_ERR_[A-Z_]+)` *\| (\d+) *\| (\d+) *\|/gm))
    rows.set(m[1] as string, [Number(m[2]), Number(m[3])]);
  for (const [code, spec] of Object.entries(CATALOGUE))
    assert.deepEqual(rows.get(code), [spec.exit, spec.http], code);
  assert.deepEqual([...rows.keys()].sort(), Object.keys(CATALOGUE).sort());
});
