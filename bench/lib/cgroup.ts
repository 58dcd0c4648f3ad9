/**
 * A memory-limited cgroup for the install storm, so the box behaves like a small CI machine:
 * cgroup v1 (/sys/fs/cgroup/memory/<name>, memory.limit_in_bytes) or, on a pure cgroup2 host,
 * /sys/fs/cgroup/<name> with memory.max. Processes join it through `wrap` (sh writes its own pid
 * to cgroup.procs, then execs the command). `remove` kills what is left and removes <name> from
 * every hierarchy (rrm, given RRM_CGROUP_PARENT=<name>, creates it in the others).
 */
import {
  existsSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  statSync,
  writeFileSync,
  mkdirSync,
} from 'node:fs';
import { join } from 'node:path';
import { sleep } from './stats.js';

const ROOT = '/sys/fs/cgroup';

export class MemoryCgroup {
  readonly dir: string;
  readonly version: 'v1' | 'v2';

  private constructor(
    readonly name: string,
    readonly limitBytes: number,
  ) {
    if (existsSync(join(ROOT, 'memory', 'memory.limit_in_bytes'))) {
      this.version = 'v1';
      this.dir = join(ROOT, 'memory', name);
    } else {
      this.version = 'v2';
      this.dir = join(ROOT, name);
    }
  }

  /** Why a memory cgroup cannot be made here, or undefined when it can. */
  static unavailable(): string | undefined {
    if (process.getuid?.() !== 0) return 'not root: cannot create a memory cgroup';
    if (existsSync(join(ROOT, 'memory', 'memory.limit_in_bytes'))) return undefined;
    try {
      if (readFileSync(join(ROOT, 'cgroup.subtree_control'), 'utf8').split(/\s+/).includes('memory'))
        return undefined;
    } catch {
      // fall through
    }
    return 'no cgroup v1 memory controller and no cgroup2 memory controller enabled at the root';
  }

  static async create(name: string, limitBytes: number): Promise<MemoryCgroup> {
    const cg = new MemoryCgroup(name, limitBytes);
    await cg.remove();
    mkdirSync(cg.dir);
    if (cg.version === 'v1') {
      writeFileSync(join(cg.dir, 'memory.limit_in_bytes'), String(limitBytes));
      try {
        writeFileSync(join(cg.dir, 'memory.memsw.limit_in_bytes'), String(limitBytes));
      } catch {
        // no swap accounting: fine, there is no swap to spill into either way on the bench box
      }
    } else {
      writeFileSync(join(cg.dir, 'memory.max'), String(limitBytes));
      try {
        writeFileSync(join(cg.dir, 'memory.swap.max'), '0');
      } catch {
        // no swap controller
      }
    }
    return cg;
  }

  get procsFile(): string {
    return join(this.dir, 'cgroup.procs');
  }

  /** argv that runs `argv` inside this cgroup from its first instruction. */
  wrap(argv: readonly string[]): string[] {
    return ['/bin/sh', '-c', 'echo $$ > "$0" && exec "$@"', this.procsFile, ...argv];
  }

  /** OOM kills in this cgroup and below. */
  oomKills(): number {
    try {
      if (this.version === 'v1') {
        const m = /^oom_kill (\d+)/m.exec(readFileSync(join(this.dir, 'memory.oom_control'), 'utf8'));
        return Number(m?.[1] ?? 0);
      }
      const m = /^oom_kill (\d+)/m.exec(readFileSync(join(this.dir, 'memory.events'), 'utf8'));
      return Number(m?.[1] ?? 0);
    } catch {
      return 0;
    }
  }

  /** Peak memory charged to the cgroup since creation (v1 max_usage_in_bytes, v2 memory.peak). */
  peakBytes(): number | undefined {
    const file = join(this.dir, this.version === 'v1' ? 'memory.max_usage_in_bytes' : 'memory.peak');
    try {
      return Number(readFileSync(file, 'utf8').trim());
    } catch {
      return undefined;
    }
  }

  usageBytes(): number | undefined {
    const file = join(this.dir, this.version === 'v1' ? 'memory.usage_in_bytes' : 'memory.current');
    try {
      return Number(readFileSync(file, 'utf8').trim());
    } catch {
      return undefined;
    }
  }

  /** Pids in this cgroup and every cgroup below it. */
  pids(): number[] {
    return collect(this.dir).flatMap((d) => readPids(d));
  }

  /** SIGKILLs everything inside, then removes the cgroup (and <name> in every other hierarchy). */
  async remove(): Promise<void> {
    const dirs = [...new Set([this.dir, ...otherHierarchies(this.name)])];
    for (let attempt = 0; attempt < 50; attempt++) {
      let left = 0;
      for (const top of dirs) {
        for (const d of collect(top)) {
          for (const pid of readPids(d)) {
            left++;
            try {
              process.kill(pid, 'SIGKILL');
            } catch {
              // gone
            }
          }
        }
      }
      if (left === 0) break;
      await sleep(100);
    }
    for (const top of dirs) {
      for (const d of collect(top).reverse()) {
        try {
          rmdirSync(d);
        } catch {
          // busy or gone; reported by the caller's leftovers check
        }
      }
    }
  }
}

function otherHierarchies(name: string): string[] {
  const out: string[] = [];
  try {
    for (const h of readdirSync(ROOT)) {
      const d = join(ROOT, h, name);
      if (existsSync(d) && statSync(d).isDirectory()) out.push(d);
    }
  } catch {
    // no cgroup root
  }
  return out;
}

/** `dir` and its descendant cgroups, parents first. */
function collect(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out = [dir];
  try {
    for (const e of readdirSync(dir, { withFileTypes: true }))
      if (e.isDirectory()) out.push(...collect(join(dir, e.name)));
  } catch {
    // vanished
  }
  return out;
}

function readPids(dir: string): number[] {
  try {
    return readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}
