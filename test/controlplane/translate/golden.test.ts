// Golden files for the translator, in the Envoy Gateway style: every test/fixtures/translate/<case>.in.yaml (a
// multi-document manifest; an optional leading comment `# options: {json}` gives TranslateOptions) is loaded as
// `weft translate` loads a directory, materialized, translated, and its `{ statuses, proxies }` compared with
// <case>.out.yaml. `UPDATE_GOLDEN=1 npx ava test/controlplane/translate/golden.test.ts` rewrites the out files;
// a missing out file fails unless UPDATE_GOLDEN is set. Each case also checks that every proxy config passes the
// proxy's own validator and that a second translation is identical (the translator is pure). A case whose out file
// holds the correct expectation written by hand for a known translator bug starts with `# failing: <why>`: it runs
// as test.failing (and is never rewritten) until the bug is fixed and the marker removed.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { stringify } from 'yaml';
import { loadFiles } from '../../../controlplane/resources/files.ts';
import { materialize } from '../../../controlplane/resources/materialize.ts';
import { ResourceSnapshot } from '../../../controlplane/resources/snapshot.ts';
import { translate } from '../../../controlplane/translate/translate.ts';
import type { TranslateOptions, TranslateResult } from '../../../controlplane/translate/types.ts';
import { validateProxyConfig } from '../../../sidecar/config/validate.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const fixtures = join(root, 'test/fixtures/translate');
const update = process.env.UPDATE_GOLDEN === '1' || process.env.UPDATE_GOLDEN === 'true';

/** `# <key>: <value>` in the comment block the file starts with. */
function header(text: string, key: string): string | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith('#')) break;
    const m = new RegExp(`^#\\s*${key}:\\s*(.+)$`).exec(line);
    if (m) return m[1];
  }
  return undefined;
}

/** The serialized form of a result: what the out file holds. */
function serialize(result: TranslateResult): string {
  const doc = { statuses: result.statuses, proxies: Object.fromEntries(result.proxies) };
  // Sidecars of one namespace share outbound tables by reference: print them in full, never as YAML aliases.
  return stringify(doc, { aliasDuplicateObjects: false, lineWidth: 0 });
}

const cases = readdirSync(fixtures)
  .filter((f) => f.endsWith('.in.yaml'))
  .map((f) => basename(f, '.in.yaml'))
  .sort();

test('the golden suite has its cases', (t) => {
  t.true(cases.length >= 70, `${cases.length} cases`);
});

for (const name of cases) {
  const inFile = join(fixtures, `${name}.in.yaml`);
  const outFile = join(fixtures, `${name}.out.yaml`);
  const text = readFileSync(inFile, 'utf8');
  const failing = header(text, 'failing') !== undefined;
  const options = JSON.parse(header(text, 'options') ?? '{}') as TranslateOptions;
  (failing ? test.failing : test)(name, async (t) => {
    const loaded = await loadFiles([inFile]);
    t.deepEqual(
      loaded.errors.map((e) => e.message),
      [],
      'the input manifest loads without errors',
    );
    t.deepEqual(
      loaded.skipped.map((s) => `${s.kind} ${s.name}`),
      [],
      'every document is of a kind weft reads',
    );
    const resources = materialize(loaded.resources);

    const result = translate(ResourceSnapshot.from(resources), options);
    const actual = serialize(result);

    for (const [id, config] of result.proxies) {
      const v = validateProxyConfig(config);
      t.true(v.ok, `${id} fails validation: ${v.ok ? '' : JSON.stringify(v.issues, null, 1)}`);
    }
    // Pure and deterministic: a fresh snapshot of the same objects translates to the same bytes.
    t.is(serialize(translate(ResourceSnapshot.from(materialize(loaded.resources)), options)), actual);

    if (update && !failing) {
      writeFileSync(outFile, actual);
      t.pass('out file written');
      return;
    }
    if (!existsSync(outFile)) {
      t.fail(`${outFile} is missing: run UPDATE_GOLDEN=1 npx ava test/controlplane/translate/golden.test.ts`);
      return;
    }
    t.is(actual, readFileSync(outFile, 'utf8'));
  });
}
