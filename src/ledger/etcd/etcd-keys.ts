/**
 * Where the etcd ledger keeps what. Every key starts with the store's prefix (default `/rrm/`);
 * ids are URI-encoded so that no id can reach into another key's range. `<rev>` is an instance
 * revision, zero-padded to 16 digits so that keys sort in commit order.
 *
 *   instances/<instance>                      InstanceRecord (JSON) + `txn` (id of the commit that wrote it)
 *   active/<instance>/<reservation>           Reservation (JSON), only while queued or granted
 *   reservations/<reservation>                Reservation (JSON), every reservation, latest version;
 *                                             once ended, bound to the retention lease (deleted by etcd)
 *   idempotency/<key>                         reservation id (text); the same lease once it ended
 *   events/<instance>/<rev>                   { txn, events: LedgerEvent[] } written by one transaction
 *   events/<instance>/x<random>               { events: [LedgerEvent] } from appendEvent
 *   event-index/<reservation>/<instance>/<rev>  { events: [[i, LedgerEvent], ...] } the reservation's share
 *   event-index/<reservation>/<instance>/x<random>  the same for appendEvent
 *   agents/<instance>                         AgentPresence (JSON) of the agent that registered it last
 *   alive/<instance>                          the same, bound to the agent's kept-alive etcd lease;
 *                                             an instance with agents/ but no alive/ is down
 *   commits/<instance>/<rev>                  id of the transaction attempt that committed <rev>
 *                                             (kept for COMMIT_MARKER_RETENTION revisions)
 *
 * A snapshot is `instances/<i>` plus the range `active/<i>/`, read in one read-only Txn. A commit
 * writes all of the above that changed in one Txn guarded by the instance key's mod_revision.
 * An event's `seq` is `mod_revision × SEQ_PER_REVISION + i` where `i` is its index in the events
 * key written by that Txn: unique, ascending in commit order across the whole ledger.
 */

/** Events per etcd revision that a seq can tell apart (one Txn never writes nearly this many). */
export const SEQ_PER_REVISION = 65_536;

/** How many later instance revisions a commit marker survives (see EtcdStore.transact). */
export const COMMIT_MARKER_RETENTION = 4_096;

export function padRevision(rev: number): string {
  return String(rev).padStart(16, '0');
}

const enc = encodeURIComponent;

export class EtcdKeys {
  constructor(readonly prefix: string) {}

  instancesPrefix(): string {
    return `${this.prefix}instances/`;
  }
  instance(id: string): string {
    return `${this.prefix}instances/${enc(id)}`;
  }
  activeAllPrefix(): string {
    return `${this.prefix}active/`;
  }
  activePrefix(instance: string): string {
    return `${this.prefix}active/${enc(instance)}/`;
  }
  active(instance: string, id: string): string {
    return `${this.activePrefix(instance)}${enc(id)}`;
  }
  reservationsPrefix(): string {
    return `${this.prefix}reservations/`;
  }
  reservation(id: string): string {
    return `${this.prefix}reservations/${enc(id)}`;
  }
  idempotency(key: string): string {
    return `${this.prefix}idempotency/${enc(key)}`;
  }
  eventsPrefix(instance?: string): string {
    return instance === undefined ? `${this.prefix}events/` : `${this.prefix}events/${enc(instance)}/`;
  }
  events(instance: string, suffix: string): string {
    return `${this.eventsPrefix(instance)}${suffix}`;
  }
  eventIndexPrefix(reservation: string): string {
    return `${this.prefix}event-index/${enc(reservation)}/`;
  }
  eventIndex(reservation: string, instance: string, suffix: string): string {
    return `${this.eventIndexPrefix(reservation)}${enc(instance)}/${suffix}`;
  }
  agentsPrefix(): string {
    return `${this.prefix}agents/`;
  }
  agent(instance: string): string {
    return `${this.prefix}agents/${enc(instance)}`;
  }
  alivePrefix(): string {
    return `${this.prefix}alive/`;
  }
  alive(instance: string): string {
    return `${this.prefix}alive/${enc(instance)}`;
  }
  commitsPrefix(instance: string): string {
    return `${this.prefix}commits/${enc(instance)}/`;
  }
  commit(instance: string, rev: number): string {
    return `${this.commitsPrefix(instance)}${padRevision(rev)}`;
  }
}

/** The smallest key greater than every key starting with `prefix` (etcd's range_end for a prefix). */
export function prefixEnd(prefix: string | Buffer): Buffer {
  const b = Buffer.from(prefix);
  for (let i = b.length - 1; i >= 0; i--) {
    if ((b[i] as number) < 0xff) {
      const end = b.subarray(0, i + 1);
      end[i] = (b[i] as number) + 1;
      return end;
    }
  }
  return Buffer.from([0]);
}
