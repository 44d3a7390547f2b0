import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';

const weft = join(dirname(fileURLToPath(import.meta.url)), '../../bin/weft.ts');

// Option combinations are checked after commander's parse; each must be said on stderr, not just exit 2.
for (const [args, says] of [
  [['--mode', 'sidecar'], 'give --config FILE or --push HOST:PORT'],
  [['--mode', 'sidecar', '--config', '/nonexistent', '--push', '127.0.0.1:1'], 'mutually exclusive'],
  [['--mode', 'edge', '--push', '127.0.0.1:1'], '--push needs --proxy-id'],
] as const) {
  test(`weft proxy ${args.join(' ')}: exit 2 saying "${says}"`, (t) => {
    const r = spawnSync(process.execPath, [weft, 'proxy', ...args], { encoding: 'utf8', timeout: 30_000 });
    t.is(r.status, 2);
    t.true(r.stderr.includes(says), r.stderr);
  });
}
