/** Opens the ledger the config names (embedded SQLite or etcd) with the real process environment. */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { Config } from '../config.js';
import type { Enforcer } from '../enforce/enforcer.js';
import { localEnforcer, reclaimWith } from '../host/local-enforcer.js';
import { isAlive } from '../host/process-identity.js';
import { localInstanceInit } from '../host/local-instance.js';
import { RrmError } from '../model/errors.js';
import { CoreLedger } from './core-ledger.js';
import type { Store } from './ledger.js';
import type { EtcdLedgerSpec } from './ledger-url.js';
import { SqliteStore } from './sqlite/sqlite-store.js';

async function openEtcdStore(spec: EtcdLedgerSpec): Promise<Store> {
  const read = (what: string, path: string | undefined): Buffer | undefined => {
    if (path === undefined) return undefined;
    try {
      return readFileSync(path);
    } catch (e) {
      throw new RrmError('RRM_ERR_USAGE', `cannot read the etcd ${what} ${path}: ${(e as Error).message}`);
    }
  };
  const { EtcdStore } = await import('./etcd/etcd-store.js'); // the gRPC stack loads only for etcd
  return new EtcdStore({
    hosts: spec.hosts,
    prefix: spec.prefix,
    ...(spec.retentionMs !== undefined ? { retentionMs: spec.retentionMs } : {}),
    ...(spec.tls
      ? {
          credentials: {
            // Without a CA file, gRPC falls back to the system's trusted roots.
            rootCertificate: read('CA', spec.tls.ca) as Buffer,
            ...(spec.tls.cert
              ? { certChain: read('certificate', spec.tls.cert), privateKey: read('key', spec.tls.key) }
              : {}),
          },
        }
      : {}),
    ...(spec.auth ? { auth: { username: spec.auth.username, password: spec.auth.password } } : {}),
  });
}

/**
 * The embedded ledger creates this host's instance on first use. On a fleet ledger only the
 * agent does (`createInstance`), so a command run on a host without an agent adds nothing.
 */
export async function openLedger(
  config: Config,
  enforcer: Enforcer = localEnforcer(config),
  opts: { readonly createInstance?: boolean } = {},
): Promise<CoreLedger> {
  const store =
    config.ledger.kind === 'sqlite'
      ? new SqliteStore(config.ledger.path)
      : await openEtcdStore(config.ledger);
  const ledger = new CoreLedger(store, {
    now: Date.now,
    hostname: hostname(),
    isHolderAlive: isAlive,
    reclaimWork: reclaimWith(enforcer),
    forceAfterMs: config.forceAfterMs,
  });
  if (config.ledger.kind !== 'sqlite' && !opts.createInstance) return ledger;
  try {
    await ledger.ensureInstance(localInstanceInit(config.stateDir, config.instanceId, config.instanceLabels));
  } catch (e) {
    await ledger.close();
    throw e;
  }
  return ledger;
}
