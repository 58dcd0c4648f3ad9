/**
 * The few filesystem operations the cgroup drivers use, behind an interface so tests can run the
 * drivers against a temp directory that imitates cgroupfs (where mkdir populates interface files
 * and rmdir removes a directory that still lists them). All synchronous: cgroupfs operations do not
 * block on disk, and keeping each read-modify-write step synchronous makes it atomic within the
 * process (see the parent aggregates in cgroup-enforcer.ts).
 */
import * as fs from 'node:fs';

export interface CgroupFs {
  exists(path: string): boolean;
  isWritable(path: string): boolean;
  /** Creates one directory; throws EEXIST if present. */
  mkdir(path: string): void;
  /** Removes one (cgroup) directory; throws ENOENT if absent, EBUSY while populated. */
  rmdir(path: string): void;
  read(path: string): string;
  /** Writes into an existing file (never creates one: a missing knob is an error). */
  write(path: string, value: string): void;
  /** Names of the subdirectories of `dir` (child cgroups); [] when `dir` is absent. */
  subdirs(dir: string): string[];
}

export const nodeCgroupFs: CgroupFs = {
  exists: (p) => fs.existsSync(p),
  isWritable: (p) => {
    try {
      fs.accessSync(p, fs.constants.W_OK);
      return true;
    } catch {
      return false;
    }
  },
  mkdir: (p) => fs.mkdirSync(p),
  rmdir: (p) => fs.rmdirSync(p),
  read: (p) => fs.readFileSync(p, 'utf8'),
  write: (p, value) => fs.writeFileSync(p, value, { flag: 'r+' }),
  subdirs: (dir) => {
    try {
      return fs
        .readdirSync(dir, { withFileTypes: true })
        .filter((d) => d.isDirectory())
        .map((d) => d.name)
        .sort();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
  },
};

export function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | null)?.code;
}
