/**
 * The embedded ledger: one SQLite file (WAL) shared by every rrm process on the host. Each
 * decision runs inside BEGIN IMMEDIATE, so two processes never decide on the same snapshot.
 * Change notification needs no daemon: after every commit the writer rewrites one byte of a
 * `<ledger>.notify` file, and watchers of the state directory (inotify via fs.watch) wake up and
 * re-read. (Watching the WAL itself loses wake-ups: its frames are written before the commit is
 * visible to readers, and the visibility flip happens in shared memory, which makes no event.)
 */
import Database from 'better-sqlite3';
import { closeSync, mkdirSync, openSync, watch, writeSync, type FSWatcher } from 'node:fs';

const NOTIFY_BYTE = Buffer.from('.');
import { basename, dirname } from 'node:path';
import type { InstanceRecord, InstanceSnapshot, LedgerEvent } from '../../admission/snapshot.js';
import { RrmError, isRrmError } from '../../model/errors.js';
import type { Reservation } from '../../model/reservation.js';
import type {
  Decided,
  EventFilter,
  InstanceInit,
  ListFilter,
  Registration,
  Store,
  StoredEvent,
} from '../ledger.js';
import { MIGRATIONS } from './migrations.js';

interface InstanceRow {
  id: string;
  capacity: string;
  allocatable: string;
  labels: string;
  revision: number;
  seq: number;
}

interface EventRow {
  seq: number;
  at: number;
  instance: string;
  reservation: string | null;
  type: LedgerEvent['type'];
  from_state: string | null;
  to_state: string | null;
  reason: string;
  by: string;
  data: string | null;
}

export interface SqliteStoreOptions {
  /** `full` fsyncs every commit; `normal` (default) is WAL's group commit: durable across process crashes. */
  readonly synchronous?: 'normal' | 'full';
  readonly busyTimeoutMs?: number;
}

export class SqliteStore implements Store {
  private readonly db: Database.Database;
  private readonly watchers = new Set<() => void>();
  private fsWatcher: FSWatcher | undefined;
  private readonly snapshotCache = new Map<
    string,
    { revision: number; reservations: readonly Reservation[] }
  >();
  private notifyFd: number | undefined;

