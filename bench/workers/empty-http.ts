/**
 * The ceiling for the agent scenario: a plain node:http server answering every request with an
 * empty JSON object, on a Unix socket and a loopback TCP port. Prints {port} once both listen.
 * argv[2]: {"socketPath": s}
 */
import http from 'node:http';
import { rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { commands, say } from './protocol.js';

const args = JSON.parse(process.argv[2] ?? '{}') as { socketPath: string };
const handler: http.RequestListener = (req, res) => {
  req.on('data', () => undefined);
  req.on('end', () => {
    const body = '{}';
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
    res.end(body);
  });
};
const tcp = http.createServer({ keepAliveTimeout: 60_000 }, handler);
const unix = http.createServer({ keepAliveTimeout: 60_000 }, handler);
rmSync(args.socketPath, { force: true });
await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
await new Promise<void>((r) => unix.listen(args.socketPath, r));
say({ port: (tcp.address() as AddressInfo).port });
await commands(() => undefined);
tcp.closeAllConnections();
unix.closeAllConnections();
tcp.close();
unix.close();
