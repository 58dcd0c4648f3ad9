// Regenerates the table in docs/errors.md from the error catalogue (run after `npm run build`).
import { readFileSync, writeFileSync } from 'node:fs';
const { CATALOGUE } = await import('../dist/src/model/errors.js');
const path = new URL('../docs/errors.md', import.meta.url);
const doc = readFileSync(path, 'utf8');
let out =
  doc.slice(0, doc.indexOf('| code')) + '| code | exit | HTTP | meaning |\n| --- | --- | --- | --- |\n';
for (const [code, s] of Object.entries(CATALOGUE))
  out += `| \`${code}\` | ${s.exit} | ${s.http} | ${s.summary} |\n`;
writeFileSync(path, out);
