import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { main } from '../../conformance/runner.ts';

// Bad arguments end with exit status 2 before any world starts; each case would otherwise throw or run 0 tests.
const empty = mkdtempSync(join(tmpdir(), 'weft-conf-args-'));
mkdirSync(join(empty, 'cases', 'gateway'), { recursive: true });

for (const [name, argv] of [
  ['a missing --cases directory', ['--cases', join(empty, 'nope')]],
  ['a --cases directory without case files', ['--cases', empty]],
  ['an unknown --profile', ['--profile', 'BOGUS']],
  ['an unknown --test', ['--test', 'NoSuchTest']],
  ['a missing --known-failures file', ['--known-failures', join(empty, 'nope.json')]],
  ['an unknown option', ['--bogus']],
] as const) {
  test(`${name} is a usage error`, async (t) => {
    t.is(await main([...argv]), 2);
  });
}
