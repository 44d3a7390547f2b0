// `weft translate PATH...`: manifests on disk → what the control plane would push and write, offline.
// Loads the files (as `kubectl apply -f` reads them), completes them as a cluster would
// (materialize: Pods, IPs, EndpointSlices, Gateway Services), runs the translator and prints
// `{ statuses, proxies }`. It doubles as weft's offline `istioctl analyze`: any status condition
// that says something is wrong is summarised on stderr and makes the exit code 1.
import { Command, InvalidArgumentError, Option } from 'commander';
import { stringify } from 'yaml';
import { AddressPoolError } from '../../controlplane/resources/errors.ts';
import { loadFiles } from '../../controlplane/resources/files.ts';
import { materialize } from '../../controlplane/resources/materialize.ts';
import { ResourceSnapshot } from '../../controlplane/resources/snapshot.ts';
import type { ParentReference } from '../../controlplane/resources/types.ts';
import {
  type ConditionOut,
  DEFAULT_CONTROLLER_NAME,
  type StatusOut,
  translate,
} from '../../controlplane/translate/index.ts';
import { validateProxyConfig } from '../../sidecar/config/validate.ts';
import { CliError, EXIT } from '../errors.ts';

export interface TranslateCommandOptions {
  proxy?: string;
  output: 'yaml' | 'json';
  statusOnly?: boolean;
  controllerName: string;
  trustDomain?: string;
}

// The ProxyConfig schema's trust-domain rule, checked up front: a bad flag is a usage error, not a bug.
const TRUST_DOMAIN = /^[a-z0-9._-]+$/;

export function translateCommand(): Command {
  return new Command('translate')
    .summary('print the proxy configs and status weft derives from manifests, offline')
    .description(
      'Load Kubernetes and Gateway API manifests (files, or directories read recursively for *.yaml, *.yml and ' +
        '*.json), complete them as a cluster would (Pods for Deployments, Pod and Service IPs, EndpointSlices, the ' +
        "Service of each Gateway), translate them, and print every proxy's config and every status weft owns. " +
        'Exit code 1 when a document does not load, or when a status condition reports a problem: the output is ' +
        'printed first and each problem is summarised on stderr.',
    )
    .argument('<paths...>', 'manifest files or directories')
    .option('--proxy <id>', 'print only this proxy\'s config: its id, or a unique suffix or prefix of "namespace/name"')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['yaml', 'json']).default('yaml'))
    .addOption(new Option('--status-only', 'print only the statuses').conflicts('proxy'))
    .option('--controller-name <name>', 'GatewayClass controllerName that weft serves', DEFAULT_CONTROLLER_NAME)
    .option('--trust-domain <domain>', 'SPIFFE trust domain of workload identities (default: cluster.local)', (v) => {
      if (!TRUST_DOMAIN.test(v))
        throw new InvalidArgumentError('a trust domain is lowercase letters, digits, ".", "_" and "-"');
      return v;
    })
    .action(async (paths: string[], opts: TranslateCommandOptions) => {
      await runTranslate(paths, opts);
    });
}

export async function runTranslate(paths: readonly string[], opts: TranslateCommandOptions): Promise<void> {
  const loaded = await loadFiles(paths);
  for (const w of loaded.warnings) process.stderr.write(`warning: ${w}\n`);
  if (loaded.errors.length > 0) {
    const n = loaded.errors.length;
    throw new CliError('WEFT_ERR_INPUT', `${n} problem${n === 1 ? '' : 's'} in the manifests; nothing translated`, {
      details: loaded.errors.map((e) => e.toString()),
    });
  }

  let resources: ReturnType<typeof materialize>;
  try {
    resources = materialize(loaded.resources, { controllerName: opts.controllerName });
  } catch (err) {
    if (err instanceof AddressPoolError) throw new CliError('WEFT_ERR_INPUT', err.message);
    throw err;
  }
  const translateOptions: Parameters<typeof translate>[1] = { controllerName: opts.controllerName };
  if (opts.trustDomain) translateOptions.trustDomain = opts.trustDomain;
  const result = translate(ResourceSnapshot.from(resources), translateOptions);

  // Every config is checked against the contract the proxy enforces: a refusal here is weft's bug.
  const invalid: string[] = [];
  for (const [id, config] of result.proxies) {
    const v = validateProxyConfig(config);
    if (!v.ok) for (const issue of v.issues) invalid.push(`${id}: ${issue.path}: ${issue.reason}`);
  }
  if (invalid.length > 0)
    throw new CliError(
      'WEFT_ERR_INVALID_PROXY_CONFIG',
      'the translator produced configs the proxy would refuse (above): this is a bug in weft',
      { exitCode: EXIT.bug, details: invalid },
    );

  let doc: unknown;
  if (opts.statusOnly) doc = { statuses: result.statuses };
  else if (opts.proxy !== undefined) doc = result.proxies.get(selectProxy([...result.proxies.keys()], opts.proxy));
  else doc = { statuses: result.statuses, proxies: Object.fromEntries(result.proxies) };
  process.stdout.write(render(doc, opts.output));

  const problems = statusProblems(result.statuses);
  if (problems.length > 0) {
    const n = problems.length;
    throw new CliError('WEFT_ERR_STATUS', `${n} problem${n === 1 ? '' : 's'} reported in status (above)`, {
      details: problems,
    });
  }
}

