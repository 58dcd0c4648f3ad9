/** What kind of npm package a version manifest describes: plain, with install scripts, or a native (node-gyp) build. */
export type NpmPackageKind = 'plain' | 'scripts' | 'native';

const NATIVE_DEPS = ['node-gyp', 'nan', 'node-addon-api', 'node-gyp-build', 'cmake-js', 'bindings'];
const PREBUILT_DEPS = ['prebuild-install', '@mapbox/node-pre-gyp', 'node-pre-gyp', 'prebuildify'];

interface VersionManifest {
  readonly name?: string;
  readonly version?: string;
  readonly scripts?: Readonly<Record<string, string>>;
  readonly gypfile?: boolean;
  readonly dependencies?: Readonly<Record<string, string>>;
  readonly dist?: { readonly unpackedSize?: number; readonly fileCount?: number };
}

export function classifyNpmManifest(m: VersionManifest): NpmPackageKind {
  const scripts = m.scripts ?? {};
  const deps = Object.keys(m.dependencies ?? {});
  const hasScript = ['preinstall', 'install', 'postinstall'].some((s) => typeof scripts[s] === 'string');
  const gyp =
    m.gypfile === true ||
    /node-gyp|cmake-js/.test(scripts.install ?? '') ||
    deps.some((d) => NATIVE_DEPS.includes(d));
  if (gyp && hasScript) return 'native';
  if (gyp && !deps.some((d) => PREBUILT_DEPS.includes(d))) return 'native';
  return hasScript ? 'scripts' : 'plain';
}
