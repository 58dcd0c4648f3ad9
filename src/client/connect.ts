/**
 * Which ledger a client talks to: an agent when one is named (--agent / RRM_AGENT) or its default
 * socket exists and no state directory was named explicitly; otherwise the embedded SQLite ledger.
 */
import { existsSync } from 'node:fs';
import { DEFAULT_SOCKET } from '../agent/agent-config.js';
import type { Config } from '../config.js';
import type { Enforcer } from '../enforce/enforcer.js';
import type { LedgerClient } from '../ledger/ledger-client.js';
import { openLedger } from '../ledger/open.js';
import { AgentClient, parseAgentUrl, type AgentEndpoint } from './agent-client.js';

export function chooseAgent(
  env: NodeJS.ProcessEnv,
  agentFlag: string | undefined,
  explicitStateDir: boolean,
): AgentEndpoint | undefined {
  const url =
    agentFlag ??
    env.RRM_AGENT ??
    (!explicitStateDir && !env.RRM_STATE_DIR && existsSync(DEFAULT_SOCKET) ? DEFAULT_SOCKET : undefined);
  return url ? parseAgentUrl(url, env) : undefined;
}

export async function connectLedger(
  config: Config,
  agent: AgentEndpoint | undefined,
  enforcer?: Enforcer,
): Promise<LedgerClient> {
  return agent ? new AgentClient(agent) : openLedger(config, enforcer);
}
