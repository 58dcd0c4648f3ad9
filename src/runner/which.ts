/** Finds the program a command names, as execvp would: a path as given, otherwise the first hit on PATH. */
import { accessSync, constants, statSync } from 'node:fs';
import { join } from 'node:path';

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

export function findExecutable(program: string, pathEnv: string | undefined): string | undefined {
  if (program.includes('/')) return executable(program) ? program : undefined;
  for (const dir of (pathEnv ?? '/usr/local/bin:/usr/bin:/bin').split(':')) {
    const candidate = join(dir || '.', program);
    if (executable(candidate)) return candidate;
  }
  return undefined;
}
