/**
 * Table tests of .npmrc reading as npm does it: ini parsing (comments, quotes, escapes, arrays),
 * `${VAR}` expansion, the `npm_config_*` layer, precedence (cli > env > project > user > global >
 * builtin > default), scoped registries, credentials by longest `//host/path/` prefix, and the
 * loader that finds the files (project by walking up, user, global, their env overrides).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  envReplace,
  expandLayer,
  nerfDart,
  NpmConfig,
  npmConfigFromEnv,
  parseNpmrc,
  redactUrl,
  scrub,
  type NpmConfigLayer,
  type NpmConfigWhere,
  type NpmrcData,
} from '../../src/installers/npmrc.js';
import { loadNpmConfig, localPrefix } from '../../src/installers/npmrc-load.js';

test('parseNpmrc reads ini the way npm does', () => {
  const cases: [string, string, Record<string, unknown>][] = [
    ['plain key', 'registry=https://r.example/', { registry: 'https://r.example/' }],
    [
      'spaces around = and the value',
      '  registry =  https://r.example/  ',
      { registry: 'https://r.example/' },
    ],
    ['comment lines (; and #, indented too) are skipped', '; a\n# b\n   ; c\n\t# d\nk=v', { k: 'v' }],
    ['an inline ; or # ends an unquoted value', 'a=one ; two\nb=x#y', { a: 'one', b: 'x' }],
    ['escaped ; and # stay', 'a=one\\;two\nb=x\\#y', { a: 'one;two', b: 'x#y' }],
    ['double quotes: JSON, comments inside kept', 'a="x ; y # z"', { a: 'x ; y # z' }],
    ['double quotes keep spaces', 'a = "  sp  "', { a: '  sp  ' }],
    ['single quotes: stripped, content kept', "a='p#q;r'", { a: 'p#q;r' }],
    ['true/false/null', 'a=true\nb=false\nc=null', { a: true, b: false, c: null }],
    ['a key alone is true', 'flag', { flag: true }],
    ['key[] collects an array', 'ca[]=one\nca[]=two', { ca: ['one', 'two'] }],
    ['the last assignment wins', 'k=1\nk=2', { k: '2' }],
    ['CRLF lines', 'a=1\r\nb=2\r\n', { a: '1', b: '2' }],
    ['[section] keys are not npm config', 'a=1\n[sec]\nb=2', { a: '1' }],
    ['__proto__ is ignored', '__proto__=x\nk=v', { k: 'v' }],
    [
      'scoped registry and nerf-darted credentials',
      '@acme:registry=http://127.0.0.1:4873/\n//127.0.0.1:4873/:_authToken=${TOKEN}',
      { '@acme:registry': 'http://127.0.0.1:4873/', '//127.0.0.1:4873/:_authToken': '${TOKEN}' },
    ],
    ['= inside a value stays', '//h/:_auth=dXNlcjpwYXNz==', { '//h/:_auth': 'dXNlcjpwYXNz==' }],
  ];
  for (const [label, text, want] of cases) {
    assert.deepEqual({ ...parseNpmrc(text) }, want, label);
  }
});

test('envReplace expands ${VAR} as npm does', () => {
  const env = { A: 'aa', B: 'b b', EMPTY: '' };
  const cases: [string, string][] = [
    ['${A}', 'aa'],
    ['x-${A}-${B}-y', 'x-aa-b b-y'],
    ['${UNSET}', '${UNSET}'],
    ['${UNSET?}', ''],
    ['${A?}', 'aa'],
    ['${EMPTY}', ''],
    ['\\${A}', '${A}'],
    ['\\\\${A}', '\\aa'],
    ['$A', '$A'],
    ['${A', '${A'],
  ];
  for (const [input, want] of cases) assert.equal(envReplace(input, env), want, input);
  assert.deepEqual(
    {
      ...expandLayer(
        { '//${HOST}/:_authToken': '  ${A}  ', flag: true, list: ['${A}'] },
        { HOST: 'h', A: 't' },
      ),
    },
    { '//h/:_authToken': 't', flag: true, list: ['t'] },
    'keys and values both, values trimmed',
  );
});

test('npm_config_* environment variables are a layer', () => {
  assert.deepEqual(
    {
      ...npmConfigFromEnv({
        npm_config_registry: 'https://r/',
        NPM_CONFIG_FETCH_RETRIES: '3',
        'npm_config_@acme:registry': 'https://acme/',
        'npm_config_//h/:_authToken': 'tok',
        npm_config_cache: '',
        npm_config_strict_ssl: 'false',
        PATH: '/bin',
      }),
    },
    {
      registry: 'https://r/',
      'fetch-retries': '3',
      '@acme:registry': 'https://acme/',
      '//h/:_authToken': 'tok',
      'strict-ssl': 'false',
    },
  );
});

function layer(where: NpmConfigWhere, data: NpmrcData): NpmConfigLayer {
  return { where, source: where, data };
}

test('precedence: cli > env > project > user > global > builtin > default', () => {
  const order: NpmConfigWhere[] = ['cli', 'env', 'project', 'user', 'global', 'builtin', 'default'];
  for (let i = 0; i < order.length; i++) {
    // every layer from i down sets the registry; the highest of them must win, whatever the input order
    const layers = order
      .slice(i)
      .map((w) => layer(w, { registry: `https://${w}.example/` }))
      .reverse();
    const c = new NpmConfig(layers, { home: '/h', cwd: '/c' });
    assert.equal(c.registry, `https://${order[i]}.example/`, `highest set: ${order[i]}`);
    assert.equal(c.lookup('registry')?.layer.where, order[i]);
  }
  const c = new NpmConfig(
    [
      layer('user', { cache: '~/npm-cache', '@acme:registry': 'https://user-acme.example' }),
      layer('project', { '@acme:registry': 'https://project-acme.example/' }),
      layer('env', { cache: 'rel/cache' }),
    ],
    { home: '/home/u', cwd: '/work/p' },
  );
  assert.equal(c.registryFor('@acme/x'), 'https://project-acme.example/', 'project beats user for a scope');
  assert.equal(
    c.registryFor('@other/x'),
    'https://registry.npmjs.org/',
    'another scope: the default registry',
  );
  assert.equal(c.registryFor('plain'), 'https://registry.npmjs.org/');
  assert.equal(c.cache, '/work/p/rel/cache', 'relative paths resolve against the working directory');
  assert.equal(
    new NpmConfig([layer('user', { cache: '~/npm-cache' })], { home: '/home/u', cwd: '/' }).cache,
    '/home/u/npm-cache',
    '~/ is the home directory',
  );
});

test('credentials: the longest //host/path/ prefix, Bearer or Basic, only for their host', () => {
  const c = new NpmConfig(
    [
      layer('project', {
        registry: 'https://reg.example/npm/',
        '@acme:registry': 'https://acme.example:8443/api/npm/',
        '//acme.example:8443/api/npm/:_authToken': 'acme-token',
        '//acme.example:8443/:_authToken': 'host-token',
        '//basic.example/:_auth': Buffer.from('u:p').toString('base64'),
        '//pw.example/:username': 'bob',
        '//pw.example/:_password': Buffer.from('hunter22').toString('base64'),
      }),
    ],
    { home: '/h', cwd: '/' },
  );
  const cases: [string, string | undefined, string | undefined][] = [
    ['https://acme.example:8443/api/npm/@acme%2fx', '@acme/x', 'Bearer acme-token'],
    ['https://acme.example:8443/api/npm/@acme/x/-/x-1.0.0.tgz', '@acme/x', 'Bearer acme-token'],
    ['https://acme.example:8443/other/path', undefined, 'Bearer host-token'],
    ['https://acme.example:9999/api/npm/@acme%2fx', '@acme/x', undefined],
    ['https://reg.example/npm/lodash', 'lodash', undefined],
    ['https://cdn.example/acme/x-1.0.0.tgz', '@acme/x', undefined],
    ['https://basic.example/x', undefined, `Basic ${Buffer.from('u:p').toString('base64')}`],
    ['https://pw.example/x', undefined, `Basic ${Buffer.from('bob:hunter22').toString('base64')}`],
    ['https://user:pass@plain.example/x', undefined, `Basic ${Buffer.from('user:pass').toString('base64')}`],
  ];
  for (const [url, name, want] of cases) assert.equal(c.authFor(url, name)?.header, want, url);
  assert.equal(
    c.authFor('https://acme.example:8443/api/npm/x')?.key,
    '//acme.example:8443/api/npm/:_authToken',
  );
  const secrets = c.secrets();
  for (const s of ['acme-token', 'host-token', 'hunter22']) assert.ok(secrets.includes(s), s);
  assert.equal(
    scrub('sent acme-token and hunter22 to https://acme.example:8443/', secrets),
    'sent *** and *** to https://acme.example:8443/',
  );
  const opts = c.arboristOptions();
  assert.equal(opts['@acme:registry'], 'https://acme.example:8443/api/npm/');
  assert.equal(opts['//acme.example:8443/api/npm/:_authToken'], 'acme-token', 'arborist gets the raw keys');
  assert.equal(opts.registry, 'https://reg.example/npm/');
  assert.equal(nerfDart('https://acme.example:8443/api/npm/'), '//acme.example:8443/api/npm/');
  assert.equal(redactUrl('https://u:secret@h.example/p?token=x#f'), 'https://h.example/p');
});

test('the loader reads project, user and global .npmrc and the environment, in npm order', () => {
  const root = mkdtempSync(join(tmpdir(), 'rrm-npmrc-'));
  const home = join(root, 'home');
  const prefix = join(root, 'prefix');
  const project = join(root, 'project');
  const sub = join(project, 'packages', 'deep');
  mkdirSync(home, { recursive: true });
  mkdirSync(join(prefix, 'etc'), { recursive: true });
  mkdirSync(sub, { recursive: true });
  writeFileSync(join(project, 'package.json'), '{"name":"p"}');
  writeFileSync(
    join(project, '.npmrc'),
    '# project\n@acme:registry=http://127.0.0.1:1/\n//127.0.0.1:1/:_authToken=${TEST_TOKEN}\nfetch-retries=7\n',
  );
  writeFileSync(
    join(home, '.npmrc'),
    'registry=https://user.example/\n@acme:registry=https://user-acme.example/\ncache=~/.cache/npm\nfetch-retries=5\nstrict-ssl=false\n',
  );
  writeFileSync(join(prefix, 'etc', 'npmrc'), 'registry=https://global.example/\nuser-agent=global\n');
  const env = { HOME: home, PREFIX: prefix, TEST_TOKEN: 'tok-123456' };

  const c = loadNpmConfig({ cwd: sub, env });
  assert.equal(localPrefix(sub), project, 'the nearest directory with a package.json');
  assert.equal(c.registryFor('@acme/x'), 'http://127.0.0.1:1/', 'project beats user');
  assert.equal(c.registry, 'https://user.example/', 'user beats global');
  assert.equal(c.string('user-agent'), 'global', 'global is read');
  assert.equal(c.string('fetch-retries'), '7');
  assert.equal(c.cache, join(home, '.cache/npm'));
  assert.equal(
    c.authFor('http://127.0.0.1:1/@acme%2fx', '@acme/x')?.header,
    'Bearer tok-123456',
    '${ENV} expanded',
  );
  assert.deepEqual(
    c.layers.filter((l) => l.source.includes('npmrc')).map((l) => l.where),
    ['project', 'user', 'global'],
  );

  const fromEnv = loadNpmConfig({
    cwd: sub,
    env: {
      ...env,
      npm_config_registry: 'https://env.example/',
      'npm_config_@acme:registry': 'https://env-acme/',
    },
  });
  assert.equal(fromEnv.registry, 'https://env.example/', 'env beats every file');
  assert.equal(fromEnv.registryFor('@acme/x'), 'https://env-acme/');

  const cli = loadNpmConfig({ cwd: sub, env, cli: { registry: 'https://cli.example/' } });
  assert.equal(cli.registry, 'https://cli.example/', 'the command line beats env');

  const other = join(root, 'other.npmrc');
  writeFileSync(other, 'registry=https://other-user.example/\n');
  const otherGlobal = join(root, 'other-global');
  writeFileSync(otherGlobal, 'user-agent=other-global\n');
  const moved = loadNpmConfig({
    cwd: sub,
    env: { ...env, npm_config_userconfig: other, npm_config_globalconfig: otherGlobal },
  });
  assert.equal(moved.registry, 'https://other-user.example/', '$npm_config_userconfig');
  assert.equal(moved.string('user-agent'), 'other-global', '$npm_config_globalconfig');

  const global = loadNpmConfig({ cwd: sub, env, global: true });
  assert.equal(global.registryFor('@acme/x'), 'https://user-acme.example/', 'global mode skips the project');

  const bare = loadNpmConfig({
    cwd: mkdtempSync(join(tmpdir(), 'rrm-npmrc-bare-')),
    env: { HOME: join(root, 'nohome'), PREFIX: join(root, 'noprefix') },
    defaults: { registry: 'http://127.0.0.1:2/', cache: '/var/cache/x' },
  });
  assert.equal(bare.registry, 'http://127.0.0.1:2/', "without .npmrc, rrm's configured registry");
  assert.equal(bare.cache, '/var/cache/x');
  assert.equal(bare.describe(), 'no .npmrc');
});