  constructor(
    readonly path: string,
    opts: SqliteStoreOptions = {},
  ) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    try {
      this.db = new Database(path);
      this.db.pragma(`busy_timeout = ${opts.busyTimeoutMs ?? 10_000}`);
      this.db.pragma('journal_mode = WAL');
      this.db.pragma(`synchronous = ${opts.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
      // Each decision rewrites the same few pages; checkpointing every 1,000 WAL frames (the default)
      // copies them back every few dozen decisions. Every 8,000 frames copies each page once as often
      // for about 8× fewer checkpoints; the WAL file is cut back to 32 MiB after each.
      this.db.pragma('wal_autocheckpoint = 8000');
      this.db.pragma(`journal_size_limit = ${32 * 2 ** 20}`);
      this.db.pragma('foreign_keys = ON');
      this.migrate();
    } catch (e) {
      throw ledgerError(e, `cannot open the ledger at ${path}`);
    }
  }

  private migrate(): void {
    // Up to date (every open but the first): no write lock needed.
    if ((this.db.pragma('user_version', { simple: true }) as number) === MIGRATIONS.length) return;
    const run = this.db.transaction(() => {
      const version = this.db.pragma('user_version', { simple: true }) as number;
      if (version > MIGRATIONS.length) {
        throw new RrmError(
          'RRM_ERR_LEDGER',
          `ledger schema version ${version} is newer than this rrm understands`,
        );
      }
      for (let v = version; v < MIGRATIONS.length; v++) this.db.exec(MIGRATIONS[v] as string);
      this.db.pragma(`user_version = ${MIGRATIONS.length}`);
    });
    run.immediate();
  }

  async createInstance(init: InstanceInit, now: number): Promise<InstanceRecord> {
    this.stmt(
      `INSERT INTO instances (id, capacity, allocatable, labels, revision, seq, updated_at)
         VALUES (?, ?, ?, ?, 0, 0, ?) ON CONFLICT(id) DO NOTHING`,
    ).run(
      init.id,
      JSON.stringify(init.capacity),
      JSON.stringify(init.allocatable),
      JSON.stringify(init.labels ?? {}),
      now,
    );
    return (await this.instance(init.id)) as InstanceRecord;
  }

  async instance(id: string): Promise<InstanceRecord | undefined> {
    return this.readInstance(id);
  }

  async instances(): Promise<InstanceRecord[]> {
    const rows = this.stmt('SELECT * FROM instances ORDER BY id').all() as InstanceRow[];
    return rows.map(toInstance);
  }

  async snapshot(instanceId: string): Promise<InstanceSnapshot | undefined> {
    return this.db.transaction(() => this.readSnapshot(instanceId)).deferred();
  }

  async snapshots(): Promise<InstanceSnapshot[]> {
    return this.db
      .transaction(() =>
        (this.stmt('SELECT id FROM instances ORDER BY id').all() as { id: string }[]).flatMap(
          ({ id }) => this.readSnapshot(id) ?? [],
        ),
      )
      .deferred();
  }

  /** One host, one file: the instance is up while the file is. */
  async register(): Promise<Registration> {
    return { lost: new Promise<void>(() => undefined), stop: async () => undefined };
  }

  /** One decision: read the snapshot, decide, write what changed. Built once (see transact). */
  private decideOnce<T>(
    instanceId: string,
    decide: (snap: InstanceSnapshot) => Decided<T>,
  ): { result: T; next?: { revision: number; reservations: readonly Reservation[] } } {
    const snap = this.readSnapshot(instanceId);
    if (!snap) throw new RrmError('RRM_ERR_NOT_FOUND', `no instance ${instanceId}`, { instance: instanceId });
    const { transition, result } = decide(snap);
    if (
      transition.upserts.length === 0 &&
      transition.events.length === 0 &&
      transition.instance === snap.instance
    )
      return { result };
    const written = this.write(snap, transition);
    const byId = new Map(snap.reservations.map((r) => [r.id, r]));
    for (const r of written) byId.set(r.id, r);
    return {
      result,
      next: {
        revision: snap.instance.revision + 1,
        reservations: [...byId.values()].filter((r) => r.state === 'queued' || r.state === 'granted'),
      },
    };
  }

  private decideTxn: Database.Transaction<SqliteStore['decideOnce']> | undefined;

  async transact<T>(instanceId: string, decide: (snap: InstanceSnapshot) => Decided<T>): Promise<T> {
    this.decideTxn ??= this.db.transaction((id: string, d: (snap: InstanceSnapshot) => Decided<unknown>) =>
      this.decideOnce(id, d),
    ) as Database.Transaction<SqliteStore['decideOnce']>;
    try {
      const { result, next } = this.decideTxn.immediate(instanceId, decide) as {
        result: T;
        next?: { revision: number; reservations: readonly Reservation[] };
      };
      if (next) {
        this.snapshotCache.set(instanceId, next);
        this.notify();
      }
      return result;
    } catch (e) {
      throw isRrmError(e) ? e : ledgerError(e, 'ledger transaction failed');
    }
  }

  async reservation(id: string): Promise<Reservation | undefined> {
    const row = this.stmt('SELECT record FROM reservations WHERE id = ?').get(id) as
      { record: string } | undefined;
    return row ? (JSON.parse(row.record) as Reservation) : undefined;
  }

  async byIdempotencyKey(key: string): Promise<Reservation | undefined> {
    const row = this.stmt('SELECT record FROM reservations WHERE idempotency_key = ?').get(key) as
      { record: string } | undefined;
    return row ? (JSON.parse(row.record) as Reservation) : undefined;
  }

  async list(filter: ListFilter): Promise<Reservation[]> {
    const where: string[] = [];
    const args: unknown[] = [];
    if (filter.instance) {
      where.push('instance = ?');
      args.push(filter.instance);
    }
    if (filter.states && filter.states.length > 0) {
      where.push(`state IN (${filter.states.map(() => '?').join(',')})`);
      args.push(...filter.states);
    }
    const sql = `SELECT record FROM reservations ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY created_at DESC, arrival DESC LIMIT ?`;
    const rows = this.stmt(sql).all(...args, filter.limit ?? 1000) as { record: string }[];
    return rows.map((r) => JSON.parse(r.record) as Reservation);
  }

  async events(filter: EventFilter): Promise<StoredEvent[]> {
    const where: string[] = ['seq > ?'];
    const args: unknown[] = [filter.afterSeq ?? 0];
    if (filter.reservation) {
      where.push('reservation = ?');
      args.push(filter.reservation);
    }
    if (filter.instance) {
      where.push('instance = ?');
      args.push(filter.instance);
    }
    const rows = this.stmt(
      `SELECT * FROM (SELECT * FROM events WHERE ${where.join(' AND ')} ORDER BY seq DESC LIMIT ?) ORDER BY seq`,
    ).all(...args, filter.limit ?? 1000) as EventRow[];
    return rows.map(toEvent);
  }

  async appendEvent(event: LedgerEvent): Promise<void> {
    this.insertEvent.run(...eventArgs(event));
  }

  watch(listener: () => void): () => void {
    this.watchers.add(listener);
    if (!this.fsWatcher) {
      const notifyName = basename(this.notifyPath);
      this.fsWatcher = watch(dirname(this.path), { persistent: false }, (_type, name) => {
        if (name === null || String(name) === notifyName) for (const w of this.watchers) w();
      });
      this.fsWatcher.on('error', () => undefined);
    }
    return () => {
      this.watchers.delete(listener);
      if (this.watchers.size === 0) {
        this.fsWatcher?.close();
        this.fsWatcher = undefined;
      }
    };
  }

  private get notifyPath(): string {
    return `${this.path}.notify`;
  }

  /** Tells watchers in every process that a commit is visible. */
  private notify(): void {
    try {
      this.notifyFd ??= openSync(this.notifyPath, 'w', 0o644);
      writeSync(this.notifyFd, NOTIFY_BYTE, 0, 1, 0);
    } catch {
      // Best effort: waiters also poll.
    }
  }

  async close(): Promise<void> {
    if (this.notifyFd !== undefined) closeSync(this.notifyFd);
    this.notifyFd = undefined;
    this.fsWatcher?.close();
    this.fsWatcher = undefined;
    this.watchers.clear();
    if (this.db.open) this.db.close();
  }

  private readonly statements = new Map<string, Database.Statement>();

  /** Prepared statements are cached: preparing costs more than running on the hot path. */
  private stmt(sql: string): Database.Statement {
    let st = this.statements.get(sql);
    if (!st) {
      st = this.db.prepare(sql);
      this.statements.set(sql, st);
    }
    return st;
  }

  private get insertEvent(): Database.Statement {
    return this.stmt(
      `INSERT INTO events (at, instance, reservation, type, from_state, to_state, reason, by, data)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
  }

  private readInstance(id: string): InstanceRecord | undefined {
    const row = this.stmt('SELECT * FROM instances WHERE id = ?').get(id) as InstanceRow | undefined;
    return row ? toInstance(row) : undefined;
  }

  /**
   * The active reservations of an instance. Parsed records are cached per instance revision: every
   * committed change, from any process, bumps the revision, so an unchanged revision means unchanged
   * records and the JSON need not be parsed again.
   */
  private readSnapshot(instanceId: string): InstanceSnapshot | undefined {
    const instance = this.readInstance(instanceId);
    if (!instance) return undefined;
    const cached = this.snapshotCache.get(instanceId);
    if (cached && cached.revision === instance.revision)
      return { instance, reservations: cached.reservations };
    const rows = this.stmt(
      `SELECT record FROM reservations WHERE instance = ? AND state IN ('queued', 'granted')`,
    ).all(instanceId) as { record: string }[];
    const reservations = rows.map((r) => JSON.parse(r.record) as Reservation);
    this.snapshotCache.set(instanceId, { revision: instance.revision, reservations });
    return { instance, reservations };
  }

  /** Writes a transition; returns the records as stored (read back from their JSON). */
  private write(before: InstanceSnapshot, t: Decided<unknown>['transition']): Reservation[] {
    const stored: Reservation[] = [];
    const inst = t.instance;
    this.stmt(
      `UPDATE instances SET capacity = ?, allocatable = ?, labels = ?, revision = ?, seq = ?, updated_at = ? WHERE id = ?`,
    ).run(
      JSON.stringify(inst.capacity),
      JSON.stringify(inst.allocatable),
      JSON.stringify(inst.labels),
      before.instance.revision + 1,
      inst.seq,
      Date.now(),
      inst.id,
    );
    const upsert = this.stmt(
      `INSERT INTO reservations (id, instance, state, priority, arrival, idempotency_key, created_at, ended_at, record)
       VALUES (@id, @instance, @state, @priority, @arrival, @idempotencyKey, @createdAt, @endedAt, @record)
       ON CONFLICT(id) DO UPDATE SET state = excluded.state, priority = excluded.priority, ended_at = excluded.ended_at,
         record = excluded.record`,
    );
    for (const r of t.upserts) {
      const record = JSON.stringify(r);
      stored.push(JSON.parse(record) as Reservation);
      upsert.run({
        id: r.id,
        instance: r.instance,
        state: r.state,
        priority: r.priority,
        arrival: r.arrival,
        idempotencyKey: r.idempotencyKey ?? null,
        createdAt: r.createdAt,
        endedAt: r.endedAt ?? null,
        record,
      });
    }
    const insert = this.insertEvent;
    for (const e of t.events) insert.run(...eventArgs(e));
    return stored;
  }
}

function eventArgs(e: LedgerEvent): unknown[] {
  return [
    e.at,
    e.instance,
    e.reservation ?? null,
    e.type,
    e.from ?? null,
    e.to ?? null,
    e.reason,
    e.by,
    e.data ? JSON.stringify(e.data) : null,
  ];
}

function toInstance(row: InstanceRow): InstanceRecord {
  return {
    id: row.id,
    capacity: JSON.parse(row.capacity),
    allocatable: JSON.parse(row.allocatable),
    labels: JSON.parse(row.labels),
    revision: row.revision,
    seq: row.seq,
  };
}

function toEvent(row: EventRow): StoredEvent {
  return {
    seq: row.seq,
    at: row.at,
    instance: row.instance,
    reservation: row.reservation ?? undefined,
    type: row.type,
    from: row.from_state ?? undefined,
    to: row.to_state ?? undefined,
    reason: row.reason,
    by: row.by,
    ...(row.data ? { data: JSON.parse(row.data) } : {}),
  };
}

function ledgerError(e: unknown, what: string): RrmError {
  const msg = e instanceof Error ? e.message : String(e);
  return new RrmError('RRM_ERR_LEDGER', `${what}: ${msg}`, { cause: msg });
}
