/**
 * Parsers for the cgroup interface files the enforcer reads. Pure; every parser tolerates
 * trailing newlines and blank lines.
 *
 * - flat keyed (`key value` per line): cpu.stat, memory.events, memory.oom_control, cgroup.events
 * - nested keyed (`maj:min key=value ...` per line): io.stat (v2)
 * - blkio service bytes (`maj:min Op value`, `Total value`): blkio.throttle.io_service_bytes[_recursive] (v1)
 */

/** `key value` lines → record. Non-numeric values are skipped. */
export function parseFlatKeyed(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const [key, value, extra] = line.trim().split(/\s+/);
    if (key === undefined || key === '' || value === undefined || extra !== undefined) continue;
    const n = Number(value);
    if (Number.isFinite(n)) out[key] = n;
  }
  return out;
}

/** io.stat: sums every `key=value` over all devices, e.g. `{ rbytes, wbytes, rios, wios, ... }`. */
export function parseIoStat(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const [device, ...pairs] = line.trim().split(/\s+/);
    if (device === undefined || !/^\d+:\d+$/.test(device)) continue;
    for (const pair of pairs) {
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const n = Number(pair.slice(eq + 1));
      if (!Number.isFinite(n)) continue;
      const key = pair.slice(0, eq);
      out[key] = (out[key] ?? 0) + n;
    }
  }
  return out;
}

export interface ReadWriteBytes {
  readonly read: number;
  readonly write: number;
}

/** v1 blkio.throttle.io_service_bytes(_recursive): sums the Read and Write rows over all devices. */
export function parseBlkioServiceBytes(text: string): ReadWriteBytes {
  let read = 0;
  let write = 0;
  for (const line of text.split('\n')) {
    const [device, op, value] = line.trim().split(/\s+/);
    if (device === undefined || !/^\d+:\d+$/.test(device) || value === undefined) continue;
    const n = Number(value);
    if (!Number.isFinite(n)) continue;
    if (op === 'Read') read += n;
    else if (op === 'Write') write += n;
  }
  return { read, write };
}

/** A single-number file (memory.current, cpuacct.usage, cpu.shares). `max` and `-1` → Infinity. */
export function parseSingleValue(text: string): number {
  const t = text.trim();
  if (t === 'max' || t === '-1') return Infinity;
  const n = Number(t);
  if (t === '' || !Number.isFinite(n)) throw new Error(`not a number: ${JSON.stringify(t)}`);
  return n;
}

/** cgroup.procs / tasks: one pid per line. */
export function parseProcs(text: string): number[] {
  const out: number[] = [];
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (t === '') continue;
    const n = Number(t);
    if (Number.isInteger(n) && n > 0) out.push(n);
  }
  return out;
}