/** YAML without anchors/aliases (sidecars share tables by reference; a reader wants them spelled out), or JSON. */
export function render(doc: unknown, format: 'yaml' | 'json'): string {
  if (format === 'json') return `${JSON.stringify(doc, null, 2)}\n`;
  return stringify(doc, { aliasDuplicateObjects: false, lineWidth: 0 });
}

/**
 * The proxy id `query` names: the id itself; else the only id ending with it (`foo/foo-login-…-57jc4`,
 * `infra/gateway`); else the only id whose `namespace/name` starts with it (`foo/foo-login`).
 */
export function selectProxy(ids: readonly string[], query: string): string {
  if (ids.includes(query)) return query;
  const nameOf = (id: string) => id.slice(id.indexOf(':') + 1);
  const list = (xs: readonly string[]) => (xs.length > 6 ? `${xs.slice(0, 6).join(', ')}, …` : xs.join(', '));
  for (const candidates of [ids.filter((id) => id.endsWith(query)), ids.filter((id) => nameOf(id).startsWith(query))]) {
    if (candidates.length === 1) return candidates[0];
    if (candidates.length > 1)
      throw new CliError(
        'WEFT_ERR_PROXY_NOT_FOUND',
        `--proxy ${query} matches ${candidates.length} proxies: ${list(candidates)}`,
      );
  }
  throw new CliError(
    'WEFT_ERR_PROXY_NOT_FOUND',
    ids.length > 0 ? `no proxy matches --proxy ${query}; proxies: ${list(ids)}` : 'no proxy matches: there are none',
  );
}

// Conditions whose healthy status is True, and those whose healthy status is False.
const POSITIVE = new Set(['Accepted', 'ResolvedRefs', 'Programmed', 'SupportedVersion']);
const NEGATIVE = new Set(['Conflicted', 'PartiallyInvalid']);

function isProblem(c: ConditionOut): boolean {
  if (POSITIVE.has(c.type)) return c.status !== 'True';
  if (NEGATIVE.has(c.type)) return c.status === 'True';
  return false;
}

function line(subject: string, c: ConditionOut): string {
  return `${subject}: ${c.type}=${c.status} ${c.reason}: ${c.message}`;
}

function parentText(p: ParentReference): string {
  let s = `${p.kind ?? 'Gateway'} ${p.namespace ? `${p.namespace}/` : ''}${p.name}`;
  if (p.sectionName !== undefined) s += ` section ${p.sectionName}`;
  if (p.port !== undefined) s += ` port ${p.port}`;
  return s;
}

/**
 * One line per condition that says something is wrong, e.g.
 * `HTTPRoute bar/bar-route parent Gateway infra/gw: Accepted=False NotAllowedByListeners: <message>`.
 */
export function statusProblems(statuses: readonly StatusOut[]): string[] {
  const out: string[] = [];
  for (const s of statuses) {
    if (s.kind === 'GatewayClass') {
      for (const c of s.status.conditions) if (isProblem(c)) out.push(line(`GatewayClass ${s.name}`, c));
    } else if (s.kind === 'Gateway') {
      const gw = `Gateway ${s.namespace}/${s.name}`;
      for (const c of s.status.conditions) if (isProblem(c)) out.push(line(gw, c));
      for (const l of s.status.listeners)
        for (const c of l.conditions) if (isProblem(c)) out.push(line(`${gw} listener ${l.name}`, c));
    } else {
      for (const p of s.status.parents)
        for (const c of p.conditions)
          if (isProblem(c)) out.push(line(`${s.kind} ${s.namespace}/${s.name} parent ${parentText(p.parentRef)}`, c));
    }
  }
  return out;
}
