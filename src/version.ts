/** rrm's version, from the package.json found above this module (dist/src/… or the dist/bin bundle). */
import { readFileSync } from 'node:fs';

let cached: string | undefined;

export function rrmVersion(): string {
  if (cached) return cached;
  for (let up = '../'; up.length <= 5 * 3; up += '../') {
    try {
      const pkg = JSON.parse(readFileSync(new URL(`${up}package.json`, import.meta.url), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'rrm' && pkg.version) return (cached = pkg.version);
    } catch {
      // not at this level
    }
  }
  return 'unknown';
}
