// Runs the pinned helm (scripts/helm.ts) on charts/weft and parses what it renders.
import { execFile } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { helmPath } from '../../scripts/helm.ts';
import type { KubeObject } from './validate.ts';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const CHART_DIR = join(REPO_ROOT, 'charts', 'weft');
export const RELEASE_NAMESPACE = 'weft-system';

export interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** helm with these arguments; never throws on a non-zero exit (the result says it), only when helm cannot be had. */
export async function helm(args: string[]): Promise<HelmResult> {
  const bin = await helmPath();
  // No user or repository configuration of this machine may leak into the result.
  const env = { ...process.env, HELM_CONFIG_HOME: '/nonexistent', HELM_CACHE_HOME: '/nonexistent' };
  return promisify(execFile)(bin, args, { env, maxBuffer: 32 * 1024 * 1024 }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (e: { code?: number; stdout?: string; stderr?: string }) => ({
      code: typeof e.code === 'number' ? e.code : 1,
      stdout: e.stdout ?? '',
      stderr: e.stderr ?? String(e),
    }),
  );
}

/** `--set`-style arguments from a flat map, values as YAML-typed helm understands them (`--set-json`). */
export function setArgs(values: Record<string, unknown>): string[] {
  return Object.entries(values).flatMap(([k, v]) => ['--set-json', `${k}=${JSON.stringify(v)}`]);
}

/** Every object `helm template` renders (CRDs included) with these values; throws with helm's stderr on failure. */
export async function renderChart(values: Record<string, unknown> = {}): Promise<KubeObject[]> {
  const r = await helm([
    'template',
    'weft',
    CHART_DIR,
    '--namespace',
    RELEASE_NAMESPACE,
    '--include-crds',
    ...setArgs(values),
  ]);
  if (r.code !== 0) throw new Error(`helm template failed (${r.code}): ${r.stderr}`);
  return parseManifests(r.stdout);
}

export function parseManifests(text: string): KubeObject[] {
  return parseAllDocuments(text).flatMap((doc) => {
    if (doc.errors.length > 0) throw new Error(`rendered YAML does not parse: ${doc.errors[0].message}`);
    const obj = doc.toJS() as KubeObject | null;
    return obj === null ? [] : [obj];
  });
}

export function findObject(objects: KubeObject[], kind: string, name?: string): KubeObject {
  const found = objects.find((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (!found) throw new Error(`no ${kind}${name ? ` ${name}` : ''} rendered`);
  return found;
}
