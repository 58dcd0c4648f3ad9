/** Child processes that talk in JSON lines: one object per stdout line, commands as stdin lines. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export class LineChild {
  readonly child: ChildProcess;
  private readonly queue: unknown[] = [];
  private readonly waiting: Array<(v: unknown) => void> = [];
  private stderr = '';
  private exited: string | undefined;

  constructor(file: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env) {
    this.child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'], env });
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      let v: unknown;
      try {
        v = JSON.parse(line);
      } catch {
        return; // not a protocol line
      }
      const w = this.waiting.shift();
      if (w) w(v);
      else this.queue.push(v);
    });
    this.child.stderr!.on('data', (d) => (this.stderr = (this.stderr + String(d)).slice(-4000)));
    this.child.on('exit', (code, signal) => {
      this.exited = `exited ${code ?? signal}: ${this.stderr.trim()}`;
      for (const w of this.waiting.splice(0)) w({ error: this.exited });
    });
  }

  /** The next JSON line (rejects when the child exits first or after `timeoutMs`). */
  async next<T = Record<string, unknown>>(timeoutMs = 60_000): Promise<T> {
    const v = this.queue.shift();
    if (v !== undefined) return check<T>(v);
    if (this.exited) throw new Error(`${this.describe()} ${this.exited}`);
    let timer: NodeJS.Timeout | undefined;
    const got = await new Promise<unknown>((res) => {
      this.waiting.push(res);
      timer = setTimeout(() => res({ error: `no answer in ${timeoutMs} ms` }), timeoutMs);
    });
    clearTimeout(timer);
    return check<T>(got, this.describe());
  }

  send(line: string): void {
    this.child.stdin!.write(`${line}\n`);
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const done = new Promise<void>((r) => this.child.once('exit', () => r()));
    this.child.stdin!.end();
    const t = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
    await done;
    clearTimeout(t);
  }

  private describe(): string {
    return `child ${this.child.spawnfile} ${this.child.spawnargs.slice(1, 2).join(' ')}`;
  }
}

function check<T>(v: unknown, who = 'child'): T {
  if (v && typeof v === 'object' && 'error' in v)
    throw new Error(`${who}: ${String((v as { error: unknown }).error)}`);
  return v as T;
}
