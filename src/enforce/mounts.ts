/**
 * Parsing of /proc/self/mounts (same format as /proc/mounts and fstab): one mount per line,
 * `source mountpoint fstype options dump pass`, with space, tab, newline and backslash written
 * as octal escapes (`\040`, `\011`, `\012`, `\134`). Pure.
 */

export interface MountEntry {
  readonly source: string;
  readonly mountpoint: string;
  readonly fstype: string;
  readonly options: readonly string[];
}

/** Decodes the kernel's octal escapes (`\040` → space). */
export function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

export function parseMounts(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    const [source, mountpoint, fstype, options] = fields;
    if (source === undefined || mountpoint === undefined || fstype === undefined) continue;
    out.push({
      source: unescapeMountField(source),
      mountpoint: unescapeMountField(mountpoint),
      fstype,
      options: options === undefined ? [] : options.split(',').map(unescapeMountField),
    });
  }
  return out;
}
