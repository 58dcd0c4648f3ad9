/**
 * End-to-end: the `rrm pnpm ...` and `rrm yarn ...` shortcuts against the real pnpm@9 and yarn@1,
 * installed from the npm registry into a temporary prefix before anything runs (a failed install
 * fails every test: nothing here is skipped for want of the tools). Each run is the real rrm
 * executable in a throwaway project directory with its own state directory, advisory enforcement
 * (RRM_ENFORCE=none) and its own pnpm store, yarn cache and npm cache, so nothing reads or writes
 * the user's. One test runs both installs under real cgroup enforcement where this host has it.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { RRM } from '../support/cli.js';
import { SqliteStore } from '../../src/ledger/sqlite/sqlite-store.js';
import type { ResourceProfile } from '../../src/profiles/profile.js';

type Manager = 'pnpm' | 'yarn';

const MANAGERS: readonly Manager[] = ['pnpm', 'yarn'];
const LOCKFILE: Readonly<Record<Manager, string>> = { pnpm: 'pnpm-lock.yaml', yarn: 'yarn.lock' };
const SPEC = 'is-number@7.0.0';

let base = '';
let bin = '';
const versions: Partial<Record<Manager, string>> = {};

interface Ran {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs argv (never through a shell) in cwd; output collected. */
function run(cwd: string, argv: readonly string[], env: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<Ran> {
  return new Promise((res, rej) => {
    const child = spawn(argv[0] as string, argv.slice(1), {
      cwd,
      env,
      shell: false,
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: timeoutMs,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', rej);
    child.on('close', (code, signal) => res({ code, signal, stdout, stderr }));
  });
}

const show = (r: Ran): string =>
  `exit ${r.code} (${r.signal})\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

/** A fresh directory under the test's base. */
function dir(prefix: string): string {
  return mkdtempSync(join(base, `${prefix}-`));
}

function project(manager: Manager): string {
  const p = dir(`project-${manager}`);
  writeFileSync(
    join(p, 'package.json'),
    JSON.stringify({ name: `rrm-e2e-${manager}`, version: '1.0.0', private: true }, null, 2),
  );
  return p;
}

/**
 * The environment of every run: the real pnpm/yarn first on PATH, a private rrm state directory,
 * advisory enforcement, no profile files, and private pnpm/yarn/npm caches. Inherited npm_config_*
 * (set when the suite runs under `npm test`) and RRM_* that would redirect rrm are dropped.
 */
function envFor(state: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^npm_(config|package|lifecycle)_/i.test(k)) continue;
    if (/^(RRM_|YARN_|PNPM_)/.test(k)) continue;
    env[k] = v;
  }
  const home = join(state, 'home');
  mkdirSync(home, { recursive: true });
  return {
    ...env,
    PATH: `${bin}${delimiter}${process.env.PATH ?? ''}`,
    RRM_STATE_DIR: state,
    RRM_ENFORCE: 'none',
    RRM_PROFILE_DIRS: '',
    npm_config_cache: join(home, 'npm-cache'),
    npm_config_store_dir: join(home, 'pnpm-store'),
    npm_config_update_notifier: 'false',
    XDG_CACHE_HOME: join(home, 'cache'),
    XDG_DATA_HOME: join(home, 'data'),
    XDG_STATE_HOME: join(home, 'state'),
    YARN_CACHE_FOLDER: join(home, 'yarn-cache'),
    YARN_DISABLE_SELF_UPDATE_CHECK: 'true',
    ...extra,
  };
}

function rrm(
  cwd: string,
  state: string,
  args: readonly string[],
  extra: NodeJS.ProcessEnv = {},
): Promise<Ran> {
  return run(cwd, [process.execPath, RRM, ...args], envFor(state, extra));
}

/** `--json` goes before any `--`: after it, it would be the command's. */
async function rrmJson<T>(cwd: string, state: string, args: readonly string[]): Promise<T> {
  const dd = args.indexOf('--');
  const r = await rrm(
    cwd,
    state,
    dd >= 0 ? [...args.slice(0, dd), '--json', ...args.slice(dd)] : [...args, '--json'],
  );
  assert.equal(r.code, 0, `rrm ${args.join(' ')} --json: ${show(r)}`);
  return JSON.parse(r.stdout) as T;
}

interface HistoryItem {
  readonly id: string;
  readonly state: string;
  readonly requests: Record<string, number>;
  readonly waitedMs?: number;
  readonly ranMs?: number;
  readonly reason?: string;
  readonly command?: string[];
}

interface EventItem {
  readonly type: string;
  readonly from?: string;
  readonly to?: string;
  readonly reason: string;
}

interface DryRun {
  readonly command: string[];
  readonly profile: ResourceProfile;
  readonly packages: Array<{ manager: string; name: string; version?: string }>;
  readonly prediction: { would: string };
}

/** The ledger's own record of a reservation (`rrm history --json` leaves out its packages). */
async function ledgerRecord(state: string, id: string) {
  const store = new SqliteStore(join(state, 'ledger.db'));
  try {
    return await store.reservation(id);
  } finally {
    await store.close();
  }
}

function installedVersion(projectDir: string, name: string): string | undefined {
  const path = join(projectDir, 'node_modules', name, 'package.json');
  return existsSync(path)
    ? (JSON.parse(readFileSync(path, 'utf8')) as { version?: string }).version
    : undefined;
}

before(
  async () => {
    base = mkdtempSync(join(tmpdir(), 'rrm-pnpm-yarn-'));
    const tools = join(base, 'tools');
    const env = { ...process.env, npm_config_update_notifier: 'false' };
    const r = await run(
      base,
      ['npm', 'install', '--prefix', tools, '--no-audit', '--no-fund', 'pnpm@9', 'yarn@1'],
      env,
      110_000,
    );
    assert.equal(r.code, 0, `installing pnpm@9 and yarn@1 from the registry failed:\n${show(r)}`);
    bin = join(tools, 'node_modules', '.bin');
    for (const m of MANAGERS) {
      const pkg = JSON.parse(readFileSync(join(tools, 'node_modules', m, 'package.json'), 'utf8')) as {
        version: string;
      };
      versions[m] = pkg.version;
      assert.ok(existsSync(join(bin, m)), `${m} is on ${bin}`);
    }
    assert.match(versions.pnpm ?? '', /^9\./);
    assert.match(versions.yarn ?? '', /^1\./);
  },
  { timeout: 120_000 },
);

after(() => {
  if (base) rmSync(base, { recursive: true, force: true });
});

for (const m of MANAGERS) {
  test(
    `rrm ${m} add ${SPEC}: the real ${m} installs it inside a reservation sized from npm metadata`,
    {
      timeout: 90_000,
    },
    async (t) => {
      t.diagnostic(`${m} ${versions[m]}`);
      const cwd = project(m);
      const state = dir(`state-${m}`);
      const argv = [m, 'add', SPEC];

      // What rrm would reserve: the profile from the npm registry's metadata for is-number.
      const dry = await rrmJson<DryRun>(cwd, state, ['run', '--dry-run', '--', ...argv]);
      assert.deepEqual(dry.command, argv);
      assert.deepEqual(dry.packages, [{ manager: m, name: 'is-number', version: '7.0.0' }]);
      assert.equal(dry.prediction.would, 'grant now');
      for (const dim of ['cpu', 'memory', 'disk']) {
        const source = dry.profile.sources[dim];
        assert.equal(source?.provenance, 'metadata', `${dim}: ${JSON.stringify(source)}`);
        if (dim === 'cpu')
          assert.match(source?.note ?? '', /^npm registry metadata: is-number@7\.0\.0 plain;/);
      }
      // The shortcut's own --dry-run shows the same and installs nothing.
      const shortDry = await rrm(cwd, state, [...argv, '--dry-run']);
      assert.equal(shortDry.code, 0, show(shortDry));
      assert.match(shortDry.stdout, /metadata .*npm registry metadata: is-number@7\.0\.0 plain/);
      assert.match(shortDry.stdout, /would grant now/);
      assert.equal(existsSync(join(cwd, 'node_modules')), false, 'a dry run installs nothing');
      assert.deepEqual(
        await rrmJson<HistoryItem[]>(cwd, state, ['history']),
        [],
        'a dry run reserves nothing',
      );

      // The install: `rrm <m> add is-number@7.0.0`, the real binary found on PATH, cwd the project.
      const started = Date.now();
      const r = await rrm(cwd, state, argv);
      t.diagnostic(`rrm ${argv.join(' ')}: ${Date.now() - started} ms`);
      assert.equal(r.code, 0, show(r));
      assert.match(r.stderr, /rrm: rsv_\S+ granted cpu=/);
      assert.match(r.stderr, /rrm: rsv_\S+ released after .*; exit 0;/);
      assert.equal(installedVersion(cwd, 'is-number'), '7.0.0');
      const lock = join(cwd, LOCKFILE[m]);
      assert.ok(existsSync(lock), `${LOCKFILE[m]} written`);
      assert.match(readFileSync(lock, 'utf8'), /is-number/);
      const manifest = JSON.parse(readFileSync(join(cwd, 'package.json'), 'utf8')) as {
        dependencies?: Record<string, string>;
      };
      assert.match(manifest.dependencies?.['is-number'] ?? '', /7\.0\.0/);

      // One reservation, granted and released, for exactly that argv, with the metadata profile.
      const history = await rrmJson<HistoryItem[]>(cwd, state, ['history']);
      assert.equal(history.length, 1, JSON.stringify(history));
      const [h] = history as [HistoryItem];
      assert.equal(h.state, 'released');
      assert.equal(h.reason, 'command exited 0');
      assert.deepEqual(h.command, argv);
      assert.equal(typeof h.waitedMs, 'number', 'it was granted');
      assert.equal(typeof h.ranMs, 'number', 'it ran');
      assert.deepEqual(h.requests, dry.profile.requests, 'the run reserved the dry run profile');
      const events = await rrmJson<EventItem[]>(cwd, state, ['history', h.id]);
      const transitions = events.filter((e) => e.from !== e.to).map((e) => e.to);
      assert.deepEqual(transitions, ['queued', 'granted', 'released'], JSON.stringify(events));
      const record = await ledgerRecord(state, h.id);
      assert.deepEqual(record?.packages, [{ manager: m, name: 'is-number', version: '7.0.0' }]);
    },
  );
}

for (const m of MANAGERS) {
  test(`rrm ${m} --version: not an install, runs and exits 0`, { timeout: 60_000 }, async (t) => {
    const cwd = project(m);
    const state = dir(`state-version-${m}`);
    const r = await rrm(cwd, state, [m, '--version']);
    assert.equal(r.code, 0, show(r));
    assert.equal(r.stdout.trim(), versions[m]);
    assert.equal(existsSync(join(cwd, 'node_modules')), false);

    await t.test('profiled as not an install: no packages, rrm defaults', async () => {
      const dry = await rrmJson<DryRun>(cwd, state, ['run', '--dry-run', '--', m, '--version']);
      assert.deepEqual(dry.packages, []);
      assert.equal(dry.profile.sources.cpu?.note, 'rrm default (not an install)');
      const history = await rrmJson<HistoryItem[]>(cwd, state, ['history']);
      for (const h of history) {
        const record = await ledgerRecord(state, h.id);
        assert.deepEqual(record?.packages, [], `${h.id} names no packages`);
      }
    });

    await t.test('creates no reservation (README: non-installs "pass through unreserved")', async () => {
      const history = await rrmJson<HistoryItem[]>(cwd, state, ['history']);
      assert.deepEqual(
        history.map((h) => h.command),
        [],
      );
    });
  });
}

/** Words that would run `touch` if any shell saw them. */
function hostileWords(pwnedAbs: string): string[] {
  return [`; touch ${pwnedAbs}`, '; touch pwned', '$(touch pwned)', '`touch pwned`'];
}

for (const m of MANAGERS) {
  test(
    `rrm ${m} add <shell syntax>: the word reaches ${m} as one argv word, no shell runs it`,
    {
      timeout: 90_000,
    },
    async () => {
      const pwned = join(base, `pwned-${m}`);
      // Control: a shell given the same words does run them, so the check below can see it.
      const control = dir(`control-${m}`);
      for (const w of hostileWords(join(control, 'pwned'))) {
        spawnSync('/bin/sh', ['-c', `true ${w}`], { cwd: control, stdio: 'ignore' });
      }
      assert.ok(existsSync(join(control, 'pwned')), 'a shell runs these words');

      for (const word of hostileWords(pwned)) {
        const cwd = project(m);
        const state = dir(`state-hostile-${m}`);
        const r = await rrm(cwd, state, [m, 'add', word]);
        assert.equal(existsSync(pwned), false, `${JSON.stringify(word)} ran touch: ${show(r)}`);
        assert.equal(existsSync(join(cwd, 'pwned')), false, `${JSON.stringify(word)} ran touch: ${show(r)}`);
        // The exit is the manager's own: the same as running it directly (argv, no shell).
        const directCwd = project(m);
        const direct = await run(directCwd, [m, 'add', word], envFor(dir(`state-direct-${m}`)));
        assert.equal(r.code, direct.code, `rrm: ${show(r)}\ndirect: ${show(direct)}`);
        assert.notEqual(r.code, 127, 'not "command not found" from a shell');
        if (!(m === 'pnpm' && word === `; touch ${pwned}`)) {
          // pnpm 9 reads a word with a slash as a directory to link (and exits 0); the others it refuses.
          assert.notEqual(r.code, 0, show(r));
          assert.ok(
            r.stdout.includes(word) || r.stderr.includes(word),
            `${m} names the literal word ${JSON.stringify(word)}: ${show(r)}`,
          );
          assert.match(`${r.stdout}${r.stderr}`, m === 'pnpm' ? /ERR_PNPM_/ : /error Couldn't find package/);
        }
        const history = await rrmJson<HistoryItem[]>(cwd, state, ['history']);
        assert.deepEqual(
          history.map((h) => [h.state, h.command]),
          [['released', [m, 'add', word]]],
          'the argv was recorded exactly as given',
        );
      }
      assert.equal(existsSync(pwned), false);
    },
  );
}

/** Removes the (empty) parent cgroup rrm created under every mounted hierarchy. */
function removeCgroupParent(name: string): void {
  for (const line of readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
    const [, mount, type] = line.split(' ');
    if (!mount || (type !== 'cgroup' && type !== 'cgroup2')) continue;
    try {
      rmdirSync(join(mount, name));
    } catch {
      // not created there, or not empty
    }
  }
}

const CGROUP_PARENT = `rrm-test-pnpm-yarn-${process.pid}`;

/** The driver `rrm doctor --dry-run` reports with enforcement on (it creates nothing). */
function enforcementDriver(): string {
  const state = mkdtempSync(join(tmpdir(), 'rrm-pnpm-yarn-doctor-'));
  try {
    const r = spawnSync(process.execPath, [RRM, 'doctor', '--dry-run', '--json'], {
      env: { ...process.env, RRM_STATE_DIR: state, RRM_CGROUP_PARENT: CGROUP_PARENT, RRM_ENFORCE: 'auto' },
      encoding: 'utf8',
    });
    return r.status === 0
      ? ((JSON.parse(r.stdout) as { enforcement: { driver: string } }).enforcement.driver ?? 'none')
      : 'none';
  } catch {
    return 'none';
  } finally {
    rmSync(state, { recursive: true, force: true });
  }
}

const driver = process.getuid?.() === 0 ? enforcementDriver() : 'none';

for (const m of MANAGERS) {
  test(
    `rrm ${m} add ${SPEC} under real cgroup enforcement (${driver})`,
    {
      skip: driver === 'none' ? 'needs root and a writable cgroup hierarchy' : false,
      timeout: 90_000,
    },
    async (t) => {
      t.after(() => removeCgroupParent(CGROUP_PARENT));
      const cwd = project(m);
      const state = dir(`state-enforced-${m}`);
      const r = await rrm(cwd, state, [m, 'add', SPEC], {
        RRM_ENFORCE: 'auto',
        RRM_CGROUP_PARENT: CGROUP_PARENT,
      });
      const peak = /peak memory ([\d.]+\w+)|peak ([\d.]+\w+)/.exec(r.stderr);
      t.diagnostic(`${m}: exit ${r.code}; peak ${peak?.[1] ?? peak?.[2] ?? '?'}`);
      assert.equal(r.code, 0, show(r));
      assert.equal(installedVersion(cwd, 'is-number'), '7.0.0');
      const [h] = await rrmJson<HistoryItem[]>(cwd, state, ['history']);
      assert.equal(h?.state, 'released');
      assert.equal(h?.reason, 'command exited 0');
    },
  );
}
