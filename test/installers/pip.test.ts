/**
 * pip: a wheel and an sdist built here from the fixture packages in test/fixtures/packages (no
 * network: `pip wheel --no-build-isolation --no-index`, `setup.py sdist`), sized by the adapter and
 * really installed into a temporary --target. The index path is tested against a local HTTP
 * server serving those files laid out as an index: PyPI's JSON API (`/pypi/<name>/json`), the
 * PEP 691 simple JSON, and the PEP 503 HTML pages pip itself installs from.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execArgv, parseInstall } from '../../src/installers/index.js';
import type { MetadataContext } from '../../src/installers/types.js';
import { resolveInstallProfile } from '../../src/profiles/resolve.js';

const FIXTURES = resolve(import.meta.dirname, '../../../test/fixtures/packages');

/** An interpreter that can build without the network: setuptools and wheel importable. */
function buildPython(): string | undefined {
  for (const py of ['/usr/bin/python3', 'python3']) {
    const r = spawnSync(py, ['-c', 'import setuptools, wheel'], { stdio: 'ignore' });
    if (r.status === 0) return py;
  }
  return undefined;
}

const PY = buildPython();

interface Built {
  readonly dir: string;
  readonly pureWheel: string;
  readonly pureSdist: string;
  readonly extWheel: string;
  readonly extSdist: string;
}

let built: Built | undefined;
function build(): Built {
  if (built) return built;
  const work = mkdtempSync(join(tmpdir(), 'rrm-pip-build-'));
  const out = join(work, 'dist');
  for (const name of ['rrm_tiny_pure', 'rrm_tiny_ext']) {
    cpSync(join(FIXTURES, name), join(work, name), { recursive: true });
    execFileSync(PY as string, ['setup.py', '-q', 'sdist', '-d', out], {
      cwd: join(work, name),
      stdio: 'pipe',
    });
    execFileSync(
      PY as string,
      [
        '-m',
        'pip',
        'wheel',
        '-q',
        '--no-deps',
        '--no-build-isolation',
        '--no-index',
        '-w',
        out,
        join(work, name),
      ],
      {
        cwd: work,
        stdio: 'pipe',
      },
    );
  }
  const files = readdirSync(out);
  const find = (re: RegExp): string => join(out, files.find((f) => re.test(f)) as string);
  built = {
    dir: out,
    pureWheel: find(/^rrm_tiny_pure-.*\.whl$/),
    pureSdist: find(/^rrm_tiny_pure-.*\.tar\.gz$/),
    extWheel: find(/^rrm_tiny_ext-.*\.whl$/),
    extSdist: find(/^rrm_tiny_ext-.*\.tar\.gz$/),
  };
  return built;
}

function ctx(extra: Partial<MetadataContext> = {}): MetadataContext {
  return {
    registry: 'http://127.0.0.1:9/',
    timeoutMs: 3000,
    localTimeoutMs: 10_000,
    cwd: process.cwd(),
    npmMaxPackages: 10,
    npmConcurrency: 2,
    pipIndexUrl: 'http://127.0.0.1:9/simple/',
    aptArchivesDir: '/nonexistent',
    fetch: globalThis.fetch,
    exec: execArgv,
    ...extra,
  };
}

const skip = PY ? false : 'no python3 with setuptools and wheel (Debian: python3-setuptools python3-wheel)';

