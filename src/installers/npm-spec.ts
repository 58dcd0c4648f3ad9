/**
 * npm package specs as npm-package-arg reads them, reduced to what a profile needs: registry
 * names with a range or tag, local files and directories, URLs and git. Anything that is not a
 * valid name is never looked up (it still reaches npm, as an argv word, and npm refuses it).
 */
import type { PackageSpec } from './types.js';

/** npm's rule for names (legacy capitals allowed for lookups); at most 214 characters. */
const NAME = /^(?:@[a-z0-9][a-z0-9._~-]*\/)?[a-zA-Z0-9~][a-zA-Z0-9._~-]*$/;
/** A tag or a semver range: digits, letters, dots and the range operators; no shell syntax. */
const RANGE = /^[\w.^~<>=| *+-]*$/;

export function isNpmName(name: string): boolean {
  return name.length > 0 && name.length <= 214 && NAME.test(name) && !name.includes('..');
}

export function isNpmRange(range: string): boolean {
  return range.length <= 256 && RANGE.test(range) && !range.includes('\n');
}

/** `name@range` → [name, range]; scoped names keep their `@`. */
function splitAt(spec: string): [string, string | undefined] {
  const at = spec.indexOf('@', spec.startsWith('@') ? 1 : 0);
  return at > 0 ? [spec.slice(0, at), spec.slice(at + 1)] : [spec, undefined];
}

export function parseNpmSpec(raw: string): PackageSpec {
  if (/^(file:|\.{1,2}(\/|$)|\/|~\/)/.test(raw)) {
    const path = raw.replace(/^file:/, '');
    return { raw, kind: /\.(tgz|tar\.gz|tar)$/.test(path) ? 'file' : 'directory', path };
  }
  if (/^https?:\/\//.test(raw)) return { raw, kind: 'url' };
  if (/^(git\+|git:\/\/|github:|gitlab:|bitbucket:|gist:|ssh:\/\/)/.test(raw)) return { raw, kind: 'git' };
  if (/^[\w.-]+\/[\w.-]+(#.*)?$/.test(raw) && !raw.startsWith('@')) return { raw, kind: 'git' };
  const [name, range] = splitAt(raw);
  const alias = range !== undefined ? /^npm:(.+)$/.exec(range) : null;
  if (alias) {
    const inner = parseNpmSpec(alias[1] as string);
    return inner.kind === 'registry' ? { ...inner, raw } : { raw, kind: 'other' };
  }
  if (!isNpmName(name)) return { raw, kind: 'other' };
  if (range === undefined || range === '') return { raw, kind: 'registry', name };
  if (!isNpmRange(range)) return { raw, kind: 'other' };
  return { raw, kind: 'registry', name, range };
}
