/** A CoreLedger over SqliteStore with this host's real environment, as src/ledger/open.ts builds it. */
import { hostname } from 'node:os';
import { CoreLedger } from '../../src/ledger/core-ledger.js';
import { SqliteStore, type SqliteStoreOptions } from '../../src/ledger/sqlite/sqlite-store.js';
import { isAlive, processStartTime } from '../../src/host/process-identity.js';
import type { Holder, ReservationRequest } from '../../src/model/reservation.js';
import type { ResourceVector } from '../../src/model/vector.js';

export const INSTANCE = 'local';

export function openBenchLedger(path: string, opts: SqliteStoreOptions = {}): CoreLedger {
  return new CoreLedger(new SqliteStore(path, opts), {
    now: Date.now,
    hostname: hostname(),
    isHolderAlive: isAlive,
    reclaimWork: async () => undefined,
    forceAfterMs: 15_000,
  });
}

export function selfHolder(): Holder {
  return { host: hostname(), pid: process.pid, startTime: processStartTime(process.pid), owner: 'bench' };
}

export function benchRequest(
  requests: ResourceVector,
  holder: Holder,
  over: Partial<ReservationRequest> = {},
): ReservationRequest {
  return {
    packages: [{ manager: 'npm', name: 'bench-pkg' }],
    command: ['npm', 'install', 'bench-pkg'],
    requests,
    target: INSTANCE,
    mode: 'hard',
    priority: 500,
    preemptible: true,
    mayPreempt: true,
    onPreempt: 'requeue',
    leaseMs: 30_000,
    holder,
    ...over,
  };
}