test(
  'local wheels and sdists: sized from the archive; a C source makes the sdist a compile',
  { skip },
  async () => {
    const b = build();
    const argv = [
      PY as string,
      '-m',
      'pip',
      'install',
      '--no-index',
      '--no-deps',
      '--target',
      '/tmp/x',
      b.pureWheel,
      b.extSdist,
    ];
    const p = parseInstall(argv)!;
    assert.deepEqual(
      p.intent.specs.map((s) => s.kind),
      ['file', 'file'],
    );
    const meta = await p.adapter.metadata(p.intent, ctx());
    const part = meta.parts[0]!;
    assert.equal(part.source.provenance, 'metadata');
    assert.match(part.source.note ?? '', /rrm_tiny_pure-1\.0\.0-py3-none-any\.whl: wheel, local wheel/);
    assert.match(
      part.source.note ?? '',
      /rrm_tiny_ext-1\.0\.0\.tar\.gz: native-build, local sdist, .*native sources \(rrm_tiny_ext-1\.0\.0\/rrm_tiny_ext\.c\)/,
    );
    assert.equal(part.requests.cpu, 2000, 'a source build with C asks for compile-sized CPU');
    assert.ok((part.requests.memory ?? 0) >= 1536 * 2 ** 20, 'and compile-sized memory');
    assert.equal(part.requests.network, undefined, 'local files download nothing');
    assert.deepEqual(meta.packages, [
      { manager: 'pip', name: 'rrm-tiny-pure', version: '1.0.0' },
      { manager: 'pip', name: 'rrm-tiny-ext', version: '1.0.0' },
    ]);
    const pure = parseInstall(['pip', 'install', b.pureSdist])!;
    const pureMeta = await pure.adapter.metadata(pure.intent, ctx());
    assert.match(pureMeta.parts[0]?.source.note ?? '', /: build, local sdist, .*pure Python/);
    assert.equal(pureMeta.parts[0]?.requests.cpu, 1000);
    const wheelOnly = parseInstall(['pip', 'install', b.pureWheel])!;
    const wheelMeta = await wheelOnly.adapter.metadata(wheelOnly.intent, ctx());
    assert.equal(wheelMeta.parts[0]?.requests.cpu, 500);
  },
);

test(
  'real installs of the local wheel and the sdist (which compiles) into a temporary target',
  { skip },
  () => {
    const b = build();
    const target = mkdtempSync(join(tmpdir(), 'rrm-pip-target-'));
    for (const file of [b.pureWheel, b.extSdist]) {
      const argv = [
        PY as string,
        '-m',
        'pip',
        'install',
        '-q',
        '--no-index',
        '--no-deps',
        '--no-build-isolation',
        '--target',
        target,
        file,
      ];
      assert.ok(parseInstall(argv), 'an install rrm would profile');
      const r = spawnSync(argv[0] as string, argv.slice(1), {
        encoding: 'utf8',
        env: { ...process.env, PIP_DISABLE_PIP_VERSION_CHECK: '1' },
      });
      assert.equal(r.status, 0, r.stderr);
    }
    const check = spawnSync(
      PY as string,
      ['-c', 'import rrm_tiny_pure, rrm_tiny_ext; print(rrm_tiny_pure.ANSWER + rrm_tiny_ext.answer())'],
      {
        cwd: target,
        encoding: 'utf8',
      },
    );
    assert.equal(check.stdout.trim(), '84', check.stderr);
    assert.ok(
      readdirSync(target).some((f) => /^rrm_tiny_ext\..*\.so$/.test(f)),
      'the sdist was compiled',
    );
  },
);

