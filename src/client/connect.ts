/**
 * Which ledger a client talks to: an agent when one is named (--agent / RRM_AGENT) or an agent
 * listens on its default socket and no state directory was named explicitly; otherwise the
 * embedded SQLite ledger.
 */
import { existsSync, readFileSync } from 'node:fs';
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
  defaultSocket: string = DEFAULT_SOCKET,
): AgentEndpoint | undefined {
  const url =
    agentFlag ??
    env.RRM_AGENT ??
    (!explicitStateDir && !env.RRM_STATE_DIR && listening(defaultSocket) ? defaultSocket : undefined);
  return url ? parseAgentUrl(url, env) : undefined;
}

/** __SO_ACCEPTCON in /proc/net/unix's Flags column: the socket listens. */
const ACCEPTING = 0x10000;

/**
 * Whether a process listens on the Unix socket at `path`. A socket file left behind by an agent
 * that was killed is not an agent: /proc/net/unix lists only sockets some process holds. Where
 * that file cannot be read (not Linux), the socket file existing is taken as the answer.
 */
export function listening(path: string): boolean {
  if (!existsSync(path)) return false;
  let table: string;
  try {
    table = readFileSync('/proc/net/unix', 'utf8');
  } catch {
    return true;
  }
  // Num RefCount Protocol Flags Type St Inode Path
  for (const line of table.split('\n')) {
    const m = /^\s*\S+ \S+ \S+ ([0-9A-Fa-f]+) \S+ \S+ \S+ (.+)$/.exec(line);
    if (m && m[2] === path && (parseInt(m[1] as string, 16) & ACCEPTING) !== 0) return true;
  }
  return false;
}

export async function connectLedger(
  config: Config,
  agent: AgentEndpoint | undefined,
  enforcer?: Enforcer,
): Promise<LedgerClient> {
  return agent ? new AgentClient(agent) : openLedger(config, enforcer);
}
