/**
 * The local instance: capacity read off the machine, allocatable = capacity − a system reserve,
 * as the kubelet computes it. Rates the machine cannot tell us get documented defaults.
 */
import { cpus, totalmem } from 'node:os';
import { statfsSync } from 'node:fs';
import type { ResourceVector } from '../model/vector.js';
import type { InstanceInit } from '../ledger/ledger.js';

export const LOCAL_INSTANCE = 'local';
const MiB = 2 ** 20;
const GiB = 2 ** 30;

/** Disk I/O and network bandwidth cannot be read reliably; these are the defaults until set. */
export const DEFAULT_DISK_IO = 200 * MiB;
export const DEFAULT_NETWORK = 125_000_000;

export function machineCapacity(stateDir: string): ResourceVector {
  let disk = 0;
  try {
    const fs = statfsSync(stateDir);
    disk = fs.bavail * fs.bsize;
  } catch {
    disk = 0;
  }
  return {
    cpu: cpus().length * 1000,
    memory: totalmem(),
    disk,
    diskIo: DEFAULT_DISK_IO,
    network: DEFAULT_NETWORK,
    'dpkg-lock': 1,
  };
}

/** The system reserve: 100m CPU per core (at least 100m), 10% of memory (256Mi–2Gi), 10% of free disk. */
export function systemReserve(capacity: ResourceVector): ResourceVector {
  const cpu = capacity.cpu ?? 0;
  const memory = capacity.memory ?? 0;
  return {
    cpu: Math.max(100, Math.round(cpu / 10)),
    memory: Math.min(2 * GiB, Math.max(256 * MiB, Math.round(memory / 10))),
    disk: Math.round((capacity.disk ?? 0) / 10),
  };
}

export function localInstanceInit(
  stateDir: string,
  id: string = LOCAL_INSTANCE,
  labels: Readonly<Record<string, string>> = { host: 'local' },
): InstanceInit {
  const capacity = machineCapacity(stateDir);
  const reserve = systemReserve(capacity);
  const allocatable: Record<string, number> = {};
  for (const [k, v] of Object.entries(capacity)) allocatable[k] = Math.max(0, v - (reserve[k] ?? 0));
  return { id, capacity, allocatable, labels };
}
