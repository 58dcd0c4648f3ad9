/**
 * Helpers for the tests that use this machine's real cgroups (test helper: no side effects on
 * import). Each test file gets its own parent (`rrm-test-<pid>-<tag>`), destroys whatever it
 * created in `after`, removes the parent and asserts nothing is left in any hierarchy.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { probeEnforcer, type Enforcer } from '../../src/enforce/enforcer.js';

/** Why real-cgroup tests cannot run here, or false. */
export function skipReason(
  needs: ReadonlyArray<'cpu' | 'cpuacct' | 'memory' | 'freezer'> = [],
): string | false {
  if (process.platform !== 'linux') return 'needs Linux cgroups';
  if (process.getuid?.() !== 0) return 'needs root to create cgroups';
  const e = probeEnforcer({ parent: 'rrm-test-probe-only' });
  if (e.report.driver === 'none') return `no usable cgroups: ${e.report.reason}`;
  const missing = needs.filter((c) => e.report.controllers[c] === 'missing');
  return missing.length > 0 ? `controllers missing here: ${missing.join(', ')}` : false;
}

export function testEnforcer(tag: string): Enforcer {
  return probeEnforcer({ parent: `rrm-test-${process.pid}-${tag}` });
}

/** Asserts the tests left no reservation cgroup under the test parent (then removes any, and the parent). */
export async function cleanupAndAssertEmpty(e: Enforcer): Promise<void> {
  // What the tests left is noted before it is cleaned up (they must destroy their own slots).
  const leftover = e.list();
  for (const id of leftover) await e.open(id)?.destroy();
  assert.deepEqual(leftover, [], 'reservation cgroups the tests left behind');
  assert.deepEqual(e.list(), [], 'reservation cgroups that could not be removed');
  assert.equal(e.removeParentIfEmpty(), true);
  const left = e.report.parentDirs.filter((d) => fs.existsSync(d));
  assert.deepEqual(left, [], 'test parent cgroups left behind');
}

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface Running {
  readonly child: ChildProcess;
  readonly exited: Promise<Exit>;
}

/** Spawns a wrap()ped argv (never through a shell of ours), collecting output. */
export function start(argv: readonly string[], timeoutMs = 30_000): Running {
  const [cmd, ...args] = argv;
  if (cmd === undefined) throw new Error('empty argv');
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (b: Buffer) => (stdout += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
  const exited = new Promise<Exit>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`child did not exit within ${timeoutMs} ms`));
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
  return { child, exited };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * `n` busy loops in one process tree. Two already spin on both cores of a 2-core host; four per
 * cgroup give the load balancer finer pieces, so per-CPU splits (and hence the measured ratio)
 * stay close to the configured weights even while other work competes for the host.
 */
export function spinners(n: number): string[] {
  return ['/bin/sh', '-c', 'while :; do :; done & '.repeat(n) + 'wait'];
}
