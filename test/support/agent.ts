/** A real agent for tests: in-process (startAgent) or as a child process, on a temp socket and a loopback port. */
import { spawn, type ChildProcess } from 'node:child_process';
import { after } from 'node:test';
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compileAgentConfig } from '../../src/agent/agent-config.js';
import { startAgent, type RunningAgent } from '../../src/agent/agent.js';
import { AgentClient } from '../../src/client/agent-client.js';
import { compileConfig } from '../../src/config.js';
import { RRM, waitFor } from './cli.js';

export const TOKENS = {
  admin: 'admin-token-0123456789abcdef',
  alice: 'alice-token-0123456789abcdef',
  bob: 'bob-token-0123456789abcdef012',
  quota: 'quota-token-0123456789abcdef',
};

export function agentConfigFile(dir: string, extra: Record<string, unknown> = {}): string {
  const file = join(dir, 'agent.json');
  writeFileSync(
    file,
    JSON.stringify({
      socket: join(dir, 'agent.sock'),
      listen: '127.0.0.1:0',
      tokensDir: join(dir, 'tokens'),
      tokens: {
        ops: { token: TOKENS.admin, admin: true },
        alice: { token: TOKENS.alice },
        bob: { token: TOKENS.bob },
        'quota-user': { token: TOKENS.quota },
      },
      policy: { quotas: { 'quota-user': { cpu: '1', memory: '1Gi' } } },
      logLevel: 'warn',
      ...extra,
    }),
  );
  return file;
}

export interface TestAgent {
  readonly dir: string;
  readonly agent: RunningAgent;
  readonly url: string;
  client(token: string): AgentClient;
}

export async function startTestAgent(extra: Record<string, unknown> = {}): Promise<TestAgent> {
  const dir = mkdtempSync(join(tmpdir(), 'rrm-agent-'));
  const env = { RRM_STATE_DIR: dir };
  const config = compileAgentConfig(env, { config: agentConfigFile(dir, extra) }, dir);
  const agent = await startAgent(config, compileConfig(env), 'test');
  const url = `http://127.0.0.1:${agent.tcpAddress!.port}`;
  return {
    dir,
    agent,
    url,
    client: (token) =>
      new AgentClient({ host: '127.0.0.1', port: agent.tcpAddress!.port, token, where: url }),
  };
}

/**
 * Agents still running when a test file's tests are done (a failed assertion skipped a test's
 * cleanup) are killed, so they cannot keep the file's process alive.
 */
const spawned = new Set<ChildProcess>();
after(() => {
  for (const c of spawned) c.kill('SIGKILL');
});

export interface AgentProcess {
  readonly child: ChildProcess;
  readonly url: string;
  readonly socket: string;
  stderr(): string;
}

/** `rrm agent` as a child process on `dir`; resolves once it listens. */
export async function spawnAgent(
  dir: string,
  port = 0,
  extra: Record<string, unknown> = {},
  env: NodeJS.ProcessEnv = {},
): Promise<AgentProcess> {
  const config = agentConfigFile(dir, { listen: `127.0.0.1:${port}`, ...extra });
  const child = spawn(process.execPath, [RRM, 'agent', '--config', config], {
    env: { ...process.env, RRM_STATE_DIR: dir, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  spawned.add(child);
  child.once('exit', () => spawned.delete(child));
  let err = '';
  child.stderr?.on('data', (d) => (err += d));
  child.stdout?.on('data', () => undefined);
  let url: string;
  try {
    url = await waitFor(
      'agent listening',
      () => /listening on (https?:\/\/[\d.]+:\d+)/.exec(err)?.[1],
      30_000,
    );
    await waitFor('agent socket', () => (existsSync(join(dir, 'agent.sock')) ? true : undefined));
  } catch (e) {
    child.kill('SIGKILL');
    throw new Error(`${(e as Error).message}; agent stderr: ${err.slice(-2000)}`);
  }
  return { child, url, socket: join(dir, 'agent.sock'), stderr: () => err };
}

export function tokenFile(dir: string, user: string): string {
  return readFileSync(join(dir, 'tokens', user), 'utf8').trim();
}
