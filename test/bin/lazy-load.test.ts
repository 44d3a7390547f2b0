// `weft proxy init-iptables` runs once per pod start (the init container, and every pod of `weft local up --netns`)
// and `weft proxy wait` in every classic sidecar's postStart hook: they must not load the proxy, the translator,
// the injector or the control plane. A load hook in the child lists every module it loads.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const weft = join(root, 'bin/weft.ts');

const hook = `import { registerHooks } from 'node:module';
const seen = [];
registerHooks({ load(url, context, next) { seen.push(url); return next(url, context); } });
process.on('exit', () => process.stderr.write('\\nLOADED ' + JSON.stringify(seen) + '\\n'));`;

/** What `weft ...args` loads: repository paths, `node_modules/<package>` for dependencies, `node:…` builtins. */
function modulesLoaded(args: readonly string[]): { status: number | null; modules: Set<string> } {
  const r = spawnSync(
    process.execPath,
    ['--import', `data:text/javascript,${encodeURIComponent(hook)}`, weft, ...args],
    { encoding: 'utf8', timeout: 60_000 },
  );
  const line = r.stderr.split('\n').find((l) => l.startsWith('LOADED '));
  if (!line) throw new Error(`no module list from weft ${args.join(' ')}: ${r.stderr}`);
  const modules = new Set<string>();
  for (const url of JSON.parse(line.slice('LOADED '.length)) as string[]) {
    if (!url.startsWith('file:')) {
      modules.add(url);
      continue;
    }
    const path = fileURLToPath(url);
    const dep = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path);
    modules.add(dep ? `node_modules/${dep[1]}` : path.slice(root.length + 1));
  }
  return { status: r.status, modules };
}

const heavy = [
  'sidecar/proxy.ts',
  'controlplane/translate/translate.ts',
  'injector/index.ts',
  'node_modules/zod',
  'node_modules/pino',
  'node_modules/yaml',
  'node_modules/@opentelemetry/api',
];

test('the load hook sees what a command loads (weft translate --help loads the translator)', (t) => {
  const { status, modules } = modulesLoaded(['translate', '--help']);
  t.is(status, 0);
  t.true(modules.has('controlplane/translate/translate.ts'), [...modules].join(' '));
});

// The init step does not even need node:http (which `wait` does).
for (const [args, needs, alsoAbsent] of [
  [['proxy', 'init-iptables', '--dry-run'], 'sidecar/capture/init-iptables-cli.ts', ['node:http']],
  [['proxy', 'init-iptables', '--help'], 'sidecar/capture/init-iptables-cli.ts', ['node:http']],
  [['proxy', 'wait', '--help'], 'sidecar/proxy-wait.ts', []],
] as const) {
  test(`weft ${args.join(' ')} loads ${needs}, not the proxy, translator, injector, zod, pino, yaml, OpenTelemetry`, (t) => {
    const { status, modules } = modulesLoaded(args);
    t.is(status, 0);
    t.true(modules.has(needs), [...modules].join(' '));
    t.deepEqual(
      [...heavy, ...alsoAbsent].filter((m) => modules.has(m)),
      [],
    );
  });
}
