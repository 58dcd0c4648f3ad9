/** Opens the embedded ledger for this host with the real process environment. */
import { hostname } from 'node:os';
import type { Config } from '../config.js';
import type { Enforcer } from '../enforce/enforcer.js';
import { localEnforcer, reclaimWith } from '../host/local-enforcer.js';
import { isAlive } from '../host/process-identity.js';
import { localInstanceInit } from '../host/local-instance.js';
import { CoreLedger } from './core-ledger.js';
import { SqliteStore } from './sqlite/sqlite-store.js';

export async function openLocalLedger(
  config: Config,
  enforcer: Enforcer = localEnforcer(config),
): Promise<CoreLedger> {
  const store = new SqliteStore(config.ledgerPath);
  const ledger = new CoreLedger(store, {
    now: Date.now,
    hostname: hostname(),
    isHolderAlive: isAlive,
    reclaimWork: reclaimWith(enforcer),
    forceAfterMs: config.forceAfterMs,
  });
  try {
    await ledger.ensureInstance(localInstanceInit(config.stateDir));
  } catch (e) {
    await ledger.close();
    throw e;
  }
  return ledger;
}