test(
  'the index path: JSON API, PEP 691 fallback, and pip installing from the same local index',
  { skip },
  async (t) => {
    const b = build();
    const files = [b.pureWheel, b.pureSdist].map((path) => ({
      path,
      name: path.slice(path.lastIndexOf('/') + 1),
    }));
    let jsonApi = true;
    const hits: string[] = [];
    const server = createServer((req, res) => {
      const url = req.url ?? '';
      hits.push(`${url} ${req.headers.accept ?? ''}`);
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const file = files.find((f) => url === `/files/${f.name}`);
      if (file) {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        return res.end(readFileSync(file.path));
      }
      if (url === '/pypi/rrm-tiny-pure/json' && jsonApi) {
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end(
          JSON.stringify({
            info: { name: 'rrm_tiny_pure', version: '1.0.0' },
            urls: files.map((f) => ({
              filename: f.name,
              packagetype: f.name.endsWith('.whl') ? 'bdist_wheel' : 'sdist',
              size: statSync(f.path).size,
              url: `${base}/files/${f.name}`,
            })),
          }),
        );
      }
      if (url === '/simple/rrm-tiny-pure/') {
        if ((req.headers.accept ?? '').includes('application/vnd.pypi.simple.v1+json')) {
          res.writeHead(200, { 'content-type': 'application/vnd.pypi.simple.v1+json' });
          return res.end(
            JSON.stringify({
              meta: { 'api-version': '1.1' },
              name: 'rrm-tiny-pure',
              versions: ['1.0.0'],
              files: files.map((f) => ({
                filename: f.name,
                url: `${base}/files/${f.name}`,
                size: statSync(f.path).size,
                hashes: {},
              })),
            }),
          );
        }
        res.writeHead(200, { 'content-type': 'text/html' });
        return res.end(
          `<!DOCTYPE html><html><body>${files
            .map(
              (f) =>
                `<a href="/files/${f.name}#sha256=${createHash('sha256').update(readFileSync(f.path)).digest('hex')}">${f.name}</a>`,
            )
            .join('\n')}</body></html>`,
        );
      }
      res.writeHead(404);
      res.end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    t.after(() => server.close());
    const index = `http://127.0.0.1:${(server.address() as AddressInfo).port}/simple/`;
    const target = mkdtempSync(join(tmpdir(), 'rrm-pip-index-'));
    const argv = [
      PY as string,
      '-m',
      'pip',
      'install',
      '-q',
      '--no-deps',
      '--index-url',
      index,
      '--target',
      target,
      'rrm_tiny_pure',
    ];
    const p = parseInstall(argv)!;
    const meta = await p.adapter.metadata(p.intent, ctx());
    const part = meta.parts[0]!;
    assert.match(part.source.note ?? '', /\(JSON API\): rrm_tiny_pure-1\.0\.0-py3-none-any\.whl/);
    assert.equal(
      part.estimates?.downloadBytes,
      statSync(b.pureWheel).size,
      'the wheel is chosen over the sdist, sized by the index',
    );
    assert.deepEqual(meta.packages, [{ manager: 'pip', name: 'rrm-tiny-pure', version: '1.0.0' }]);
    jsonApi = false;
    const fallback = await p.adapter.metadata(p.intent, ctx());
    assert.match(
      fallback.parts[0]?.source.note ?? '',
      /\(simple JSON\): rrm_tiny_pure-1\.0\.0-py3-none-any\.whl/,
    );
    const noBinary = parseInstall(['pip', 'install', '--no-binary', ':all:', '-i', index, 'rrm_tiny_pure'])!;
    const src = await noBinary.adapter.metadata(noBinary.intent, ctx());
    assert.match(src.parts[0]?.source.note ?? '', /rrm_tiny_pure-1\.0\.0\.tar\.gz.*built from source/);
    // Asynchronously: the index is served by this very process.
    const r = await execArgv(argv, { timeoutMs: 60_000, env: { PIP_DISABLE_PIP_VERSION_CHECK: '1' } });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(readdirSync(target).includes('rrm_tiny_pure'));
  },
);

test('an unreachable index falls back to defaults and says so', async () => {
  const { profile, packages, notes } = await resolveInstallProfile(
    ['pip', 'install', 'requests==2.31.0'],
    { requests: {} },
    {
      metadata: ctx({ timeoutMs: 400 }),
      profileDirs: [],
      instanceClass: 'test',
      now: Date.now(),
    },
  );
  assert.equal(profile.sources.cpu?.provenance, 'default');
  assert.match(profile.sources.cpu?.note ?? '', /metadata unavailable/);
  assert.ok(
    notes.some((n) => /requests: /.test(n)),
    notes.join('; '),
  );
  assert.deepEqual(packages, [{ manager: 'pip', name: 'requests' }]);
});
