/**
 * Gathers the host facts for decideLayout: reads the mount table and the cgroup2 root's
 * cgroup.controllers, checks writability. Reads only; creates nothing.
 */
import * as nodeFs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { nodeCgroupFs, type CgroupFs } from './cgroup-fs.js';
import { decideLayout, parseKernelRelease, type HostLayout } from './host-layout.js';
import { parseMounts, type MountEntry } from './mounts.js';

export const DEFAULT_CGROUP_ROOT = '/sys/fs/cgroup';
export const DEFAULT_MOUNTS_FILE = '/proc/self/mounts';
export const DEFAULT_SYS_BLOCK = '/sys/block';

export interface ProbeHostOptions {
  readonly root?: string;
  readonly mountsFile?: string;
  /** `uname -r` value; default os.release(). */
  readonly kernelRelease?: string;
  readonly fs?: CgroupFs;
}

export function probeHost(opts: ProbeHostOptions = {}): HostLayout {
  const fs = opts.fs ?? nodeCgroupFs;
  const root = path.resolve(opts.root ?? DEFAULT_CGROUP_ROOT);
  const mountsFile = opts.mountsFile ?? DEFAULT_MOUNTS_FILE;
  let mounts: MountEntry[] = [];
  const extra: string[] = [];
  try {
    mounts = parseMounts(fs.read(mountsFile));
  } catch (e) {
    extra.push(`cannot read ${mountsFile}: ${(e as Error).message}`);
  }
  const layout = decideLayout({
    mounts,
    root,
    v2Controllers: (mp) => {
      try {
        return fs.read(path.join(mp, 'cgroup.controllers')).split(/\s+/).filter(Boolean);
      } catch {
        return null;
      }
    },
    writable: (p) => fs.isWritable(p),
    kernel: parseKernelRelease(opts.kernelRelease ?? os.release()),
  });
  return extra.length === 0 ? layout : { ...layout, notes: [...extra, ...layout.notes] };
}

/**
 * `major:minor` of the real disks in /sys/block: entries with a `device` link (which excludes
 * loop, ram, zram and other virtual devices). [] when /sys/block is unreadable.
 */
export function discoverBlockDevices(sysBlock: string = DEFAULT_SYS_BLOCK): string[] {
  let names: string[];
  try {
    names = nodeFs.readdirSync(sysBlock);
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const name of names.sort()) {
    try {
      if (!nodeFs.existsSync(path.join(sysBlock, name, 'device'))) continue;
      const dev = nodeFs.readFileSync(path.join(sysBlock, name, 'dev'), 'utf8').trim();
      if (/^\d+:\d+$/.test(dev)) out.push(dev);
    } catch {
      // device vanished
    }
  }
  return out;
}
