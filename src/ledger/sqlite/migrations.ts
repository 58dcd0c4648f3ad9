/** Schema migrations, applied in order; PRAGMA user_version records how far a file has come. */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE instances (
    id TEXT PRIMARY KEY,
    capacity TEXT NOT NULL,
    allocatable TEXT NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}',
    revision INTEGER NOT NULL DEFAULT 0,
    seq INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL
  );
  CREATE TABLE reservations (
    id TEXT PRIMARY KEY,
    instance TEXT NOT NULL REFERENCES instances(id),
    state TEXT NOT NULL,
    priority INTEGER NOT NULL,
    arrival INTEGER NOT NULL,
    idempotency_key TEXT UNIQUE,
    created_at INTEGER NOT NULL,
    ended_at INTEGER,
    record TEXT NOT NULL
  );
  CREATE INDEX reservations_active ON reservations(instance, state) WHERE state IN ('queued', 'granted');
  CREATE INDEX reservations_created ON reservations(created_at);
  CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    instance TEXT NOT NULL,
    reservation TEXT,
    type TEXT NOT NULL,
    from_state TEXT,
    to_state TEXT,
    reason TEXT NOT NULL,
    by TEXT NOT NULL,
    data TEXT
  );
  CREATE INDEX events_reservation ON events(reservation, seq);
  `,
];
