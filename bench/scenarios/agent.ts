/**
 * The agent over HTTP: a real `rrm agent` child process (SQLite ledger in a temp state dir) serving
 * reserve+release pairs over its Unix socket and over loopback TCP at 1, 16, 64 and 256 concurrent
 * keep-alive clients, beside the ceiling measured the same way in the same run: a plain node:http
 * server in a child process answering {} to the same two POSTs per "pair". Clients run in one
 * load-generator child process (workers/http-load.ts); its CPU use and the server's are reported.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { workerPath } from '../lib/env.js';
import { LineChild } from '../lib/lines.js';
import { mdTable, type Aim, type Scenario } from '../lib/scenario.js';
import { fmt, median, nowMs, round, sleep, summarize, type Summary } from '../lib/stats.js';
import { lineChart } from '../lib/svg.js';

const TOKEN = 'bench-ops-token-0123456789abcdef';
const CONCURRENCY = [1, 16, 64, 256] as const;

type Target = 'rrm-unix' | 'rrm-tcp' | 'ceiling-unix' | 'ceiling-tcp';
const TARGETS: readonly Target[] = ['rrm-unix', 'rrm-tcp', 'ceiling-unix', 'ceiling-tcp'];
const LABEL: Record<Target, string> = {
  'rrm-unix': 'rrm agent, Unix socket',
  'rrm-tcp': 'rrm agent, TCP 127.0.0.1',
  'ceiling-unix': 'plain node:http {}, Unix socket',
  'ceiling-tcp': 'plain node:http {}, TCP 127.0.0.1',
};

interface Point {
  readonly target: Target;
  readonly clients: number;
  readonly pairsPerSec: number;
  readonly rounds: number[];
  readonly errors: number;
  readonly lastError?: string;
  readonly latency: Summary;
  /** CPU use of the load generator and of the server during the windows, in % of one core (median). */
  readonly generatorCpuPct: number;
  readonly serverCpuPct: number;
}

export interface AgentData {
  readonly windowMs: number;
  readonly rounds: number;
  readonly generators: number;
  readonly points: Point[];
}

/** utime+stime of a process in ms (/proc/<pid>/stat, 100 Hz ticks); NaN when unreadable. */
function cpuMsOf(pid: number | undefined): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return NaN;
  }
}

async function startAgent(
  cli: string,
  dir: string,
): Promise<{ child: ChildProcess; port: number; socket: string; stop(): Promise<void> }> {
  mkdirSync(dir, { recursive: true });
  const socket = join(dir, 'agent.sock');
  const config = join(dir, 'agent.json');
  writeFileSync(
    config,
    JSON.stringify({
      socket,
      listen: '127.0.0.1:0',
      tokensDir: join(dir, 'tokens'),
      tokens: { ops: { token: TOKEN, admin: true } },
      logLevel: 'warn',
    }),
  );
  const child = spawn(process.execPath, [cli, 'agent', '--config', config], {
    env: { ...process.env, RRM_STATE_DIR: dir },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d) => (err = (err + String(d)).slice(-8000)));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const deadline = Date.now() + 20_000;
  let port: number | undefined;
  while (port === undefined || !existsSync(socket)) {
    if (child.exitCode !== null) throw new Error(`rrm agent exited ${child.exitCode}: ${err.trim()}`);
    if (Date.now() > deadline) throw new Error(`rrm agent did not listen in 20 s: ${err.trim()}`);
    const m = /listening on http:\/\/[\d.]+:(\d+)/.exec(err);
    if (m) port = Number(m[1]);
    await sleep(50);
  }
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(t);
  };
  return { child, port, socket, stop };
}

