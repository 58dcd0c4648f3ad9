/**
 * A temp directory laid out like a cgroup2 mount, and a CgroupFs over it that behaves like the
 * kernel where the drivers depend on it: mkdir populates the interface files for the controllers
 * the parent enables, writes go only to existing files and replace their content, subtree_control
 * takes `+ctrl`, cgroup.freeze updates cgroup.events, cgroup.kill empties cgroup.procs, rmdir
 * refuses a cgroup with children or processes. Every write is recorded.
 * (Test helper: no side effects on import.)
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { CgroupFs } from '../../src/enforce/cgroup-fs.js';

export const V2_ROOT_CONTROLLERS = 'cpuset cpu io memory hugetlb pids rdma misc';

export interface FakeCgroup2 {
  readonly dir: string;
  /** cgroup2 mountpoint inside dir */
  readonly root: string;
  readonly mountsFile: string;
  readonly fs: CgroupFs;
  /** [path relative to root, value] in write order */
  readonly writes: Array<[string, string]>;
  readonly cleanup: () => void;
}

function err(code: string, p: string): NodeJS.ErrnoException {
  const e = new Error(`${code}: ${p}`) as NodeJS.ErrnoException;
  e.code = code;
  return e;
}

function interfaceFiles(controllers: readonly string[]): Record<string, string> {
  const files: Record<string, string> = {
    'cgroup.procs': '',
    'cgroup.threads': '',
    'cgroup.subtree_control': '',
    'cgroup.events': 'populated 0\nfrozen 0\n',
    'cgroup.freeze': '0\n',
    'cgroup.kill': '',
    'cgroup.type': 'domain\n',
    'cpu.stat': 'usage_usec 0\nuser_usec 0\nsystem_usec 0\n',
  };
  if (controllers.includes('cpu')) {
    Object.assign(files, { 'cpu.weight': '100\n', 'cpu.max': 'max 100000\n' });
  }
  if (controllers.includes('memory')) {
    Object.assign(files, {
      'memory.min': '0\n',
      'memory.low': '0\n',
      'memory.high': 'max\n',
      'memory.max': 'max\n',
      'memory.swap.max': 'max\n',
      'memory.oom.group': '0\n',
      'memory.current': '0\n',
      'memory.peak': '0\n',
      'memory.events': 'low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n',
    });
  }
  if (controllers.includes('io')) {
    Object.assign(files, { 'io.weight': 'default 100\n', 'io.max': '', 'io.stat': '' });
  }
  return files;
}

export function makeFakeCgroup2(opts: { rootControllers?: string } = {}): FakeCgroup2 {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rrm-fake-cgroup2-'));
  const root = path.join(dir, 'cgroup');
  fs.mkdirSync(root);
  fs.writeFileSync(
    path.join(root, 'cgroup.controllers'),
    (opts.rootControllers ?? V2_ROOT_CONTROLLERS) + '\n',
  );
  fs.writeFileSync(path.join(root, 'cgroup.subtree_control'), '');
  fs.writeFileSync(path.join(root, 'cgroup.procs'), '1\n');
  fs.writeFileSync(path.join(root, 'cpu.stat'), 'usage_usec 5\n');
  const mountsFile = path.join(dir, 'mounts');
  fs.writeFileSync(
    mountsFile,
    `proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0\n` +
      `cgroup2 ${root} cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate,memory_recursiveprot 0 0\n`,
  );
  const writes: Array<[string, string]> = [];
  const words = (p: string): string[] =>
    fs.existsSync(p) ? fs.readFileSync(p, 'utf8').split(/\s+/).filter(Boolean) : [];

  const fake: CgroupFs = {
    exists: (p) => fs.existsSync(p),
    isWritable: (p) => fs.existsSync(p),
    mkdir: (p) => {
      if (fs.existsSync(p)) throw err('EEXIST', p);
      const parentCtl = words(path.join(path.dirname(p), 'cgroup.subtree_control'));
      fs.mkdirSync(p);
      fs.writeFileSync(path.join(p, 'cgroup.controllers'), parentCtl.join(' ') + '\n');
      for (const [name, content] of Object.entries(interfaceFiles(parentCtl))) {
        fs.writeFileSync(path.join(p, name), content);
      }
    },
    rmdir: (p) => {
      if (!fs.existsSync(p)) throw err('ENOENT', p);
      if (fs.readdirSync(p, { withFileTypes: true }).some((d) => d.isDirectory())) throw err('EBUSY', p);
      if (words(path.join(p, 'cgroup.procs')).length > 0) throw err('EBUSY', p);
      fs.rmSync(p, { recursive: true });
    },
    read: (p) => fs.readFileSync(p, 'utf8'),
    write: (p, value) => {
      if (!fs.existsSync(p)) throw err('ENOENT', p);
      writes.push([path.relative(root, p), value]);
      const base = path.basename(p);
      const cg = path.dirname(p);
      if (base === 'cgroup.subtree_control') {
        const on = new Set(words(p));
        const available =
          cg === root
            ? words(path.join(root, 'cgroup.controllers'))
            : words(path.join(cg, 'cgroup.controllers'));
        for (const tok of value.split(/\s+/).filter(Boolean)) {
          const name = tok.slice(1);
          if (!available.includes(name)) throw err('EINVAL', `${p} ${tok}`);
          if (tok.startsWith('+')) on.add(name);
          else if (tok.startsWith('-')) on.delete(name);
          else throw err('EINVAL', `${p} ${tok}`);
        }
        fs.writeFileSync(p, [...on].join(' ') + '\n');
      } else if (base === 'cgroup.freeze') {
        fs.writeFileSync(p, value.trim() + '\n');
        fs.writeFileSync(
          path.join(cg, 'cgroup.events'),
          `populated 0\nfrozen ${value.trim() === '1' ? 1 : 0}\n`,
        );
      } else if (base === 'cgroup.kill') {
        fs.writeFileSync(path.join(cg, 'cgroup.procs'), '');
      } else {
        fs.writeFileSync(p, value + '\n');
      }
    },
    subdirs: (d) =>
      fs.existsSync(d)
        ? fs
            .readdirSync(d, { withFileTypes: true })
            .filter((e) => e.isDirectory())
            .map((e) => e.name)
            .sort()
        : [],
  };
  return {
    dir,
    root,
    mountsFile,
    fs: fake,
    writes,
    cleanup: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

/** Trimmed content of a file under the fake root. */
export function readFake(fake: FakeCgroup2, rel: string): string {
  return fs.readFileSync(path.join(fake.root, rel), 'utf8').trim();
}
