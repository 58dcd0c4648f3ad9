/**
 * A load generator for the agent scenario: `clients` concurrent loops over one keep-alive
 * http.Agent, each doing pairs of POSTs as fast as it can for `durationMs` after "go".
 * Prints {ready}, then {pairs, errors, elapsedMs, cpuMs, lat} (lat: ms per pair, sampled).
 * argv[2]: {"socketPath"?: s, "port"?: n, "mode": "rrm"|"empty", "token": s, "clients": n, "durationMs": n}
 *   rrm:   POST /v1/reservations {"requests":{"cpu":"10m"}}, then POST /v1/reservations/<id>/release {"token"}
 *   empty: POST /a {} then POST /b {} to a plain node:http server answering {} (the ceiling).
 */
import http from 'node:http';
import { nowMs } from '../lib/stats.js';
import { commands, Reservoir, say } from './protocol.js';

const args = JSON.parse(process.argv[2] ?? '{}') as {
  socketPath?: string;
  port?: number;
  mode: 'rrm' | 'empty';
  token: string;
  clients: number;
  durationMs: number;
};
const agent = new http.Agent({ keepAlive: true, maxSockets: args.clients, maxFreeSockets: args.clients });

function post(path: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const data = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        agent,
        method: 'POST',
        path,
        ...(args.socketPath ? { socketPath: args.socketPath } : { host: '127.0.0.1', port: args.port }),
        headers: {
          'content-type': 'application/json',
          'content-length': data.length,
          authorization: `Bearer ${args.token}`,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          try {
            resolve({
              status: res.statusCode ?? 0,
              json: JSON.parse(Buffer.concat(chunks).toString('utf8')),
            });
          } catch (e) {
            reject(e instanceof Error ? e : new Error(String(e)));
          }
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

async function pair(): Promise<void> {
  if (args.mode === 'empty') {
    await post('/a', {});
    await post('/b', {});
    return;
  }
  const r = await post('/v1/reservations', { requests: { cpu: '10m' } });
  if (r.status !== 201) throw new Error(`reserve: HTTP ${r.status} ${JSON.stringify(r.json).slice(0, 200)}`);
  const id = (r.json.reservation as { id: string }).id;
  const rel = await post(`/v1/reservations/${id}/release`, { token: r.json.token });
  if (rel.status !== 200)
    throw new Error(`release: HTTP ${rel.status} ${JSON.stringify(rel.json).slice(0, 200)}`);
}

for (let i = 0; i < Math.min(args.clients, 16); i++) await pair(); // warm: connections, JIT
say({ ready: true });
await commands(async (line) => {
  if (line !== 'go') return;
  const lat = new Reservoir();
  let pairs = 0;
  let errors = 0;
  let lastError = '';
  const cpu0 = process.cpuUsage();
  const start = nowMs();
  const end = start + args.durationMs;
  const loop = async (): Promise<void> => {
    for (let t = nowMs(); t < end;) {
      try {
        await pair();
        pairs++;
      } catch (e) {
        errors++;
        lastError = e instanceof Error ? e.message : String(e);
      }
      const t2 = nowMs();
      lat.add(t2 - t);
      t = t2;
    }
  };
  await Promise.all(Array.from({ length: args.clients }, loop));
  const elapsedMs = nowMs() - start;
  const cpu = process.cpuUsage(cpu0);
  say({
    pairs,
    errors,
    lastError,
    elapsedMs,
    cpuMs: (cpu.user + cpu.system) / 1000,
    lat: lat.values.map((x) => Math.round(x * 1000) / 1000),
  });
});
agent.destroy();