function put(port: number, path: string, body: unknown): Promise<number> {
  const data = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: 'PUT',
        path,
        headers: {
          'content-type': 'application/json',
          'content-length': data.length,
          authorization: `Bearer ${TOKEN}`,
        },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

export const agentScenario: Scenario<AgentData> = {
  name: 'agent',
  title: 'Agent over HTTP (Unix socket and TCP) versus a plain node:http server',

  async run(ctx) {
    const windowMs = ctx.quick ? 700 : 2_000;
    const rounds = ctx.quick ? 1 : 2;
    const dir = ctx.workDir;
    const agent = await startAgent(ctx.cli, join(dir, 'agent'));
    const ceilingSock = join(dir, 'ceiling.sock');
    const ceiling = new LineChild(process.execPath, [
      workerPath('empty-http'),
      JSON.stringify({ socketPath: ceilingSock }),
    ]);
    try {
      const status = await put(agent.port, '/v1/instances/local/allocatable', {
        allocatable: { cpu: '1000', memory: '1000Gi' },
      });
      if (status !== 200) throw new Error(`PUT allocatable: HTTP ${status}`);
      const { port: ceilingPort } = await ceiling.next<{ port: number }>();
      ctx.log(
        `agent pid ${agent.child.pid} on :${agent.port}; ceiling pid ${ceiling.child.pid} on :${ceilingPort}`,
      );
      const points: Point[] = [];
      for (const clients of CONCURRENCY) {
        const acc: Record<
          string,
          {
            rounds: number[];
            errors: number;
            lastError?: string;
            lat: number[];
            gen: number[];
            srv: number[];
          }
        > = {};
        for (let r = 0; r < rounds; r++) {
          for (const target of TARGETS) {
            const rrm = target.startsWith('rrm');
            const unix = target.endsWith('unix');
            const args = {
              ...(unix
                ? { socketPath: rrm ? agent.socket : ceilingSock }
                : { port: rrm ? agent.port : ceilingPort }),
              mode: rrm ? 'rrm' : 'empty',
              token: TOKEN,
              clients,
              durationMs: windowMs,
            };
            const gen = new LineChild(process.execPath, [workerPath('http-load'), JSON.stringify(args)]);
            try {
              await gen.next();
              const serverPid = rrm ? agent.child.pid : ceiling.child.pid;
              const s0 = cpuMsOf(serverPid);
              const t0 = nowMs();
              gen.send('go');
              const res = await gen.next<{
                pairs: number;
                errors: number;
                lastError: string;
                elapsedMs: number;
                cpuMs: number;
                lat: number[];
              }>(windowMs + 60_000);
              const srvPct = ((cpuMsOf(serverPid) - s0) / (nowMs() - t0)) * 100;
              const a = (acc[target] ??= { rounds: [], errors: 0, lat: [], gen: [], srv: [] });
              const pps = (res.pairs / res.elapsedMs) * 1000;
              a.rounds.push(round(pps, 1));
              a.errors += res.errors;
              if (res.lastError) a.lastError = res.lastError;
              a.lat.push(...res.lat);
              a.gen.push((res.cpuMs / res.elapsedMs) * 100);
              a.srv.push(srvPct);
              ctx.log(
                `${clients} client(s) ${target}: ${fmt(pps)} pairs/s, p99 ${fmt(summarize(res.lat).p99)} ms, generator ${fmt((res.cpuMs / res.elapsedMs) * 100)}% CPU, server ${fmt(srvPct)}%${res.errors ? ` (${res.errors} errors: ${res.lastError})` : ''}`,
              );
            } finally {
              await gen.close();
            }
          }
        }
        for (const target of TARGETS) {
          const a = acc[target]!;
          const s = summarize(a.lat);
          points.push({
            target,
            clients,
            pairsPerSec: round(median(a.rounds), 1),
            rounds: a.rounds,
            errors: a.errors,
            ...(a.lastError ? { lastError: a.lastError } : {}),
            latency: {
              n: s.n,
              p50: round(s.p50),
              p90: round(s.p90),
              p99: round(s.p99),
              max: round(s.max),
              mean: round(s.mean),
            },
            generatorCpuPct: round(median(a.gen), 1),
            serverCpuPct: round(median(a.srv), 1),
          });
        }
      }
      const p = (t: Target, c: number): Point | undefined =>
        points.find((x) => x.target === t && x.clients === c);
      const u64 = p('rrm-unix', 64);
      const aims: Aim[] = [
        {
          aim: 'agent reserve+release pairs/s, 64 clients, Unix socket',
          target: '≥ 10,000',
          measured: `${fmt(u64?.pairsPerSec)} (plain node:http ceiling ${fmt(p('ceiling-unix', 64)?.pairsPerSec)})`,
          met: (u64?.pairsPerSec ?? 0) >= 10_000,
        },
        {
          aim: 'agent ms per pair p99, 64 clients, Unix socket',
          target: '≤ 10 ms',
          measured: `${fmt(u64?.latency.p99)} ms (p50 ${fmt(u64?.latency.p50)} ms)`,
          met: (u64?.latency.p99 ?? Infinity) <= 10,
        },
      ];
      return {
        data: { windowMs, rounds, generators: 1, points },
        aims,
        notes: [
          'A pair is `POST /v1/reservations` `{"requests":{"cpu":"10m"}}` (201, granted at once: allocatable is set to 1000 CPUs / 1000 Gi first) then `POST /v1/reservations/<id>/release` with the holder token, both with `Authorization: Bearer` an admin token, against a real `rrm agent` child process (its SQLite ledger in a temp `RRM_STATE_DIR` on the scratch disk, logLevel warn). The ceiling does the same two POSTs (`{}` bodies) against a plain node:http server in a child process answering `{}`: what HTTP over Node costs with no work at all.',
          'Clients: N concurrent request loops in ONE load-generator child process (workers/http-load.ts), sharing a keep-alive http.Agent with N sockets; a fresh generator per window, started and warmed before “go”. On 2 cores the server and the generator each get about one core; the generator’s and the server’s CPU use during the windows are in the table (100% = one core busy), so a saturated generator shows as such.',
          'Latency is per pair (both requests), sampled over every window of that cell. Throughput is the median over rounds; the four targets alternate within a round. The agent’s ledger keeps every released reservation, so it grows through the run (tens of thousands of records).',
        ],
      };
    } finally {
      await ceiling.close();
      await agent.stop();
    }
  },

  render(r, svg) {
    const d = r.data;
    const p = (t: Target, c: number): Point | undefined =>
      d.points.find((x) => x.target === t && x.clients === c);
    const chart = svg(
      'agent-throughput',
      lineChart({
        title: 'Agent: reserve+release pairs per second vs concurrent clients',
        xLabel: 'concurrent clients',
        yLabel: 'pairs per second',
        logX: true,
        logY: true,
        series: TARGETS.map((t) => ({
          name: t,
          dashed: t.startsWith('ceiling'),
          points: CONCURRENCY.map((c) => [c, p(t, c)?.pairsPerSec ?? NaN] as const),
        })),
      }),
    );
    const rows = CONCURRENCY.flatMap((c) =>
      TARGETS.map((t) => {
        const x = p(t, c);
        const ceil = p(t.endsWith('unix') ? 'ceiling-unix' : 'ceiling-tcp', c)?.pairsPerSec ?? NaN;
        return [
          String(c),
          LABEL[t],
          fmt(x?.pairsPerSec),
          t.startsWith('rrm') ? `${fmt(((x?.pairsPerSec ?? NaN) / ceil) * 100)}%` : '–',
          `${fmt(x?.latency.p50)} / ${fmt(x?.latency.p99)}`,
          fmt(x?.generatorCpuPct),
          fmt(x?.serverCpuPct),
          String(x?.errors ?? '–'),
        ];
      }),
    );
    return [
      `Windows of ${d.windowMs} ms, ${d.rounds} round(s); ${d.generators} load-generator process.`,
      '',
      `![pairs per second](${chart})`,
      '',
      mdTable(
        [
          'clients',
          'target',
          'pairs/s',
          '÷ ceiling (same transport)',
          'ms per pair p50 / p99',
          'generator CPU %',
          'server CPU %',
          'errors',
        ],
        rows,
      ),
    ].join('\n');
  },
};
