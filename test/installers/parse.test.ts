/**
 * Table tests of every adapter's argv parsing: what is an install and what it names, what is not
 * an install (passes through unreserved), and hostile words that must never be taken for a package
 * or an option of ours — they stay argv words of the user's own command, which never sees a shell.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { adapterFor, parseInstall, unwrap } from '../../src/installers/index.js';
import {
  parseAptPackage,
  parseAptCacheShow,
  parseSimulation,
  maintainerWeight,
} from '../../src/installers/apt.js';
import { parseNpmSpec } from '../../src/installers/npm-spec.js';
import { parsePipSpec, wheelCompatible } from '../../src/installers/pip.js';
import { maxSatisfying, satisfies } from '../../src/installers/semver.js';

type Want = null | {
  manager: string;
  action: string;
  names?: (string | undefined)[];
  kinds?: string[];
  named?: Record<string, number>;
};

function check(argv: string[], want: Want): void {
  const got = parseInstall(argv);
  const label = JSON.stringify(argv);
  if (want === null) {
    assert.equal(got, null, `${label} is not an install`);
    return;
  }
  assert.ok(got, `${label} is an install`);
  assert.equal(got.intent.manager, want.manager, label);
  assert.equal(got.intent.action, want.action, label);
  assert.deepEqual(got.intent.argv, argv, `${label}: the argv to run is the argv given`);
  if (want.names)
    assert.deepEqual(
      got.intent.specs.map((s) => s.name),
      want.names,
      label,
    );
  if (want.kinds)
    assert.deepEqual(
      got.intent.specs.map((s) => s.kind),
      want.kinds,
      label,
    );
  assert.deepEqual(got.intent.named, want.named ?? {}, label);
}

test('npm: installs, their package specs, and what is not an install', () => {
  const cases: [string[], Want][] = [
    [['npm', 'install', 'sharp'], { manager: 'npm', action: 'install', names: ['sharp'] }],
    [
      ['npm', 'i', '--save-dev', 'a@1.2.3', '@scope/b@^2'],
      { manager: 'npm', action: 'install', names: ['a', '@scope/b'] },
    ],
    [
      ['/usr/bin/npm', 'add', '--prefix', '/tmp/x', 'c', '--registry=http://r/'],
      { manager: 'npm', action: 'install', names: ['c'] },
    ],
    [['npm', '--prefix', '/tmp/x', 'install', 'c'], { manager: 'npm', action: 'install', names: ['c'] }],
    [['npm', 'install'], { manager: 'npm', action: 'project', names: [] }],
    [['npm', 'ci'], { manager: 'npm', action: 'project', names: [] }],
    [['npm', 'ci', '--omit=dev'], { manager: 'npm', action: 'project', names: [] }],
    [['npm', 'update', 'lodash'], { manager: 'npm', action: 'upgrade', names: ['lodash'] }],
    [['npm', 'rebuild'], { manager: 'npm', action: 'rebuild', names: [] }],
    [['npm', 'install', 'x@npm:lodash@4'], { manager: 'npm', action: 'install', names: ['lodash'] }],
    [
      ['npm', 'install', './local-dir', '../pkg.tgz', 'https://h/x.tgz', 'github:user/repo', 'user/repo'],
      { manager: 'npm', action: 'install', kinds: ['directory', 'file', 'url', 'git', 'git'] },
    ],
    [['npm', 'run', 'build'], null],
    [['npm', 'test'], null],
    [['npm', 'exec', 'cowsay'], null],
    [['npm', 'install', '--dry-run', 'sharp'], null],
    [['npm'], null],
    [['npx', 'sharp'], null],
    [['pnpm', 'add', 'x', '--filter', 'web'], { manager: 'pnpm', action: 'install', names: ['x'] }],
    [['pnpm', 'install'], { manager: 'pnpm', action: 'project', names: [] }],
    [['pnpm', '-C', 'app', 'i'], { manager: 'pnpm', action: 'project', names: [] }],
    [['pnpm', 'run', 'dev'], null],
    [['pnpm', 'dlx', 'x'], null],
    [['yarn'], { manager: 'yarn', action: 'project', names: [] }],
    [['yarn', 'install', '--frozen-lockfile'], { manager: 'yarn', action: 'project', names: [] }],
    [['yarn', 'add', 'react@18', '--cwd', 'web'], { manager: 'yarn', action: 'install', names: ['react'] }],
    [['yarn', 'global', 'add', 'typescript'], { manager: 'yarn', action: 'install', names: ['typescript'] }],
    [['yarn', 'build'], null],
    [['yarn', 'run', 'test'], null],
  ];
  for (const [argv, want] of cases) check(argv, want);
  const withPrefix = parseInstall(['npm', 'install', '--prefix', '/tmp/p', '-g', '--ignore-scripts', 'x']);
  assert.equal(withPrefix?.intent.options.prefix, '/tmp/p');
  assert.equal(withPrefix?.intent.options.global, true);
  assert.equal(withPrefix?.intent.options.ignoreScripts, true);
  assert.equal(parseInstall(['npm', 'ci', '--omit', 'dev'])?.intent.options.omitDev, true);
});

test('apt-get, apt and dpkg: every change takes dpkg-lock; queries, downloads and simulations do not', () => {
  const lock = { 'dpkg-lock': 1 };
  const cases: [string[], Want][] = [
    [
      ['apt-get', 'install', '-y', 'jq', 'curl=7.88.1-10'],
      { manager: 'apt-get', action: 'install', names: ['jq', 'curl'], named: lock },
    ],
    [
      ['apt-get', '-y', '--no-install-recommends', 'install', 'libc6:amd64'],
      { manager: 'apt-get', action: 'install', names: ['libc6'], named: lock },
    ],
    [
      ['apt', 'install', 'htop/bookworm-backports'],
      { manager: 'apt', action: 'install', names: ['htop'], named: lock },
    ],
    [
      ['apt-get', 'install', '-t', 'bookworm-backports', 'xz'],
      { manager: 'apt-get', action: 'install', names: ['xz'], named: lock },
    ],
    [['apt-get', 'upgrade', '-y'], { manager: 'apt-get', action: 'upgrade', names: [], named: lock }],
    [['apt-get', 'dist-upgrade'], { manager: 'apt-get', action: 'upgrade', names: [], named: lock }],
    [['apt-get', 'remove', '-y', 'sl'], { manager: 'apt-get', action: 'remove', names: ['sl'], named: lock }],
    [['apt-get', 'purge', 'sl'], { manager: 'apt-get', action: 'remove', names: ['sl'], named: lock }],
    [['apt-get', 'autoremove'], { manager: 'apt-get', action: 'remove', names: [], named: lock }],
    [['apt-get', 'update'], { manager: 'apt-get', action: 'refresh', names: [], named: lock }],
    [
      ['apt-get', 'install', './local.deb'],
      { manager: 'apt-get', action: 'install', kinds: ['file'], named: lock },
    ],
    [
      ['sudo', '-E', 'apt-get', 'install', '-y', 'jq'],
      { manager: 'apt-get', action: 'install', names: ['jq'], named: lock },
    ],
    [
      ['env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', 'install', 'jq'],
      { manager: 'apt-get', action: 'install', names: ['jq'], named: lock },
    ],
    [['dpkg', '-i', 'x.deb'], { manager: 'dpkg', action: 'install', kinds: ['file'], named: lock }],
    [['dpkg', '--purge', 'sl'], { manager: 'dpkg', action: 'remove', names: ['sl'], named: lock }],
    [['apt-get', 'source', 'jq'], null],
    [['apt-get', 'download', 'jq'], null],
    [['apt-get', 'changelog', 'jq'], null],
    [['apt-get', '-s', 'install', 'jq'], null],
    [['apt-get', 'install', '--simulate', 'jq'], null],
    [['apt-get', 'install', '--download-only', 'jq'], null],
    [['apt', 'search', 'jq'], null],
    [['apt', 'show', 'jq'], null],
    [['apt-cache', 'policy', 'jq'], null],
    [['dpkg', '-l'], null],
    [['dpkg', '-L', 'jq'], null],
  ];
  for (const [argv, want] of cases) check(argv, want);
  assert.deepEqual(
    parseInstall(['apt-get', 'install', '-t', 'bookworm-backports', '--no-install-recommends', 'x'])?.intent
      .options.aptSimulationArgs,
    ['-t', 'bookworm-backports', '--no-install-recommends'],
  );
});

test('pip: installs, requirement specs, local files; downloads and other subcommands pass through', () => {
  const cases: [string[], Want][] = [
    [
      ['pip', 'install', 'requests==2.31.0', 'numpy>=1.26,<2'],
      { manager: 'pip', action: 'install', names: ['requests', 'numpy'] },
    ],
    [['pip3', 'install', '--user', 'flask[async]'], { manager: 'pip', action: 'install', names: ['flask'] }],
    [
      ['python3', '-m', 'pip', 'install', '-i', 'http://127.0.0.1:1/simple/', 'x'],
      { manager: 'pip', action: 'install', names: ['x'] },
    ],
    [
      ['/usr/bin/python3.11', '-I', '-m', 'pip', 'install', 'x'],
      { manager: 'pip', action: 'install', names: ['x'] },
    ],
    [
      ['pip', 'install', './dist/x-1.0-py3-none-any.whl', 'y-1.0.tar.gz', '.'],
      { manager: 'pip', action: 'install', kinds: ['file', 'file', 'directory'] },
    ],
    [['pip', 'install', '-e', '.'], { manager: 'pip', action: 'install', kinds: ['directory'] }],
    [['pip', 'install', '-r', 'requirements.txt'], { manager: 'pip', action: 'project', names: [] }],
    [['pip', 'install', 'git+https://h/x.git'], { manager: 'pip', action: 'install', kinds: ['git'] }],
    [['pip', 'download', 'x'], null],
    [['pip', 'wheel', 'x'], null],
    [['pip', 'uninstall', 'x'], null],
    [['pip', 'list'], null],
    [['pip', 'install', '--dry-run', 'x'], null],
    [['python3', '-c', 'import pip'], null],
    [['python3', '-m', 'venv', 'v'], null],
  ];
  for (const [argv, want] of cases) check(argv, want);
  const i = parseInstall(['pip', 'install', '--no-index', '-f', '/wheels', '--target', '/t', 'x']);
  assert.equal(i?.intent.options.indexUrls, false);
  assert.deepEqual(i?.intent.options.findLinks, ['/wheels']);
  assert.equal(i?.intent.options.prefix, '/t');
});

test('hostile words are never package names, and options are never packages', () => {
  const hostile = ['; rm -rf /', '$(reboot)', '`id`', 'a && b', 'x|y', "x' 'y", 'x\ny', '../../etc/passwd'];
  for (const word of hostile) {
    for (const argv of [
      ['npm', 'install', word],
      ['apt-get', 'install', '-y', word],
      ['pip', 'install', word],
    ]) {
      const got = parseInstall(argv);
      assert.ok(got, JSON.stringify(argv));
      for (const s of got.intent.specs) {
        if (s.kind === 'registry')
          assert.fail(`${JSON.stringify(word)} was taken for a registry package by ${argv[0]}`);
      }
      assert.deepEqual(got.intent.argv, argv, 'the argv is kept as given, one word per element');
    }
  }
  // An option injected as a word stays an option of the user's command: never a package to look up.
  for (const argv of [
    ['npm', 'install', '--prefix=/', 'x'],
    ['npm', 'install', '--registry=http://evil/', 'x'],
    ['apt-get', 'install', '-o', 'APT::Get::Foo=1', 'x1'],
    ['pip', 'install', '--target=/', 'x'],
  ]) {
    const got = parseInstall(argv);
    assert.deepEqual(
      got?.intent.specs.map((s) => s.name?.replace('x1', 'x')),
      ['x'],
      JSON.stringify(argv),
    );
  }
  assert.equal(parseInstall(['npm', 'install', '--prefix=/', 'x'])?.intent.options.prefix, '/');
  // Only the simulation-relevant apt options are passed on to `apt-get -s`; `-o` never is.
  assert.deepEqual(
    parseInstall(['apt-get', 'install', '-o', 'Dir::Etc=/tmp', 'x'])?.intent.options.aptSimulationArgs,
    [],
  );
  assert.equal(parseAptPackage('-oDir=/x').kind, 'other');
  assert.equal(parseAptPackage('x;y').kind, 'other');
  assert.equal(parseNpmSpec('x@1.0.0; rm -rf /').kind, 'other');
  assert.equal(parseNpmSpec('--foo').kind, 'other');
  assert.equal(parsePipSpec('x; os_name == "posix" `id`').kind, 'other');
});

test('wrappers are looked through; unknown programs have no adapter', () => {
  assert.deepEqual(unwrap(['sudo', '-u', 'root', 'nice', '-n', '5', 'npm', 'i', 'x']), ['npm', 'i', 'x']);
  assert.deepEqual(unwrap(['env', '-u', 'X', 'A=1', 'pip', 'install', 'x']), ['pip', 'install', 'x']);
  assert.equal(adapterFor(['make', 'install']), undefined);
  assert.equal(adapterFor(['sudo', 'apt-get', 'install', 'x'])?.manager, 'apt');
  assert.equal(parseInstall(['make', 'install']), null);
  assert.equal(parseInstall([]), null);
});

test('apt simulation and apt-cache output parse into changes and sizes', () => {
  const sim = [
    'NOTE: This is only a simulation!',
    'Inst libjq1 (1.6-2.1 Debian:12.15/oldstable [amd64])',
    'Inst jq [1.5] (1.6-2.1 Debian:12.15/oldstable [amd64])',
    'Conf jq (1.6-2.1 Debian:12.15/oldstable [amd64])',
    'Remv sl [5.02-1+b1]',
  ].join('\n');
  assert.deepEqual(parseSimulation(sim), [
    { op: 'Inst', name: 'libjq1', version: '1.6-2.1', arch: 'amd64' },
    { op: 'Inst', name: 'jq', version: '1.6-2.1', arch: 'amd64' },
    { op: 'Remv', name: 'sl' },
  ]);
  const show = [
    'Package: foo-dkms',
    'Version: 1:2.0-1',
    'Installed-Size: 100',
    'Architecture: all',
    'Depends: dkms (>= 2.1), libc6',
    'X-Rrm-Request-Memory: 3Gi',
    'Filename: pool/main/f/foo/foo-dkms_2.0-1_all.deb',
    'Size: 2048',
    '',
    'Package: bar',
    'Version: 1.0',
    'Description: multi',
    ' line',
  ].join('\n');
  const infos = parseAptCacheShow(show);
  assert.equal(infos.length, 2);
  assert.equal(infos[0]?.installedSize, 100 * 1024);
  assert.equal(infos[0]?.size, 2048);
  assert.deepEqual(infos[0]?.depends, ['dkms', 'libc6']);
  assert.deepEqual(infos[0]?.rrm, { 'request-memory': '3Gi' });
  assert.equal(maintainerWeight(infos[0]!), 'dkms');
  assert.equal(maintainerWeight({ name: 'linux-image-amd64', depends: [] }), 'kernel');
  assert.equal(maintainerWeight(infos[1]!), 'plain');
});

test('semver: ranges npm writes', () => {
  const cases: [string, string, boolean][] = [
    ['1.2.3', '^1.2.0', true],
    ['2.0.0', '^1.2.0', false],
    ['0.2.5', '^0.2.3', true],
    ['0.3.0', '^0.2.3', false],
    ['0.0.4', '^0.0.3', false],
    ['1.2.9', '~1.2.3', true],
    ['1.3.0', '~1.2.3', false],
    ['1.9.9', '1.x', true],
    ['1.9.9', '1', true],
    ['2.0.0', '1.x || >=2.1', false],
    ['2.1.0', '1.x || >=2.1', true],
    ['1.5.0', '>=1.2.3 <2', true],
    ['1.5.0', '1.2.3 - 1.4', false],
    ['1.4.9', '1.2.3 - 1.4', true],
    ['3.0.0', '*', true],
    ['3.0.0-beta.1', '*', false],
    ['3.0.0-beta.2', '>=3.0.0-beta.1', true],
    ['1.2.3', '1.2.3', true],
    ['1.2.3', '=1.2.3', true],
    ['1.2.4', '>= 1.2.3', true],
  ];
  for (const [v, r, want] of cases) assert.equal(satisfies(v, r), want, `${v} ${r}`);
  assert.equal(maxSatisfying(['1.0.0', '1.2.0', '1.10.0', '2.0.0'], '^1'), '1.10.0');
  assert.equal(maxSatisfying(['1.0.0'], 'latest'), undefined);
});

test('wheel tags: which wheels this interpreter can install', () => {
  const py = { major: 3, minor: 11, arch: 'x86_64' };
  assert.ok(wheelCompatible('x-1.0-py3-none-any.whl', py));
  assert.ok(wheelCompatible('x-1.0-py2.py3-none-any.whl', py));
  assert.ok(wheelCompatible('x-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl', py));
  assert.ok(wheelCompatible('x-1.0-cp38-abi3-manylinux2014_x86_64.whl', py));
  assert.ok(!wheelCompatible('x-1.0-cp312-cp312-manylinux2014_x86_64.whl', py));
  assert.ok(!wheelCompatible('x-1.0-cp311-cp311-win_amd64.whl', py));
  assert.ok(!wheelCompatible('x-1.0-cp311-cp311-manylinux2014_aarch64.whl', py));
});
