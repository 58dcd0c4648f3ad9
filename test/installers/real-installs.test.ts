/**
 * Real installs (needs the npm registry and Debian's archive, and root for apt): three npm packages
 * into temporary prefixes — plain (is-number), with an install script (esbuild), and a node-gyp
 * build from source (better-sqlite3@12, about a minute) — and two small Debian packages, installed
 * with `apt-get install -y` and removed again. Each is profiled from real metadata first, then the
 * very argv that was profiled is run (an argv array, no shell) and the prediction is checked against
 * what it did.
 *
 * The concurrency test runs the rrm executable's shortcut, `rrm apt-get install -y <pkg>`, with no
 * resource flags: the apt adapter itself asks for dpkg-lock, so the second install waits for the first.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { compileConfig } from '../../src/config.js';
import { execArgv } from '../../src/installers/index.js';
import { resolveContext, resolveInstallProfile } from '../../src/profiles/resolve.js';

const RRM = resolve(import.meta.dirname, '../../bin/rrm.js');
const MiB = 2 ** 20;

function du(dir: string): number {
  let total = 0;
  const stack = [dir];
  while (stack.length) {
    const d = stack.pop() as string;
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) stack.push(p);
      else if (e.isFile()) total += statSync(p).size;
    }
  }
  return total;
}

function chain(cwd: string) {
  const config = compileConfig(process.env, { stateDir: mkdtempSync(join(tmpdir(), 'rrm-real-state-')) });
  return {
    ...resolveContext({ ...config, metadataTimeoutMs: 10_000 }, process.env, { history: 'none', cwd }),
    now: Date.now(),
  };
}

const npmEnv = { npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' };

async function npmInstall(
  spec: string,
  kind: RegExp,
  timeoutMs: number,
): Promise<{ prefix: string; predictedDisk: number; measuredDisk: number }> {
  const prefix = mkdtempSync(join(tmpdir(), 'rrm-npm-real-'));
  const argv = ['npm', 'install', '--no-save', '--prefix', prefix, spec];
  const { profile, intent, packages } = await resolveInstallProfile(argv, { requests: {} }, chain(prefix));
  assert.equal(intent?.manager, 'npm');
  assert.equal(profile.sources.memory?.provenance, 'metadata', profile.sources.memory?.note);
  assert.match(profile.sources.memory?.note ?? '', kind);
  assert.equal(packages.length, 1);
  assert.ok(packages[0]?.version, 'the version was resolved');
  const r = await execArgv(argv, { timeoutMs, env: npmEnv });
  assert.equal(r.code, 0, r.stderr);
  const measuredDisk = du(join(prefix, 'node_modules'));
  const predictedDisk = profile.requests.disk ?? 0;
  // Disk: unpacked sizes from the registry's tarballs; within a factor of 2 of what landed.
  assert.ok(
    predictedDisk >= measuredDisk / 2 && predictedDisk <= measuredDisk * 2 + 4 * MiB,
    `disk predicted ${predictedDisk}, measured ${measuredDisk}`,
  );
  return { prefix, predictedDisk, measuredDisk };
}

test('npm, plain: is-number', { timeout: 120_000 }, async () => {
  await npmInstall('is-number@7.0.0', /is-number@7\.0\.0 plain/, 60_000);
});

test('npm, install script: esbuild', { timeout: 120_000 }, async () => {
  const { prefix } = await npmInstall('esbuild@0.24.0', /esbuild@0\.24\.0 scripts/, 90_000);
  assert.ok(
    existsSync(join(prefix, 'node_modules', '@esbuild', 'linux-x64')) || process.arch !== 'x64',
    'the platform binary package was installed',
  );
});

test('npm, node-gyp build from source: better-sqlite3@12', { timeout: 400_000 }, async () => {
  const { prefix } = await npmInstall('better-sqlite3@12', /better-sqlite3@12\.\d+\.\d+ native/, 360_000);
  assert.ok(
    existsSync(join(prefix, 'node_modules', 'better-sqlite3', 'build', 'Release', 'better_sqlite3.node')),
    'the addon was built',
  );
});

const isRoot = process.getuid?.() === 0;
const hasApt = spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status === 0;
const APT_PACKAGES = ['sl', 'figlet'];
const installed = (pkg: string): boolean =>
  spawnSync('dpkg-query', ['-W', '-f', '${Status}', pkg], { encoding: 'utf8' }).stdout.includes(
    'install ok installed',
  );
const aptSkip =
  !isRoot || !hasApt
    ? 'needs root and apt-get'
    : APT_PACKAGES.some(installed)
      ? `${APT_PACKAGES.join('/')} already installed here`
      : false;
const aptEnv = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };

function removeAll(): void {
  spawnSync('apt-get', ['remove', '-y', '-q', '--purge', ...APT_PACKAGES], { env: aptEnv, stdio: 'ignore' });
}

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
  endedAt: number;
}

function run(argv: readonly string[], env: NodeJS.ProcessEnv = aptEnv): Promise<Ran> {
  return new Promise((res) => {
    const child = spawn(argv[0] as string, argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => res({ code, stdout, stderr, endedAt: Date.now() }));
  });
}

/** Removes the (empty) parent cgroup rrm created under every mounted hierarchy. */
function removeCgroupParent(name: string): void {
  const mounts = readFileSync('/proc/self/mounts', 'utf8').split('\n');
  for (const line of mounts) {
    const [, dir, type] = line.split(' ');
    if (!dir || (type !== 'cgroup' && type !== 'cgroup2')) continue;
    try {
      rmdirSync(join(dir, name));
    } catch {
      // not created there, or not empty
    }
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test(
  'apt: two small packages profiled from apt-get -s and apt-cache, installed, measured, removed',
  { skip: aptSkip, timeout: 180_000 },
  async (t) => {
    t.after(removeAll);
    for (const pkg of APT_PACKAGES) {
      const argv = ['apt-get', 'install', '-y', '-q', pkg];
      const { profile, packages } = await resolveInstallProfile(argv, { requests: {} }, chain(process.cwd()));
      assert.equal(profile.requests['dpkg-lock'], 1);
      assert.equal(profile.sources['dpkg-lock']?.provenance, 'installer');
      assert.equal(profile.sources.disk?.provenance, 'metadata', JSON.stringify(profile.sources));
      assert.equal(packages[0]?.name, pkg);
      assert.ok(packages[0]?.version);
      const r = await run(argv);
      assert.equal(r.code, 0, r.stderr);
      const kib = Number(
        spawnSync('dpkg-query', ['-W', '-f', '${Installed-Size}', pkg], { encoding: 'utf8' }).stdout,
      );
      assert.ok(
        (profile.requests.disk ?? 0) >= kib * 1024,
        `disk ${profile.requests.disk} covers Installed-Size ${kib}KiB`,
      );
    }
  },
);

test(
  'concurrent apt-get installs: plain ones fight over the dpkg lock; rrm apt-get install -y: both succeed',
  { skip: aptSkip, timeout: 300_000 },
  async (t) => {
    t.after(removeAll);
    removeAll();
    // Plain: the second apt-get finds the lock taken and gives up.
    const first = run(['apt-get', 'install', '-y', '-q', APT_PACKAGES[0] as string]);
    await sleep(150);
    const second = run(['apt-get', 'install', '-y', '-q', APT_PACKAGES[1] as string]);
    const plain = await Promise.all([first, second]);
    const failed = plain.filter((r) => r.code !== 0);
    assert.equal(failed.length, 1, plain.map((r) => `${r.code}: ${r.stderr}`).join('\n'));
    assert.match(failed[0]?.stderr ?? '', /Could not get lock|Unable to acquire the dpkg frontend lock/);
    removeAll();
    // Through rrm: the adapter asks for dpkg-lock, so the second waits and then succeeds.
    const state = mkdtempSync(join(tmpdir(), 'rrm-apt-state-'));
    const parent = `rrm-test-apt-${process.pid}`;
    t.after(() => removeCgroupParent(parent));
    const env = { ...aptEnv, RRM_STATE_DIR: state, RRM_CGROUP_PARENT: parent };
    const a = run([process.execPath, RRM, 'apt-get', 'install', '-y', '-q', APT_PACKAGES[0] as string], env);
    await sleep(150);
    const b = run([process.execPath, RRM, 'apt-get', 'install', '-y', '-q', APT_PACKAGES[1] as string], env);
    const viaRrm = await Promise.all([a, b]);
    for (const r of viaRrm) assert.equal(r.code, 0, r.stderr);
    assert.ok(
      viaRrm.some((r) => /after waiting/.test(r.stderr)),
      viaRrm.map((r) => r.stderr).join('\n'),
    );
    for (const r of viaRrm) assert.match(r.stderr, /granted .*dpkg-lock=1/, 'the lock came from the adapter');
    for (const pkg of APT_PACKAGES) assert.ok(installed(pkg), `${pkg} installed`);
  },
);
