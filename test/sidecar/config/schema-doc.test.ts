// Keeps docs/config-schema.md true as the schema grows: every property the schema has must be
// named in the doc (in `code`), and the doc's YAML example must be a valid config.
import { readFileSync } from 'node:fs';
import test from 'ava';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { PROXY_CONFIG_VERSION, ProxyConfigSchema, validateProxyConfig } from '../../../sidecar/config/index.ts';

const doc = readFileSync(new URL('../../../docs/config-schema.md', import.meta.url), 'utf8');

/** Every property name anywhere in a JSON Schema. */
function propertyNames(schema: unknown, into = new Set<string>()): Set<string> {
  if (Array.isArray(schema)) {
    for (const s of schema) propertyNames(s, into);
  } else if (schema !== null && typeof schema === 'object') {
    const properties = (schema as { properties?: unknown }).properties;
    if (properties !== null && typeof properties === 'object') {
      for (const name of Object.keys(properties)) into.add(name);
    }
    for (const value of Object.values(schema)) propertyNames(value, into);
  }
  return into;
}

/** Identifiers inside the doc's inline code spans (the field tables and prose, not the example). */
function codeWords(markdown: string): Set<string> {
  const words = new Set<string>();
  const add = (code: string) => {
    for (const word of code.match(/[A-Za-z_][A-Za-z0-9_]*/g) ?? []) words.add(word);
  };
  const prose = markdown.replace(/```[a-z]*\n[\s\S]*?```/g, '');
  for (const m of prose.matchAll(/``(.+?)``|`([^`]+)`/g)) add(m[1] ?? m[2]);
  return words;
}

test('the JSON Schema walk finds the schema’s properties', (t) => {
  const names = propertyNames(z.toJSONSchema(ProxyConfigSchema));
  // A canary from each depth, so a walk that stops early fails here rather than passing vacuously.
  for (const name of ['apiVersion', 'listeners', 'hosts', 'certificates', 'virtualHosts', 'queryParams', 'meshPort']) {
    t.true(names.has(name), name);
  }
  t.true(names.size > 60, `${names.size} properties`);
});

test('every schema property is named in docs/config-schema.md', (t) => {
  const names = propertyNames(z.toJSONSchema(ProxyConfigSchema));
  const documented = codeWords(doc);
  const missing = [...names].filter((name) => !documented.has(name)).sort();
  t.deepEqual(missing, [], `add these fields to docs/config-schema.md (in \`code\`): ${missing.join(', ')}`);
});

test('the doc names the current apiVersion', (t) => {
  t.true(doc.includes(PROXY_CONFIG_VERSION));
});

test('the YAML example in the doc is a valid ProxyConfig', (t) => {
  const blocks = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]);
  t.is(blocks.length, 1);
  const result = validateProxyConfig(parseYaml(blocks[0]));
  t.true(result.ok, result.ok ? '' : JSON.stringify(result.issues, null, 1));
});
