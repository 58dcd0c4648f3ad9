/**
 * Bundles the `rrm` command into dist/bin/ after tsc: one file per command (esbuild code
 * splitting keeps each command's modules loaded only when that command runs), dependencies left
 * in node_modules. Loading ~100 small ES modules one by one is most of a short command's start-up;
 * a bundle loads a handful (docs/benchmarks.md, overhead). The library (dist/src) is not bundled.
 */
import { build } from 'esbuild';
import { rmSync } from 'node:fs';

const outdir = new URL('../dist/bin/', import.meta.url).pathname;
rmSync(outdir, { recursive: true, force: true });
await build({
  entryPoints: { rrm: new URL('../dist/src/cli/main.js', import.meta.url).pathname },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'external',
  chunkNames: 'chunk-[hash]',
  logLevel: 'warning',
});
