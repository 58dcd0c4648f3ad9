/**
 * Reading what is inside a wheel (zip) or an sdist (tar.gz) without unpacking it: names and sizes.
 * Only the central directory of a zip is read; a tar.gz is gunzipped in memory (bounded).
 */
import { closeSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';

export interface ArchiveEntry {
  readonly name: string;
  readonly size: number;
}

export interface ArchiveListing {
  /** Bytes of the archive file itself. */
  readonly archiveSize: number;
  readonly entries: readonly ArchiveEntry[];
  /** Sum of the entries' uncompressed sizes. */
  readonly unpacked: number;
}

/** A zip's central directory: every entry's name and uncompressed size. Throws when it is not a zip. */
export function listZip(path: string): ArchiveListing {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const tailLen = Math.min(size, 65_557);
    const tail = Buffer.alloc(tailLen);
    readSync(fd, tail, 0, tailLen, size - tailLen);
    let eocd = -1;
    for (let i = tailLen - 22; i >= 0; i--) {
      if (tail.readUInt32LE(i) === 0x06054b50) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) throw new Error(`${path}: not a zip file (no end of central directory)`);
    const count = tail.readUInt16LE(eocd + 10);
    const cdSize = tail.readUInt32LE(eocd + 12);
    const cdOffset = tail.readUInt32LE(eocd + 16);
    if (cdOffset + cdSize > size) throw new Error(`${path}: corrupt zip central directory`);
    const cd = Buffer.alloc(cdSize);
    readSync(fd, cd, 0, cdSize, cdOffset);
    const entries: ArchiveEntry[] = [];
    let p = 0;
    for (let n = 0; n < count && p + 46 <= cd.length; n++) {
      if (cd.readUInt32LE(p) !== 0x02014b50) throw new Error(`${path}: corrupt zip entry ${n}`);
      const usize = cd.readUInt32LE(p + 24);
      const nameLen = cd.readUInt16LE(p + 28);
      const extraLen = cd.readUInt16LE(p + 30);
      const commentLen = cd.readUInt16LE(p + 32);
      const name = cd.toString('utf8', p + 46, p + 46 + nameLen);
      entries.push({ name, size: usize });
      p += 46 + nameLen + extraLen + commentLen;
    }
    return { archiveSize: size, entries, unpacked: entries.reduce((a, e) => a + e.size, 0) };
  } finally {
    closeSync(fd);
  }
}

/** A tar.gz's entries (regular files), gunzipped in memory; refuses archives over maxBytes compressed. */
export function listTarGz(path: string, maxBytes = 64 * 2 ** 20): ArchiveListing {
  const raw = readFileSync(path);
  if (raw.length > maxBytes) throw new Error(`${path}: larger than ${maxBytes} bytes; not listed`);
  const tar = gunzipSync(raw);
  const entries: ArchiveEntry[] = [];
  let p = 0;
  let longName: string | undefined;
  while (p + 512 <= tar.length) {
    const header = tar.subarray(p, p + 512);
    if (header.every((b) => b === 0)) break;
    const field = (off: number, len: number): string => {
      const s = header.toString('utf8', off, off + len);
      const nul = s.indexOf('\0');
      return nul >= 0 ? s.slice(0, nul) : s;
    };
    const size = parseInt(field(124, 12).trim() || '0', 8);
    const type = field(156, 1) || '0';
    const prefix = field(345, 155);
    let name = longName ?? (prefix ? `${prefix}/${field(0, 100)}` : field(0, 100));
    longName = undefined;
    const body = tar.subarray(p + 512, p + 512 + size);
    if (type === 'L') longName = body.toString('utf8').replace(/\0.*$/s, '');
    else if (type === 'x') {
      const m = /\d+ path=([^\n]*)\n/.exec(body.toString('utf8'));
      if (m) longName = m[1];
    } else if (type === '0' || type === '\0' || type === '7') entries.push({ name, size });
    name = '';
    p += 512 + Math.ceil(size / 512) * 512;
  }
  return { archiveSize: raw.length, entries, unpacked: entries.reduce((a, e) => a + e.size, 0) };
}

/** Sources that mean a compiler runs: C, C++, Cython, Fortran, Rust. */
export function nativeSources(entries: readonly ArchiveEntry[]): string[] {
  return entries
    .map((e) => e.name)
    .filter((n) => /\.(c|cc|cpp|cxx|pyx|f|f90|f95|rs)$/i.test(n) || /(^|\/)Cargo\.toml$/.test(n));
}
