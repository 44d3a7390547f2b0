// `weft translate` run as a user runs it: a child process on the seed scenario, and on broken copies
// of it made in a temp dir, checking stdout, stderr and the exit code.
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { parse } from 'yaml';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const seed = join(root, 'examples/seed');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function weft(...args: string[]): Promise<Run> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      [join(root, 'bin/weft.ts'), ...args],
      { cwd: root, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        done({ code, stdout, stderr });
      },
    );
  });
}

interface Condition {
  type: string;
  status: string;
  reason: string;
}
interface Status {
  kind: string;
  namespace?: string;
  name: string;
  status: {
    conditions?: Condition[];
    listeners?: { conditions: Condition[] }[];
    parents?: { parentRef: { kind: string; name: string }; conditions: Condition[] }[];
  };
}

function allConditions(statuses: Status[]): Condition[] {
  return statuses.flatMap((s) => [
    ...(s.status.conditions ?? []),
    ...(s.status.listeners ?? []).flatMap((l) => l.conditions),
    ...(s.status.parents ?? []).flatMap((p) => p.conditions),
  ]);
}

/** A copy of the seed in a temp dir, with `edit` applied to one file; the edit must change it. */
function brokenSeed(t: { teardown: (fn: () => void) => void }, file: string, edit: (text: string) => string): string {
  const dir = mkdtempSync(join(tmpdir(), 'weft-seed-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  cpSync(seed, dir, { recursive: true });
  const path = join(dir, file);
  const before = readFileSync(path, 'utf8');
  const after = edit(before);
  if (after === before) throw new Error(`the edit of ${file} changed nothing: the seed no longer has what it replaces`);
  writeFileSync(path, after);
  return dir;
}

function replaceOnce(text: string, from: string, to: string): string {
  const i = text.indexOf(from);
  if (i < 0) throw new Error(`not found in the seed: ${JSON.stringify(from)}`);
  return text.slice(0, i) + to + text.slice(i + from.length);
}

test('seed: exit 0, an edge config and a sidecar per pod, every status healthy', async (t) => {
  const r = await weft('translate', 'examples/seed');
  t.is(r.stderr, '');
  t.is(r.code, 0);
  const out = parse(r.stdout) as { statuses: Status[]; proxies: Record<string, { proxy: { id: string } }> };
  const ids = Object.keys(out.proxies);
  t.true(ids.includes('edge:infra/gateway'));
  for (const [deployment, replicas] of [
    ['foo/foo-login', 1],
    ['foo/foo-home', 1],
    ['foo/foo-site', 1],
    ['bar/bar-v1', 2],
    ['bar/bar-v2', 1],
  ] as const) {
    const pods = ids.filter((id) => id.startsWith(`sidecar:${deployment}-`));
    t.is(pods.length, replicas, deployment);
  }
  t.is(ids.length, 7);
  for (const [id, config] of Object.entries(out.proxies)) t.is(config.proxy.id, id);

  const kinds = out.statuses.map((s) => `${s.kind} ${s.namespace ? `${s.namespace}/` : ''}${s.name}`);
  t.deepEqual(kinds, [
    'GatewayClass weft',
    'Gateway infra/gateway',
    'HTTPRoute bar/bar-mesh',
    'HTTPRoute bar/bar-route',
    'HTTPRoute foo/foo-mesh',
    'HTTPRoute foo/foo-route',
  ]);
  const conditions = allConditions(out.statuses);
  for (const type of ['Accepted', 'ResolvedRefs', 'Programmed'])
    t.true(
      conditions.some((c) => c.type === type),
      type,
    );
  for (const c of conditions) {
    if (c.type === 'Conflicted' || c.type === 'PartiallyInvalid') t.is(c.status, 'False', `${c.type} ${c.reason}`);
    else t.is(c.status, 'True', `${c.type} ${c.reason}`);
  }
  // Each route reached its parent: the Gateway's listeners count both edge routes.
  const gw = out.statuses.find((s) => s.kind === 'Gateway')!;
  t.deepEqual(
    (gw.status.listeners as unknown as { name: string; attachedRoutes: number }[]).map((l) => [
      l.name,
      l.attachedRoutes,
    ]),
    [
      ['https', 2],
      ['http', 2],
    ],
  );
});

test('seed: --proxy by Gateway name, -o json', async (t) => {
  const r = await weft('translate', 'examples/seed', '--proxy', 'infra/gateway', '-o', 'json');
  t.is(r.code, 0, r.stderr);
  const config = JSON.parse(r.stdout);
  t.is(config.proxy.id, 'edge:infra/gateway');
  t.is(config.proxy.mode, 'edge');
  t.deepEqual(
    config.listeners.map((l: { port: number; protocol: string }) => [l.port, l.protocol]),
    [
      [80, 'HTTP'],
      [443, 'HTTPS'],
    ],
  );
});

test('seed: --proxy by the exact id, by a unique suffix and by a pod-name prefix', async (t) => {
  const all = parse((await weft('translate', 'examples/seed')).stdout) as { proxies: Record<string, unknown> };
  const login = Object.keys(all.proxies).find((id) => id.startsWith('sidecar:foo/foo-login-'))!;
  t.truthy(login);
  for (const query of [login, login.slice('sidecar:'.length), 'foo/foo-login']) {
    const r = await weft('translate', 'examples/seed', '--proxy', query);
    t.is(r.code, 0, `${query}: ${r.stderr}`);
    const config = parse(r.stdout) as { proxy: { id: string; mode: string; identity: string } };
    t.is(config.proxy.id, login, query);
    t.is(config.proxy.mode, 'sidecar');
    t.is(config.proxy.identity, 'spiffe://cluster.local/ns/foo/sa/foo-login');
  }
});

test('seed: --proxy that matches several proxies, or none, is an error naming them', async (t) => {
  const several = await weft('translate', 'examples/seed', '--proxy', 'bar/bar-v1');
  t.is(several.code, 1);
  t.is(several.stdout, '');
  t.regex(several.stderr, /^weft: --proxy bar\/bar-v1 matches 2 proxies: sidecar:bar\/bar-v1-/m);
  const none = await weft('translate', 'examples/seed', '--proxy', 'nowhere/nothing');
  t.is(none.code, 1);
  t.regex(none.stderr, /no proxy matches --proxy nowhere\/nothing; proxies: edge:infra\/gateway/);
});

test('seed: --status-only prints the statuses alone; --trust-domain reaches the identities', async (t) => {
  const r = await weft('translate', 'examples/seed', '--status-only', '-o', 'json');
  t.is(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  t.deepEqual(Object.keys(out), ['statuses']);
  t.is(out.statuses.length, 6);

  const td = await weft('translate', 'examples/seed', '--trust-domain', 'example.org', '--proxy', 'foo/foo-home');
  t.is(td.code, 0, td.stderr);
  const config = parse(td.stdout) as { proxy: { identity: string }; trust: { trustDomain: string } };
  t.is(config.proxy.identity, 'spiffe://example.org/ns/foo/sa/foo-home');
  t.is(config.trust.trustDomain, 'example.org');
});

test('seed: --controller-name another controller leaves weft nothing to serve at the edge', async (t) => {
  const r = await weft('translate', 'examples/seed', '--controller-name', 'example.com/other', '-o', 'json');
  t.is(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  t.false('edge:infra/gateway' in out.proxies);
  t.deepEqual(
    out.statuses.map((s: Status) => s.name),
    ['bar-mesh', 'foo-mesh'],
  );
});

test('unknown backend: ResolvedRefs=False BackendNotFound, output still printed, exit 1', async (t) => {
  const dir = brokenSeed(t, 'bar.yaml', (s) =>
    replaceOnce(
      s,
      '        - name: bar-v2\n          port: 80\n          weight: 10',
      '        - name: bar-v3\n          port: 80\n          weight: 10',
    ),
  );
  const r = await weft('translate', dir);
  t.is(r.code, 1);
  const out = parse(r.stdout) as { statuses: Status[]; proxies: Record<string, unknown> };
  t.true('edge:infra/gateway' in out.proxies);
  const route = out.statuses.find((s) => s.name === 'bar-route')!;
  const resolved = route.status.parents![0].conditions.find((c) => c.type === 'ResolvedRefs')!;
  t.is(resolved.status, 'False');
  t.is(resolved.reason, 'BackendNotFound');
  t.regex(
    r.stderr,
    /^HTTPRoute bar\/bar-route parent Gateway infra\/gateway: ResolvedRefs=False BackendNotFound: .*bar-v3/m,
  );
  t.regex(r.stderr, /^weft: 1 problem reported in status/m);
});

test('namespace without the gateway-access label: Accepted=False NotAllowedByListeners, exit 1', async (t) => {
  const dir = brokenSeed(t, 'foo.yaml', (s) => replaceOnce(s, "    gateway-access: 'true'\n", ''));
  const r = await weft('translate', dir, '--status-only');
  t.is(r.code, 1);
  const lines = r.stderr.trim().split('\n');
  t.is(lines.length, 2, r.stderr);
  t.regex(lines[0], /^HTTPRoute foo\/foo-route parent Gateway infra\/gateway: Accepted=False NotAllowedByListeners: /);
  t.is(lines[1], 'weft: 1 problem reported in status (above)');
  // The mesh route of the same namespace does not depend on the Gateway's consent.
  const out = parse(r.stdout) as { statuses: Status[] };
  const mesh = out.statuses.find((s) => s.name === 'foo-mesh')!;
  t.is(mesh.status.parents![0].conditions.find((c) => c.type === 'Accepted')!.status, 'True');
});

test('a regex the proxy cannot run: the rule is refused (PartiallyInvalid or Accepted=False UnsupportedValue)', async (t) => {
  const dir = brokenSeed(t, 'bar.yaml', (s) =>
    replaceOnce(
      s,
      '            - name: env\n              value: canary',
      "            - name: env\n              type: RegularExpression\n              value: 'canary(['",
    ),
  );
  const r = await weft('translate', dir);
  t.is(r.code, 1);
  t.regex(
    r.stderr,
    /^HTTPRoute bar\/bar-route parent Gateway infra\/gateway: (PartiallyInvalid=True|Accepted=False) UnsupportedValue: /m,
  );
  // The broken header match never reaches a proxy.
  const out = parse(r.stdout) as { proxies: Record<string, unknown> };
  t.false(JSON.stringify(out.proxies['edge:infra/gateway']).includes('canary(['));
});

test('a YAML syntax error: file:line on stderr, nothing on stdout, exit 1', async (t) => {
  const dir = brokenSeed(t, 'foo.yaml', (s) =>
    replaceOnce(s, '  name: foo-route\n', '  name: foo-route\n  labels: [oops\n'),
  );
  const lineNo = readFileSync(join(dir, 'foo.yaml'), 'utf8').split('\n').indexOf('  labels: [oops') + 1;
  t.true(lineNo > 1);
  const r = await weft('translate', dir);
  t.is(r.code, 1);
  t.is(r.stdout, '');
  const file = join(dir, 'foo.yaml');
  const cited = [...r.stderr.matchAll(/^(.+?):(\d+):(\d+): /gm)].map((m) => [m[1], Number(m[2])]);
  t.true(cited.length > 0, r.stderr);
  for (const [f, line] of cited) {
    t.is(f, file);
    t.true((line as number) >= lineNo && (line as number) <= lineNo + 3, `line ${line}, edit at ${lineNo}`);
  }
  t.regex(r.stderr, /^weft: \d+ problems? in the manifests; nothing translated$/m);
});

test('a document the API server would refuse: file:line and the field, exit 1', async (t) => {
  const dir = brokenSeed(t, 'bar.yaml', (s) => replaceOnce(s, '  replicas: 2\n', '  replicas: two\n'));
  const lineNo = readFileSync(join(dir, 'bar.yaml'), 'utf8').split('\n').indexOf('  replicas: two') + 1;
  const r = await weft('translate', dir);
  t.is(r.code, 1);
  t.is(r.stdout, '');
  t.regex(
    r.stderr,
    new RegExp(`^${join(dir, 'bar.yaml').replace(/[.]/g, '\\.')}:${lineNo}:\\d+: Deployment bar/bar-v1: `, 'm'),
  );
  t.regex(r.stderr, /replicas/);
});

test('usage errors exit 2; --version prints the package version', async (t) => {
  const unknown = await weft('translate', 'examples/seed', '--bogus');
  t.is(unknown.code, 2);
  t.regex(unknown.stderr, /unknown option '--bogus'/);
  t.is(unknown.stdout, '');
  t.is((await weft('translate')).code, 2);
  t.is((await weft('translate', 'examples/seed', '-o', 'xml')).code, 2);
  t.is((await weft('translate', 'examples/seed', '--trust-domain', 'Not_Lower')).code, 2);
  t.is((await weft('translate', 'examples/seed', '--status-only', '--proxy', 'x')).code, 2);
  t.is((await weft('no-such-command')).code, 2);

  const v = await weft('--version');
  t.is(v.code, 0);
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  t.is(v.stdout.trim(), pkg.version);
});

test('a path that does not exist: one line naming it, exit 1', async (t) => {
  const r = await weft('translate', 'examples/no-such-dir');
  t.is(r.code, 1);
  t.regex(r.stderr, /^examples\/no-such-dir: no such file or directory$/m);
});
