/**
 * A real 3-member etcd cluster for tests: Debian's /usr/bin/etcd on loopback, free ports, data
 * dirs in a temp dir (on /dev/shm when there is one). Members can be stopped, killed and started
 * again; `close()` kills them all and removes the data. Without the binary it fails loudly: the
 * etcd tests must not pass by skipping.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { randomBytes } from 'node:crypto';

export interface EtcdCluster {
  /** Client URLs, one per member (member i = endpoints[i]). */
  readonly endpoints: readonly string[];
  readonly size: number;
  /** SIGTERM, then wait for the exit. */
  stop(member: number): Promise<void>;
  /** SIGKILL, then wait for the exit. */
  kill(member: number): Promise<void>;
  /** Starts a stopped member on its data dir; resolves once it listens for clients. */
  start(member: number): Promise<void>;
  isRunning(member: number): boolean;
  /** The member that is leader now, as seen by the running members; undefined without one. */
  leader(): Promise<number | undefined>;
  /** Waits until the given members (default: every running one) report healthy (leader + quorum). */
  waitHealthy(members?: readonly number[], timeoutMs?: number): Promise<void>;
  /** Recent log lines of a member, for failure messages. */
  logs(member: number): string;
  close(): Promise<void>;
}

export function findEtcdBinary(): string {
  const override = process.env.ETCD_BIN;
  const candidates = override
    ? [override]
    : ['/usr/bin/etcd', ...(process.env.PATH ?? '').split(delimiter).map((d) => join(d, 'etcd'))];
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      // next
    }
  }
  throw new Error(
    `the etcd tests need the etcd server binary (${override ? `ETCD_BIN=${override}` : '/usr/bin/etcd'}), ` +
      'which is not installed: run `apt-get install etcd-server` (Debian/Ubuntu; CI installs it) or set ETCD_BIN. ' +
      'These tests fail rather than skip.',
  );
}

async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const s = createServer();
          s.once('error', reject);
          s.listen(0, '127.0.0.1', () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

interface Member {
  readonly name: string;
  readonly clientUrl: string;
  readonly peerUrl: string;
  readonly dataDir: string;
  proc: ChildProcess | undefined;
  exited: Promise<void>;
  log: string[];
}

const liveProcesses = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const p of liveProcesses) p.kill('SIGKILL');
  });
}

