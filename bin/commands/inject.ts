// `weft inject -f FILE|-`: the webhook's injection, offline, like `linkerd inject`. Reads manifests (files or
// stdin), injects the pod template of each Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController,
// Job and CronJob, passes everything else through unchanged, and writes the documents as YAML to stdout. One line
// per object on stderr says whether it was injected and, if not, why. Running it on its own output changes nothing.
import { readFile } from 'node:fs/promises';
import { Command, InvalidArgumentError } from 'commander';
import { parseAllDocuments, stringify } from 'yaml';
import {
  InjectError,
  injectManifest,
  injectSettings,
  type InjectSettingsInput,
  type ManifestReport,
} from '../../injector/index.ts';
import { CliError } from '../errors.ts';

export interface InjectCommandOptions {
  filename: string[];
  nativeSidecar: boolean;
  namespace: string;
  proxyImage?: string;
  trustDomain?: string;
  weftNamespace?: string;
}

function bool(value: string): boolean {
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw new InvalidArgumentError('must be true or false');
}

const collect = (value: string, previous: string[]) => [...previous, value];

export function injectCommand(version: string): Command {
  return new Command('inject')
    .summary('add the weft proxy to the pod templates of Kubernetes manifests, offline')
    .description(
      'Read Kubernetes manifests and write them to stdout with the weft proxy injected into every pod template ' +
        '(Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job, CronJob), exactly as the ' +
        'injector webhook would inject the pods. Other objects pass through unchanged. The namespace is taken as ' +
        'labelled weft.dev/inject=enabled; every other rule holds (system namespaces, hostNetwork, the annotation ' +
        'weft.dev/inject: "false", already injected). Each object is reported on stderr. Exit code 1 when an object ' +
        'carries an annotation weft cannot use (it is written out unchanged).',
    )
    .option('-f, --filename <file>', 'manifest file, or - for stdin (repeatable)', collect, [])
    .option(
      '--native-sidecar <bool>',
      'inject a native sidecar (Kubernetes 1.29+) rather than a classic container',
      bool,
      true,
    )
    .option('-n, --namespace <namespace>', 'namespace of objects that name none', 'default')
    .option('--proxy-image <image>', `proxy image (default: the injector's, for weft ${version})`)
    .option('--trust-domain <domain>', 'SPIFFE trust domain (default: cluster.local)')
    .option('--weft-namespace <namespace>', "weft's own namespace (default: weft-system)")
    .action(async (opts: InjectCommandOptions) => {
      await runInject(version, opts);
    });
}

async function readInput(file: string): Promise<string> {
  if (file !== '-') {
    try {
      return await readFile(file, 'utf8');
    } catch (err) {
      throw new CliError(
        'WEFT_ERR_INPUT',
        `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      );
    }
  }
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function reportLine(r: ManifestReport): string {
  if (r.outcome === 'injected') return `${r.object} injected`;
  if (r.outcome === 'skipped') return `${r.object} skipped: ${r.reason}`;
  if (r.outcome === 'passed-through') return `${r.object} passed through: ${r.reason}`;
  return `${r.object} not injected (error): ${r.reason}`;
}

export async function runInject(version: string, opts: InjectCommandOptions): Promise<void> {
  if (opts.filename.length === 0)
    throw new CliError('WEFT_ERR_USAGE', 'inject: give at least one -f FILE (or -f - for stdin)');
  const input: InjectSettingsInput = { version, nativeSidecar: opts.nativeSidecar };
  if (opts.proxyImage !== undefined) input.image = opts.proxyImage;
  if (opts.trustDomain !== undefined) input.trustDomain = opts.trustDomain;
  if (opts.weftNamespace !== undefined) input.weftNamespace = opts.weftNamespace;
  let settings: ReturnType<typeof injectSettings>;
  try {
    settings = injectSettings(input);
  } catch (err) {
    if (err instanceof InjectError) throw new CliError('WEFT_ERR_USAGE', err.message);
    throw err;
  }

  // Everything is parsed before anything is written: a broken document means no output at all.
  const docs: { text: string; object: unknown }[] = [];
  const problems: string[] = [];
  for (const file of opts.filename) {
    const name = file === '-' ? '<stdin>' : file;
    for (const doc of parseAllDocuments(await readInput(file))) {
      if (doc.errors.length > 0) {
        for (const e of doc.errors) problems.push(`${name}:${e.linePos?.[0].line ?? '?'}: ${e.message.split('\n')[0]}`);
        continue;
      }
      const object = doc.toJS({ maxAliasCount: 100 });
      if (object === null || object === undefined) continue;
      docs.push({ text: doc.toString({ lineWidth: 0 }).replace(/^---\n/, ''), object });
    }
  }
  if (problems.length > 0)
    throw new CliError('WEFT_ERR_INPUT', `${problems.length} problem(s) in the manifests; nothing written`, {
      details: problems,
    });

  const out: string[] = [];
  let errors = 0;
  for (const { text, object } of docs) {
    const result = injectManifest(object, settings, opts.namespace);
    // YAML 1.1 quoting: kubectl reads manifests as YAML 1.1, where "yes", "on" or "0755" unquoted are not strings.
    out.push(
      result.changed ? stringify(result.object, { aliasDuplicateObjects: false, lineWidth: 0, version: '1.1' }) : text,
    );
    for (const r of result.reports) {
      if (r.outcome === 'error') errors++;
      process.stderr.write(`${reportLine(r)}\n`);
    }
  }
  process.stdout.write(out.join('---\n'));
  if (errors > 0)
    throw new CliError(
      'WEFT_ERR_INPUT',
      `${errors} object${errors === 1 ? '' : 's'} not injected because of the errors above`,
    );
}
