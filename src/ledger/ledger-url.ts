/**
 * Which ledger: `--ledger` / RRM_LEDGER. Pure parsing; nothing is opened here.
 *
 *   (unset) or sqlite                         the embedded SQLite file in the state directory
 *   sqlite:///var/lib/rrm/ledger.db           an explicit SQLite file
 *   etcd://host:2379,host2:2379[/prefix/]     etcd over plain gRPC (loopback or a trusted network)
 *   etcds://host:2379,...                     etcd over TLS: RRM_ETCD_CA, and RRM_ETCD_CERT +
 *                                             RRM_ETCD_KEY for mutual TLS (PEM file paths)
 *   etcd://user:password@host:2379            etcd authentication (or RRM_ETCD_USER/RRM_ETCD_PASSWORD)
 *
 * RRM_ETCD_RETENTION (a duration, default 7d; 0 = forever): how long etcd keeps ended reservations.
 */
import { parseDuration } from '../model/duration.js';
import { RrmError } from '../model/errors.js';

export interface EtcdLedgerSpec {
  readonly kind: 'etcd';
  /** Client URLs, http:// or https://. */
  readonly hosts: readonly string[];
  readonly prefix: string;
  readonly tls?: { readonly ca?: string; readonly cert?: string; readonly key?: string };
  readonly auth?: { readonly username: string; readonly password: string };
  /** How long ended reservations are kept (ms; 0 = until pruned); absent = the store's default. */
  readonly retentionMs?: number;
}

export type LedgerSpec = { readonly kind: 'sqlite'; readonly path: string } | EtcdLedgerSpec;

function bad(text: string, why: string): RrmError {
  return new RrmError('RRM_ERR_USAGE', `--ledger ${JSON.stringify(text)}: ${why}`);
}

export function parseLedgerUrl(
  text: string | undefined,
  defaultPath: string,
  env: NodeJS.ProcessEnv = {},
): LedgerSpec {
  if (text === undefined || text === '' || text === 'sqlite') return { kind: 'sqlite', path: defaultPath };
  if (text.startsWith('sqlite://')) {
    const path = text.slice('sqlite://'.length);
    if (!path.startsWith('/'))
      throw bad(text, 'a SQLite ledger needs an absolute path: sqlite:///path/ledger.db');
    return { kind: 'sqlite', path };
  }
  const m = /^(etcds?):\/\/(?:([^:@/]+):([^@/]*)@)?([^/]+)(\/.*)?$/.exec(text);
  if (!m) throw bad(text, 'use sqlite, sqlite:///path, etcd://host:2379[,host:2379...] or etcds://...');
  const [, scheme, user, password, hostList, path] = m as unknown as [
    string,
    string,
    string | undefined,
    string | undefined,
    string,
    string | undefined,
  ];
  const tls = scheme === 'etcds';
  const hosts = hostList.split(',').map((h) => {
    const hm = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?$/.exec(h);
    const port = hm?.[2] === undefined ? 2379 : Number(hm[2]);
    if (!hm || port < 1 || port > 65535) throw bad(text, `${JSON.stringify(h)} is not host or host:port`);
    return `${tls ? 'https' : 'http'}://${hm[1]}:${port}`;
  });
  const prefix = path === undefined || path === '/' ? '/rrm/' : path.endsWith('/') ? path : `${path}/`;
  const decode = (s: string): string => {
    try {
      return decodeURIComponent(s);
    } catch {
      throw bad(text, 'the user or password is not valid percent-encoding');
    }
  };
  const set = (v: string | undefined): string | undefined => (v === '' ? undefined : v);
  const username = user !== undefined ? decode(user) : set(env.RRM_ETCD_USER);
  const pass = password !== undefined ? decode(password) : set(env.RRM_ETCD_PASSWORD);
  if ((username === undefined) !== (pass === undefined)) {
    throw bad(text, 'etcd authentication needs both a user and a password');
  }
  const files = { ca: set(env.RRM_ETCD_CA), cert: set(env.RRM_ETCD_CERT), key: set(env.RRM_ETCD_KEY) };
  if (!tls && (files.ca || files.cert || files.key)) {
    throw bad(text, 'RRM_ETCD_CA/CERT/KEY are set: use etcds:// for TLS');
  }
  if ((files.cert === undefined) !== (files.key === undefined)) {
    throw bad(text, 'mutual TLS needs both RRM_ETCD_CERT and RRM_ETCD_KEY');
  }
  const retention = set(env.RRM_ETCD_RETENTION);
  const retentionMs = retention === undefined ? undefined : parseDuration(retention, 'RRM_ETCD_RETENTION');
  return {
    kind: 'etcd',
    hosts,
    prefix,
    ...(retentionMs !== undefined ? { retentionMs } : {}),
    ...(tls ? { tls: files } : {}),
    ...(username !== undefined ? { auth: { username, password: pass as string } } : {}),
  };
}
