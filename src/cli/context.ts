/** What every command needs: the compiled config and, when it touches the ledger, the ledger. */
import { compileConfig, type Config } from '../config.js';
import type { LedgerClient } from '../ledger/ledger-client.js';
import type { Enforcer } from '../enforce/enforcer.js';
import { openLocalLedger } from '../ledger/open.js';
import { str, type Values } from './args.js';
import type { Io } from './output.js';

export interface Context {
  readonly io: Io;
  readonly env: NodeJS.ProcessEnv;
  config(values: Values): Config;
  /** Opens the ledger; call only after all input was validated, so bad input never touches it. */
  ledger(config: Config, enforcer?: Enforcer): Promise<LedgerClient>;
}

export function makeContext(io: Io, env: NodeJS.ProcessEnv): Context {
  return {
    io,
    env,
    config: (values) => compileConfig(env, { stateDir: str(values, 'state-dir') }),
    ledger: (config, enforcer) => openLocalLedger(config, enforcer),
  };
}

export const COMMON_OPTIONS = {
  json: { type: 'boolean' },
  'state-dir': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;
