/**
 * Process identity on Linux: pid plus start time (field 22 of /proc/<pid>/stat), which tells a
 * live holder from a dead one whose pid was reused. A zombie counts as dead.
 */
import { readFileSync } from 'node:fs';

export interface ProcessStat {
  readonly state: string;
  readonly pgrp: number;
  readonly startTime: number;
}

/** Parses /proc/<pid>/stat text; the command name may contain spaces and parentheses. */
export function parseProcStat(text: string): ProcessStat | undefined {
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  const fields = text
    .slice(close + 2)
    .trim()
    .split(/\s+/);
  const state = fields[0];
  const pgrp = Number(fields[2]);
  const startTime = Number(fields[19]);
  if (!state || !Number.isFinite(pgrp) || !Number.isFinite(startTime)) return undefined;
  return { state, pgrp, startTime };
}

export function readProcStat(pid: number): ProcessStat | undefined {
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

export function processStartTime(pid: number): number {
  return readProcStat(pid)?.startTime ?? 0;
}

/** True when the process with this pid exists, is not a zombie, and started at `startTime` (0: unknown, not compared). */
export function isAlive(pid: number, startTime: number): boolean {
  const st = readProcStat(pid);
  if (!st || st.state === 'Z' || st.state === 'X') return false;
  return startTime === 0 || st.startTime === startTime;
}

/** SIGKILL a whole process group; true when a signal was delivered. */
export function killProcessGroup(pgid: number, signal: NodeJS.Signals = 'SIGKILL'): boolean {
  if (!Number.isInteger(pgid) || pgid <= 1) return false;
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}
