/** The compiled configuration: environment values are parsed once, bad ones are usage errors naming the variable. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileConfig } from '../src/config.js';
import { isRrmError } from '../src/model/errors.js';

const base = { RRM_STATE_DIR: '/tmp/rrm-config-test' };

function usage(env: NodeJS.ProcessEnv): string {
  try {
    compileConfig({ ...base, ...env });
  } catch (e) {
    assert.ok(isRrmError(e), String(e));
    assert.equal(e.exitCode, 64);
    return e.message;
  }
  assert.fail(`${JSON.stringify(env)} was accepted`);
}

test('defaults: a 25% cap margin, no I/O device, cgroups probed under rrm', () => {
  const c = compileConfig(base);
  assert.equal(c.limitMargin, 0.25);
  assert.equal(c.ioDevice, undefined);
  assert.equal(c.cgroupParent, 'rrm');
  assert.equal(c.enforce, 'auto');
  assert.ok(Object.isFrozen(c));
});

test('RRM_LIMIT_MARGIN takes a fraction or a percentage; RRM_IO_DEVICE takes major:minor', () => {
  assert.equal(compileConfig({ ...base, RRM_LIMIT_MARGIN: '0.5' }).limitMargin, 0.5);
  assert.equal(compileConfig({ ...base, RRM_LIMIT_MARGIN: '10%' }).limitMargin, 0.1);
  assert.equal(compileConfig({ ...base, RRM_LIMIT_MARGIN: '0' }).limitMargin, 0);
  assert.equal(compileConfig({ ...base, RRM_IO_DEVICE: '8:0' }).ioDevice, '8:0');
  assert.match(usage({ RRM_LIMIT_MARGIN: '-1' }), /RRM_LIMIT_MARGIN: "-1"/);
  assert.match(usage({ RRM_LIMIT_MARGIN: 'lots' }), /RRM_LIMIT_MARGIN: "lots"/);
  assert.match(usage({ RRM_LIMIT_MARGIN: '5000%' }), /up to 1000%/);
  assert.match(usage({ RRM_IO_DEVICE: 'sda' }), /RRM_IO_DEVICE: "sda" is not major:minor/);
  assert.match(usage({ RRM_ENFORCE: 'maybe' }), /RRM_ENFORCE/);
  assert.match(usage({ RRM_LEASE: 'soon' }), /RRM_LEASE/);
});
