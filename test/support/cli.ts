/** Runs the real `rrm` executable against a private state directory. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync, readdirSync } from 'node:fs';
import { readProcStat } from '../../src/host/process-identity.js';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createHash } from 'node:crypto';

export const ROOT = resolve(import.meta.dirname, '../../..');
export const RRM = join(ROOT, 'dist/bin/rrm.js');
export const JOB = join(ROOT, 'test/fixtures/job.mjs');

export function stateDir(): string {
  return mkdtempSync(join(tmpdir(), 'rrm-test-'));
}

export interface Done {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function start(
  dir: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv = {},
): ChildProcess & { done: Promise<Done> } {
  const child = spawn(process.execPath, [RRM, ...args], {
    env: { ...process.env, RRM_STATE_DIR: dir, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d) => (stdout += d));
  child.stderr?.on('data', (d) => (stderr += d));
  const done = new Promise<Done>((res) =>
    child.on('close', (code, signal) => res({ code, signal, stdout, stderr })),
  );
  return Object.assign(child, { done });
}

export function rrm(dir: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<Done> {
  return start(dir, args, env).done;
}

export async function rrmJson<T>(dir: string, args: readonly string[]): Promise<T> {
  const r = await rrm(dir, [...args, '--json']);
  if (r.code !== 0) throw new Error(`rrm ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

export interface LogLine {
  readonly what: string;
  readonly name: string;
  readonly at: number;
  readonly pid: number;
  readonly reservation: string;
}

export function readLog(path: string): LogLine[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [what, name, at, pid, reservation] = l.split(' ');
      return { what: what!, name: name!, at: Number(at), pid: Number(pid), reservation: reservation! };
    });
}

export function fileHash(path: string): string {
  return existsSync(path) ? createHash('sha256').update(readFileSync(path)).digest('hex') : 'absent';
}

export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 20_000,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** True when any live (non-zombie) process is in the group. Zombies count as gone: PID 1 may not reap them. */
export function groupAlive(pgid: number): boolean {
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    const st = readProcStat(Number(pid));
    if (st && st.pgrp === pgid && st.state !== 'Z' && st.state !== 'X') return true;
  }
  return false;
}
