/**
 * `rrm --agent http://host:port run ...`: the install runs on the agent's instance. Its output and
 * progress stream back as NDJSON; rrm exits with the remote command's exit code.
 */
import { AgentClient, type AgentEndpoint } from '../client/agent-client.js';
import { RrmError, type ErrorCode } from '../model/errors.js';
import type { ReservationRequest } from '../model/reservation.js';
import type { Say } from '../runner/run-install.js';

interface Line {
  type: 'event' | 'output' | 'result' | 'error';
  event?: string;
  text?: string;
  stream?: 'stdout' | 'stderr';
  data?: string;
  exitCode?: number;
  error?: { code: ErrorCode; message: string };
  [k: string]: unknown;
}

export async function remoteInstall(
  ep: AgentEndpoint,
  request: ReservationRequest,
  say: Say,
): Promise<number> {
  const client = new AgentClient(ep);
  const body = {
    command: request.command,
    requests: request.requests,
    ...(request.limits ? { limits: request.limits } : {}),
    mode: request.mode,
    priority: request.priority,
    ...(request.waitMs !== undefined ? { waitMs: request.waitMs } : {}),
    ...(request.timeLimitMs !== undefined ? { timeLimitMs: request.timeLimitMs } : {}),
    preemptible: request.preemptible,
    mayPreempt: request.mayPreempt,
    onPreempt: request.onPreempt,
    packages: request.packages,
  };
  const res = await client.open('POST', '/v1/installs', body);
  if (res.statusCode !== 200) {
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    const e = (
      JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as {
        error?: { code: ErrorCode; message: string };
      }
    ).error;
    throw new RrmError(
      e?.code ?? 'RRM_ERR_AGENT_UNAVAILABLE',
      `agent ${ep.where}: ${e?.message ?? `HTTP ${res.statusCode}`}`,
    );
  }
  let buffered = '';
  let exitCode: number | undefined;
  let failure: RrmError | undefined;
  for await (const chunk of res) {
    buffered += (chunk as Buffer).toString('utf8');
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = JSON.parse(buffered.slice(0, nl)) as Line;
      buffered = buffered.slice(nl + 1);
      if (line.type === 'output')
        (line.stream === 'stderr' ? process.stderr : process.stdout).write(line.data ?? '');
      else if (line.type === 'event') {
        if (line.event !== 'waiting') say(String(line.event), `[${ep.where}] ${line.text ?? ''}`, line);
      } else if (line.type === 'result') exitCode = line.exitCode;
      else if (line.type === 'error' && line.error)
        failure = new RrmError(line.error.code, `[${ep.where}] ${line.error.message}`);
    }
  }
  if (failure) throw failure;
  if (exitCode === undefined)
    throw new RrmError(
      'RRM_ERR_AGENT_UNAVAILABLE',
      `agent ${ep.where} ended the install stream without a result`,
    );
  return exitCode;
}
