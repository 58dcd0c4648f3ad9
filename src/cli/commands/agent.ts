/** `rrm agent`: run the per-instance daemon until SIGTERM/SIGINT. */
import { compileAgentConfig } from '../../agent/agent-config.js';
import { startAgent } from '../../agent/agent.js';
import { rrmVersion } from '../../version.js';
import { defaultStateDir } from '../../config.js';
import { flag, parseOptions, str } from '../args.js';
import type { Context } from '../context.js';

export const AGENT_HELP = `Usage: rrm agent [--config FILE] [--socket PATH|none] [--listen HOST:PORT]
                 [--advertise http://HOST:PORT] [--state-dir DIR] [--tokens-dir DIR]

Runs the rrm agent: the same ledger and rules as embedded mode, served as an HTTP API (JSON,
/openapi.json) on a Unix socket (default /run/rrm/agent.sock, mode 0660) and optionally on TCP.
Local users authenticate with the token file the agent keeps for them in the tokens directory
(default: next to the socket), remote callers with bearer tokens from the config file. The CLI and
SDK use a running agent automatically (--agent / RRM_AGENT, or the default socket).

In a fleet (rrm --ledger etcd://... agent, or RRM_LEDGER) it registers its instance (RRM_INSTANCE,
labels from RRM_INSTANCE_LABELS) under a lease; with TCP it also registers where other hosts reach
it (--advertise, default the listener's address), so rrm run --target any can send installs here.

Config: /etc/rrm/agent.json or --config FILE (JSON: socket, socketGroup, listen, advertise, tls {cert, key, clientCa}, tokensDir,
tokens {name: {token, admin}}, policy {admins, maxPriority, quotas}, bodyLimit, handlerTimeout,
maxWait, sweepInterval, instanceTtl, logLevel). Flags and RRM_AGENT_SOCKET, RRM_AGENT_LISTEN,
RRM_AGENT_ADVERTISE, RRM_AGENT_TLS_CERT/_KEY/_CLIENT_CA, RRM_INSTANCE_TTL override it. With tls
the TCP listener speaks HTTPS; with tls.clientCa callers must also present a certificate that CA
signed, and its common name is their identity (admins: policy.admins).
SIGTERM or SIGINT: stops accepting requests, stops running installs, releases, exits 0.
The log is JSON lines (pino) on stdout; --json also writes the "listening" line as JSON on stderr.
`;

export async function agentCommand(ctx: Context, args: readonly string[]): Promise<number> {
  const { values } = parseOptions(args, {
    config: { type: 'string' },
    socket: { type: 'string' },
    listen: { type: 'string' },
    advertise: { type: 'string' },
    'state-dir': { type: 'string' },
    'tokens-dir': { type: 'string' },
    json: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  });
  if (flag(values, 'help')) {
    ctx.io.out(AGENT_HELP);
    return 0;
  }
  const config = compileAgentConfig(
    ctx.env,
    {
      config: str(values, 'config'),
      socket: str(values, 'socket'),
      listen: str(values, 'listen'),
      advertise: str(values, 'advertise'),
      stateDir: str(values, 'state-dir'),
      tokensDir: str(values, 'tokens-dir'),
    },
    defaultStateDir(ctx.env, process.getuid?.() ?? 1000),
  );
  const ledgerConfig = ctx.config({ 'state-dir': config.stateDir });
  const agent = await startAgent(config, ledgerConfig, rrmVersion());
  const url = agent.tcpAddress
    ? `${config.tls ? 'https' : 'http'}://${agent.tcpAddress.host}:${agent.tcpAddress.port}`
    : undefined;
  if (flag(values, 'json'))
    ctx.io.err(
      `${JSON.stringify({ event: 'listening', socket: config.socket ?? null, url: url ?? null })}\n`,
    );
  else if (url) ctx.io.err(`rrm agent: listening on ${url}\n`);
  await new Promise<void>((resolve) => {
    const onSignal = (): void => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      void agent.stop().then(resolve);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  return 0;
}