export async function startEtcdCluster(
  opts: { size?: number; timeoutMs?: number } = {},
): Promise<EtcdCluster> {
  const bin = findEtcdBinary();
  const size = opts.size ?? 3;
  installExitHook();
  const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  const root = mkdtempSync(join(base, 'rrm-etcd-'));
  const ports = await freePorts(size * 2);
  const token = `rrm-test-${randomBytes(6).toString('hex')}`;
  const members: Member[] = Array.from({ length: size }, (_, i) => {
    const dataDir = join(root, `m${i}`);
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    return {
      name: `m${i}`,
      clientUrl: `http://127.0.0.1:${ports[2 * i]}`,
      peerUrl: `http://127.0.0.1:${ports[2 * i + 1]}`,
      dataDir,
      proc: undefined,
      exited: Promise.resolve(),
      log: [],
    };
  });
  const initialCluster = members.map((m) => `${m.name}=${m.peerUrl}`).join(',');

  const member = (i: number): Member => {
    const m = members[i];
    if (!m) throw new Error(`no etcd member ${i} (the cluster has ${size})`);
    return m;
  };

  const spawnMember = (m: Member): void => {
    const args = [
      `--name=${m.name}`,
      `--data-dir=${m.dataDir}`,
      `--listen-client-urls=${m.clientUrl}`,
      `--advertise-client-urls=${m.clientUrl}`,
      `--listen-peer-urls=${m.peerUrl}`,
      `--initial-advertise-peer-urls=${m.peerUrl}`,
      `--initial-cluster=${initialCluster}`,
      `--initial-cluster-state=new`,
      `--initial-cluster-token=${token}`,
      '--heartbeat-interval=50',
      '--election-timeout=500',
      '--logger=zap',
      '--log-level=warn',
      '--enable-v2=false',
    ];
    const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    liveProcesses.add(proc);
    m.proc = proc;
    const keep = (chunk: Buffer) => {
      m.log.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      if (m.log.length > 200) m.log.splice(0, m.log.length - 200);
    };
    proc.stdout?.on('data', keep);
    proc.stderr?.on('data', keep);
    m.exited = new Promise((resolve) =>
      proc.once('exit', () => {
        liveProcesses.delete(proc);
        if (m.proc === proc) m.proc = undefined;
        resolve();
      }),
    );
  };

  const signal = async (i: number, sig: NodeJS.Signals): Promise<void> => {
    const m = member(i);
    if (!m.proc) return;
    m.proc.kill(sig);
    await m.exited;
  };

  const waitListening = async (m: Member, deadline: number): Promise<void> => {
    for (;;) {
      if (!m.proc)
        throw new Error(`etcd member ${m.name} exited while starting:\n${m.log.slice(-20).join('\n')}`);
      try {
        await fetch(`${m.clientUrl}/version`, { signal: AbortSignal.timeout(500) });
        return;
      } catch {
        if (Date.now() > deadline)
          throw new Error(
            `etcd member ${m.name} did not listen at ${m.clientUrl}:\n${m.log.slice(-20).join('\n')}`,
          );
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  };

  const healthy = async (m: Member): Promise<boolean> => {
    try {
      const res = await fetch(`${m.clientUrl}/health`, { signal: AbortSignal.timeout(1000) });
      const body = (await res.json()) as { health?: string };
      return res.ok && body.health === 'true';
    } catch {
      return false;
    }
  };

  const status = async (m: Member): Promise<{ member: string; leader: string } | undefined> => {
    try {
      const res = await fetch(`${m.clientUrl}/v3/maintenance/status`, {
        method: 'POST',
        body: '{}',
        signal: AbortSignal.timeout(1000),
      });
      const body = (await res.json()) as { header?: { member_id?: string }; leader?: string };
      if (!body.header?.member_id || !body.leader) return undefined;
      return { member: body.header.member_id, leader: body.leader };
    } catch {
      return undefined;
    }
  };

  const cluster: EtcdCluster = {
    endpoints: members.map((m) => m.clientUrl),
    size,
    stop: (i) => signal(i, 'SIGTERM'),
    kill: (i) => signal(i, 'SIGKILL'),
    async start(i) {
      const m = member(i);
      if (m.proc) return;
      spawnMember(m);
      await waitListening(m, Date.now() + (opts.timeoutMs ?? 15_000));
    },
    isRunning: (i) => member(i).proc !== undefined,
    async leader() {
      const running = members.filter((m) => m.proc);
      const statuses = await Promise.all(running.map(status));
      const ids = new Map<string, number>();
      statuses.forEach((s, j) => {
        if (s) ids.set(s.member, members.indexOf(running[j] as Member));
      });
      for (const s of statuses) {
        if (s && s.leader !== '0' && ids.has(s.leader)) return ids.get(s.leader);
      }
      return undefined;
    },
    async waitHealthy(which, timeoutMs = opts.timeoutMs ?? 15_000) {
      const targets = (which ?? members.map((_, i) => i).filter((i) => member(i).proc)).map(member);
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const ok = await Promise.all(targets.map(healthy));
        if (ok.every(Boolean)) return;
        if (Date.now() > deadline) {
          const bad = targets.filter((_, j) => !ok[j]);
          throw new Error(
            `etcd members ${bad.map((m) => m.name).join(', ')} not healthy after ${timeoutMs} ms:\n` +
              bad.map((m) => `${m.name}: ${m.log.slice(-10).join('\n')}`).join('\n'),
          );
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    logs: (i) => member(i).log.join('\n'),
    async close() {
      await Promise.all(members.map((_, i) => signal(i, 'SIGKILL')));
      rmSync(root, { recursive: true, force: true });
    },
  };

  try {
    for (const m of members) spawnMember(m);
    const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
    await Promise.all(members.map((m) => waitListening(m, deadline)));
    await cluster.waitHealthy(undefined, Math.max(1000, deadline - Date.now()));
  } catch (e) {
    await cluster.close();
    throw e;
  }
  return cluster;
}

/** A fresh key prefix per test, so tests on one cluster never see each other's keys. */
export function uniquePrefix(label: string): string {
  return `/rrm-test/${label.replace(/[^a-z0-9-]/gi, '-')}-${randomBytes(5).toString('hex')}/`;
}
