import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../src/ledger/sqlite/sqlite-store.js';
import { ledgerConformance } from './support/ledger-conformance.js';

ledgerConformance({
  name: 'sqlite',
  async create() {
    const path = join(mkdtempSync(join(tmpdir(), 'rrm-ledger-')), 'ledger.db');
    return { store: new SqliteStore(path), reopen: async () => new SqliteStore(path) };
  },
});
