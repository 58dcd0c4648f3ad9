/** What every command needs: the compiled config and, when it touches the ledger, the ledger. */
import { compileConfig, type Config } from '../config.js';
import type { LedgerClient } from '../ledger/ledger-client.js';
import type { Enforcer } from '../enforce/enforcer.js';
import type { AgentEndpoint } from '../client/agent-client.js';
import { chooseAgent, connectLedger } from '../client/connect.js';
import { str, type Values } from './args.js';
import type { Io } from './output.js';

export interface Context {
  readonly io: Io;
  readonly env: NodeJS.ProcessEnv;
  config(values: Values): Config;
  /**
   * The agent to go through: `--agent` / RRM_AGENT, else the default socket when it exists and no
   * state directory was named explicitly; undefined means the embedded ledger.
   */
  agent(values: Values): AgentEndpoint | undefined;
  /** Opens the ledger; call only after all input was validated, so bad input never touches it. */
  ledger(config: Config, enforcer?: Enforcer, values?: Values): Promise<LedgerClient>;
}

export function makeContext(
  io: Io,
  env: NodeJS.ProcessEnv,
  agentFlag?: string,
  ledgerFlag?: string,
): Context {
  // Chosen once per command (it may read /proc/net/unix): by whether a state directory was named.
  const chosen = new Map<boolean, AgentEndpoint | undefined>();
  const agent = (values: Values = {}): AgentEndpoint | undefined => {
    const explicit = str(values, 'state-dir') !== undefined;
    if (!chosen.has(explicit)) chosen.set(explicit, chooseAgent(env, agentFlag, explicit));
    return chosen.get(explicit);
  };
  return {
    io,
    env,
    config: (values) => compileConfig(env, { stateDir: str(values, 'state-dir'), ledger: ledgerFlag }),
    agent,
    ledger: (config, enforcer, values) => connectLedger(config, agent(values), enforcer),
  };
}

export const COMMON_OPTIONS = {
  json: { type: 'boolean' },
  'state-dir': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;
