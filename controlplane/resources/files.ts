// Manifests on disk → Resources, once (`loadFiles`, `loadDirectory`, `loadText`) or continuously
// (`FileProvider`, a chokidar watcher that keeps a ResourceSnapshot current). Accepts what
// `kubectl apply -f` accepts: multi-document YAML, JSON, `kind: List`; directories recursively
// (only *.yaml, *.yml, *.json there; explicitly named files whatever their extension).

import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import { type Document, LineCounter, parseAllDocuments } from 'yaml';
import {
  AddressPoolError,
  FileReadError,
  MaterializeError,
  type ResourceError,
  ResourceWarning,
  type SourcePosition,
  YamlSyntaxError,
} from './errors.ts';
import { AddressPool, MATERIALIZE_DEFAULTS, type MaterializeOptions, materialize } from './materialize.ts';
import { type FieldPath, type ParseOptions, parseResource } from './parse.ts';
import { ResourceSnapshot, resourceKey } from './snapshot.ts';
import type { Resource } from './types.ts';

export const MANIFEST_EXTENSIONS: readonly string[] = ['.yaml', '.yml', '.json'];

/** A document of a kind weft does not read (RBAC, ServiceAccount, another API's `Gateway`…). */
export interface SkippedResource extends SourcePosition {
  apiVersion: string;
  kind: string;
  namespace?: string;
  name: string;
}

export interface LoadResult {
  /** Valid objects, duplicates resolved (a later kind+key replaces an earlier one, taking its place in order). */
  resources: Resource[];
  errors: ResourceError[];
  /** One per replaced duplicate. */
  warnings: ResourceWarning[];
  skipped: SkippedResource[];
}

export type LoadOptions = ParseOptions;

// One file's parse, before duplicates across files are resolved.
interface FileResult {
  entries: { resource: Resource; at: SourcePosition }[];
  errors: ResourceError[];
  skipped: SkippedResource[];
}

function syntaxReason(message: string): string {
  return message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
}

function isListDoc(js: unknown): js is { kind: string; items: unknown[] } {
  const o = js as { kind?: unknown; items?: unknown } | null;
  return (
    !!o && typeof o === 'object' && typeof o.kind === 'string' && o.kind.endsWith('List') && Array.isArray(o.items)
  );
}

function parseFileText(text: string, file: string, opts: LoadOptions): FileResult {
  const out: FileResult = { entries: [], errors: [], skipped: [] };
  const lc = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lc, prettyErrors: true, merge: true });
  const pos = (offset: number) => {
    const p = lc.linePos(offset);
    return { line: p.line, column: p.col };
  };
  // A syntax error anywhere can shift document boundaries: nothing of such a file is trusted.
  for (const doc of docs)
    for (const e of doc.errors) {
      const p = e.linePos?.[0];
      out.errors.push(
        new YamlSyntaxError({ file, line: p?.line ?? 1, column: p?.col ?? 1, reason: syntaxReason(e.message) }),
      );
    }
  if (out.errors.length) return out;

  for (const doc of docs) {
    if (doc.contents === null) continue; // empty document (`---` alone, comments only)
    let js: unknown;
    try {
      js = doc.toJS({ maxAliasCount: 1000 });
    } catch (e) {
      out.errors.push(new YamlSyntaxError({ file, ...pos(doc.contents.range[0]), reason: (e as Error).message }));
      continue;
    }
    if (js === null || js === undefined) continue;
    visit(doc, js, [], out, file, opts, pos);
  }
  return out;
}

function visit(
  doc: Document.Parsed,
  js: unknown,
  prefix: FieldPath,
  out: FileResult,
  file: string,
  opts: LoadOptions,
  pos: (offset: number) => { line: number; column: number },
): void {
  const locate = (p: FieldPath) => {
    const node = doc.getIn([...prefix, ...p], true) as { range?: [number, number, number] } | undefined;
    return node?.range ? pos(node.range[0]) : undefined;
  };
  const at = { file, ...(locate([]) ?? { line: 1, column: 1 }) };
  if (isListDoc(js)) {
    js.items.forEach((item, i) => {
      visit(doc, item, [...prefix, 'items', i], out, file, opts, pos);
    });
    return;
  }
  try {
    const r = parseResource(js, { ...at, locate }, opts);
    if (r) {
      out.entries.push({ resource: r, at });
      return;
    }
    const o = js as { apiVersion: string; kind: string; metadata: { name: string; namespace?: unknown } };
    const s: SkippedResource = { ...at, apiVersion: o.apiVersion, kind: o.kind, name: o.metadata.name };
    if (typeof o.metadata.namespace === 'string') s.namespace = o.metadata.namespace;
    out.skipped.push(s);
  } catch (e) {
    out.errors.push(e as ResourceError);
  }
}

/** Resolves duplicates across results given in apply order. */
function combine(results: readonly FileResult[]): LoadResult {
  const seen = new Map<string, { resource: Resource; at: SourcePosition }>();
  const out: LoadResult = { resources: [], errors: [], warnings: [], skipped: [] };
  for (const r of results) {
    out.errors.push(...r.errors);
    out.skipped.push(...r.skipped);
    for (const e of r.entries) {
      const key = `${e.resource.kind}\u0000${resourceKey(e.resource)}`;
      const prev = seen.get(key);
      if (prev) {
        seen.delete(key);
        const md = e.resource.metadata;
        out.warnings.push(
          new ResourceWarning({
            ...e.at,
            kind: e.resource.kind,
            namespace: md.namespace,
            name: md.name,
            reason: `replaces the one at ${prev.at.file}:${prev.at.line}:${prev.at.column} (the later one wins, as with kubectl apply)`,
            previous: prev.at,
          }),
        );
      }
      seen.set(key, e);
    }
  }
  out.resources = [...seen.values()].map((e) => e.resource);
  return out;
}

/** Parses the text of one manifest file (`file` is only used in positions). */
export function loadText(text: string, file: string, opts: LoadOptions = {}): LoadResult {
  return combine([parseFileText(text, file, opts)]);
}

/** Normalized, without a trailing separator (so `dir/` and `dir` name the same watched root). */
function normalizePath(p: string): string {
  const n = path.normalize(p);
  return n.length > 1 && n.endsWith(path.sep) ? n.slice(0, -1) : n;
}

function isManifestName(name: string): boolean {
  return !name.startsWith('.') && MANIFEST_EXTENSIONS.includes(path.extname(name).toLowerCase());
}

/** Orders paths the way a recursive directory walk visits them (component by component). */
function comparePaths(a: string, b: string): number {
  const pa = a.split(path.sep);
  const pb = b.split(path.sep);
  for (let i = 0; i < Math.min(pa.length, pb.length); i++)
    if (pa[i] !== pb[i]) {
      // A file and a directory of the same prefix: compare the whole component, then depth.
      return pa[i] < pb[i] ? -1 : 1;
    }
  return pa.length - pb.length;
}

function readErrorReason(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'ENOENT') return 'no such file or directory';
  if (err.code === 'EACCES') return 'permission denied';
  return err.message;
}

/**
 * The manifest files under `paths`, in apply order: each path in the order given, a directory's
 * files recursively in path order (hidden entries skipped), an explicit file whatever its extension.
 */
export async function listManifestFiles(
  paths: readonly string[],
): Promise<{ files: string[]; errors: FileReadError[] }> {
  const files: string[] = [];
  const errors: FileReadError[] = [];
  const seen = new Set<string>();
  const walk = async (dir: string, visited: Set<string>): Promise<void> => {
    const real = await realpath(dir);
    if (visited.has(real)) return; // a symlink loop
    const inner = new Set(visited).add(real);
    const found: string[] = [];
    const dirs: string[] = [];
    for (const ent of await readdir(dir, { withFileTypes: true })) {
      if (ent.name.startsWith('.')) continue;
      const p = path.join(dir, ent.name);
      let isDir = ent.isDirectory();
      let isFile = ent.isFile();
      if (ent.isSymbolicLink()) {
        const st = await stat(p).catch(() => undefined);
        isDir = !!st?.isDirectory();
        isFile = !!st?.isFile();
      }
      if (isDir) dirs.push(p);
      else if (isFile && isManifestName(ent.name)) found.push(p);
    }
    const nested: string[] = [];
    for (const d of dirs) {
      const before = files.length;
      await walk(d, inner);
      nested.push(...files.splice(before));
    }
    files.push(...[...found, ...nested].sort(comparePaths));
  };
  for (const p of paths) {
    const norm = normalizePath(p);
    try {
      const st = await stat(norm);
      if (st.isDirectory()) {
        const before = files.length;
        await walk(norm, new Set());
        // Keep each file once, at its first place in apply order.
        const added = files.splice(before).filter((f) => !seen.has(f));
        for (const f of added) seen.add(f);
        files.push(...added);
      } else if (!seen.has(norm)) {
        seen.add(norm);
        files.push(norm);
      }
    } catch (e) {
      errors.push(new FileReadError({ file: norm, line: 0, column: 0, reason: readErrorReason(e) }));
    }
  }
  return { files, errors };
}

async function readOne(file: string, opts: LoadOptions): Promise<FileResult & { text?: string }> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    return {
      entries: [],
      errors: [new FileReadError({ file, line: 0, column: 0, reason: readErrorReason(e) })],
      skipped: [],
    };
  }
  return { ...parseFileText(text, file, opts), text };
}

/**
 * Loads manifest files and directories, in the order `kubectl apply -f p1 -f p2 …` applies them.
 * Never throws for bad input: every problem is in `errors`, and everything valid is in `resources`.
 */
export async function loadFiles(paths: readonly string[], opts: LoadOptions = {}): Promise<LoadResult> {
  const { files, errors } = await listManifestFiles(paths);
  const results = await Promise.all(files.map((f) => readOne(f, opts)));
  const out = combine(results);
  out.errors.unshift(...errors);
  return out;
}

/** `loadFiles([dir])`. */
export function loadDirectory(dir: string, opts: LoadOptions = {}): Promise<LoadResult> {
  return loadFiles([dir], opts);
}

export interface LoadSnapshotResult extends LoadResult {
  snapshot: ResourceSnapshot;
}

/**
 * `loadFiles`, then `materialize` (unless `materialize: false`), as one snapshot — what
 * `weft translate` needs. A full address pool is reported in `errors` (the snapshot is then
 * of the objects as written).
 */
export async function loadSnapshot(
  paths: readonly string[],
  opts: LoadOptions & { materialize?: MaterializeOptions | false } = {},
): Promise<LoadSnapshotResult> {
  const { materialize: m = {}, ...parseOpts } = opts;
  const r = await loadFiles(paths, parseOpts);
  let resources = r.resources;
  if (m) {
    try {
      resources = materialize(r.resources, m);
    } catch (e) {
      if (!(e instanceof AddressPoolError) || e.code !== 'WEFT_ERR_POOL_EXHAUSTED') throw e;
      r.errors.push(new MaterializeError({ file: '', line: 0, column: 0, reason: e.message }));
    }
  }
  return { ...r, snapshot: ResourceSnapshot.from(resources) };
}

// ---- FileProvider ----

export interface FileProviderOptions extends LoadOptions {
  /** Files and directories to watch (directories recursively). */
  paths: string[];
  /** Events closer together than this are handled as one reload. Default 50 ms. */
  debounceMs?: number;
  /** Materializer options, or `false` for a snapshot of exactly what the files say. Default: materialize with defaults. */
  materialize?: MaterializeOptions | false;
}

export interface FileProviderUpdate {
  snapshot: ResourceSnapshot;
  /** Every current problem (a file kept at its last good version still shows its error here). */
  errors: ResourceError[];
  warnings: ResourceWarning[];
  skipped: SkippedResource[];
  /** False when only the diagnostics changed: `snapshot` is then the previous snapshot object. */
  snapshotChanged: boolean;
}

export interface FileProviderReload {
  /** Paths whose events were handled in this batch. */
  paths: string[];
  /** Whether an update was emitted. */
  emitted: boolean;
}

interface FileState {
  text: string | undefined;
  /** What the snapshot uses for this file: the newest parse without errors (or the first parse). */
  used: FileResult | undefined;
  /** Errors of the newest read/parse. */
  errors: ResourceError[];
}

/**
 * Keeps a ResourceSnapshot of manifest files current. Bad input loses nothing: a file that stops
 * parsing keeps its last good objects in the snapshot while its errors are reported; a deleted
 * file removes its objects. Listeners hear of every change (and only of changes).
 */
/** How long a changed file's text must stay the same before it is applied (see #handle). */
const SETTLE_MS = 100;
const MAX_SETTLE_ROUNDS = 20;

export class FileProvider {
  readonly #paths: string[];
  readonly #debounceMs: number;
  readonly #materialize: MaterializeOptions | false;
  readonly #parseOpts: LoadOptions;
  readonly #listeners = new Set<(u: FileProviderUpdate) => void>();
  readonly #reloadListeners = new Set<(r: FileProviderReload) => void>();
  readonly #files = new Map<string, FileState>();
  #watcher: FSWatcher | undefined;
  #pending = new Set<string>();
  /** Text of changed files read once and waiting for a second, identical read (see #handle). */
  #candidates = new Map<string, string | undefined>();
  #timer: NodeJS.Timeout | undefined;
  #firstPendingAt = 0;
  #chain: Promise<void> = Promise.resolve();
  #state: 'new' | 'starting' | 'running' | 'closed' = 'new';
  #current: FileProviderUpdate | undefined;
  #resourcesJson = '';
  #diagnosticsJson = '';

  constructor(opts: FileProviderOptions) {
    if (!opts.paths.length) throw new TypeError('FileProvider: paths must name at least one file or directory');
    this.#paths = opts.paths.map(normalizePath);
    this.#debounceMs = opts.debounceMs ?? 50;
    this.#materialize = opts.materialize ?? {};
    this.#parseOpts = opts.defaultNamespace === undefined ? {} : { defaultNamespace: opts.defaultNamespace };
    if (this.#materialize) {
      // Fail fast on bad pools rather than at the first reload.
      const m = { ...MATERIALIZE_DEFAULTS, ...this.#materialize };
      for (const cidr of [m.podCidr, m.serviceCidr, m.gatewayCidr]) new AddressPool(cidr);
    }
  }

  /** The latest update (undefined before `start()` resolves). */
  get current(): FileProviderUpdate | undefined {
    return this.#current;
  }

  get snapshot(): ResourceSnapshot {
    return this.#current?.snapshot ?? ResourceSnapshot.empty();
  }

  /** Called with the first load (during `start()`) and then on every change. Returns an unsubscribe function. */
  onUpdate(listener: (u: FileProviderUpdate) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Called after every batch of file events is handled, whether or not it changed anything (logs, tests). */
  onReload(listener: (r: FileProviderReload) => void): () => void {
    this.#reloadListeners.add(listener);
    return () => this.#reloadListeners.delete(listener);
  }

  /** Starts watching and loads everything; resolves once the first update has been emitted. */
  async start(): Promise<void> {
    if (this.#state !== 'new') throw new Error(`FileProvider: start() called when ${this.#state}`);
    this.#state = 'starting';
    const explicit = new Set(this.#paths);
    const watcher = watch(this.#paths, {
      ignoreInitial: true,
      ignored: (p: string, st?: { isFile(): boolean }) => {
        const n = normalizePath(p);
        if (explicit.has(n)) return false;
        if (path.basename(n).startsWith('.')) return true;
        return !!st?.isFile() && !isManifestName(path.basename(n));
      },
    });
    this.#watcher = watcher;
    for (const ev of ['add', 'change', 'unlink', 'addDir', 'unlinkDir'] as const)
      watcher.on(ev, (p: string) => this.#queue(p));
    watcher.on('error', () => {
      // A watch error (e.g. a vanished directory) is followed by unlink events or shows at the next read.
    });
    await new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
    // The first load goes through the same queue as reloads, so batches of events that arrive
    // meanwhile are handled after it, against its result.
    const first = this.#chain.then(async () => {
      if (this.#isClosed()) return;
      const { files, errors } = await listManifestFiles(this.#paths);
      for (const e of errors) this.#files.set(e.file, { text: undefined, used: undefined, errors: [e] });
      await Promise.all(files.map((f) => this.#reloadFile(f)));
      if (this.#isClosed()) return;
      this.#state = 'running';
      this.#rebuild(true);
    });
    this.#chain = first;
    await first;
  }

  /** Stops watching. No update is emitted after this resolves. */
  async close(): Promise<void> {
    this.#state = 'closed';
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#pending.clear();
    await this.#watcher?.close();
    this.#watcher = undefined;
    await this.#chain;
  }

  #isClosed(): boolean {
    return this.#state === 'closed';
  }

  #queue(p: string): void {
    if (this.#isClosed()) return;
    if (this.#pending.size === 0) this.#firstPendingAt = Date.now();
    this.#pending.add(normalizePath(p));
    clearTimeout(this.#timer);
    // Trailing debounce, bounded so a steady stream of writes still reloads now and then.
    const wait = Math.max(0, Math.min(this.#debounceMs, this.#firstPendingAt + 20 * this.#debounceMs - Date.now()));
    this.#timer = setTimeout(() => this.#flush(), wait);
  }

  #flush(): void {
    this.#timer = undefined;
    const batch = [...this.#pending].sort(comparePaths);
    this.#pending.clear();
    this.#chain = this.#chain.then(() => this.#handle(batch));
  }

  /**
   * Handles a batch of watcher paths. A changed file is applied only once two reads SETTLE_MS apart
   * agree: an editor's truncate-then-write caught halfway can read as a shorter file that still
   * parses, and applying it would delete objects for a moment (in weft local: stop their pods). The
   * second read also catches a write that produced no further watcher event (chokidar drops change
   * events whose stats look unchanged). Deletions apply at once.
   */
  async #handle(batch: string[], round = 0): Promise<void> {
    if (this.#state !== 'running') return;
    let changed = false;
    const unsettled: string[] = [];
    for (const p of batch) {
      const st = await stat(p).catch(() => undefined);
      if (!st) {
        // Deleted: the file itself, or a directory and everything under it.
        this.#candidates.delete(p);
        for (const f of [...this.#files.keys()])
          if (f === p || f.startsWith(p + path.sep)) changed = this.#files.delete(f) || changed;
        continue;
      }
      if (st.isDirectory()) {
        // A watched path that did not exist at start has appeared: its read error is over.
        const missing = this.#files.get(p);
        if (missing && missing.text === undefined) changed = this.#files.delete(p) || changed;
        const { files } = await listManifestFiles([p]);
        for (const f of files) {
          const r = await this.#reloadFile(f, round);
          if (r === 'unsettled') unsettled.push(f);
          else changed = r || changed;
        }
      } else if (st.isFile() && (this.#paths.includes(p) || isManifestName(path.basename(p)))) {
        const r = await this.#reloadFile(p, round);
        if (r === 'unsettled') unsettled.push(p);
        else changed = r || changed;
      }
    }
    if (this.#isClosed()) return;
    const emitted = changed ? this.#rebuild(false) : false;
    // Reload listeners hear of a batch once it has settled (its last pass).
    if (unsettled.length === 0) for (const l of this.#reloadListeners) this.#call(l, { paths: batch, emitted });
    else {
      const again = setTimeout(() => {
        if (this.#isClosed()) return;
        this.#chain = this.#chain.then(() => this.#handle(unsettled, round + 1));
      }, SETTLE_MS);
      again.unref();
    }
  }

  /**
   * Reads and parses one file; true when its applied state changed, false when its text is what is
   * applied, `'unsettled'` when the text is new and not yet seen twice in a row (see #handle). After
   * MAX_SETTLE_ROUNDS a file that keeps changing is applied as it is read.
   */
  async #reloadFile(file: string, round = MAX_SETTLE_ROUNDS): Promise<boolean | 'unsettled'> {
    const res = await readOne(file, this.#parseOpts);
    const prev = this.#files.get(file);
    if (prev && res.text !== undefined && prev.text === res.text) {
      this.#candidates.delete(file);
      return false;
    }
    if (round < MAX_SETTLE_ROUNDS && (round === 0 || this.#candidates.get(file) !== res.text)) {
      this.#candidates.set(file, res.text);
      return 'unsettled';
    }
    this.#candidates.delete(file);
    const failed = res.errors.length > 0;
    const result: FileResult = { entries: res.entries, errors: res.errors, skipped: res.skipped };
    this.#files.set(file, {
      text: res.text,
      // Keep the last good objects of a file that stopped parsing; a file never good uses what it has.
      used: failed && prev?.used ? prev.used : result,
      errors: res.errors,
    });
    return true;
  }

  /** Recomputes the update; emits it if anything changed (or `force`). Returns whether it emitted. */
  #rebuild(force: boolean): boolean {
    const order = (f: string) => {
      const i = this.#paths.findIndex((p) => f === p || f.startsWith(p + path.sep));
      return i < 0 ? this.#paths.length : i;
    };
    const files = [...this.#files.keys()].sort((a, b) => order(a) - order(b) || comparePaths(a, b));
    const states = files.map((f) => this.#files.get(f)!);
    const combined = combine(states.map((s) => s.used ?? { entries: [], errors: [], skipped: [] }));
    const errors: ResourceError[] = states.flatMap((s) => s.errors);

    const resourcesJson = JSON.stringify(combined.resources);
    let snapshot = this.#current?.snapshot;
    let snapshotChanged = false;
    if (!snapshot || resourcesJson !== this.#resourcesJson) {
      try {
        const rs = this.#materialize ? materialize(combined.resources, this.#materialize) : combined.resources;
        snapshot = ResourceSnapshot.from(rs);
        snapshotChanged = true;
        this.#resourcesJson = resourcesJson;
      } catch (e) {
        if (!(e instanceof AddressPoolError)) throw e;
        errors.push(new MaterializeError({ file: '', line: 0, column: 0, reason: e.message }));
        snapshot ??= ResourceSnapshot.empty();
      }
    }
    const diagnosticsJson = JSON.stringify([errors.map(String), combined.warnings.map(String), combined.skipped]);
    if (!force && !snapshotChanged && diagnosticsJson === this.#diagnosticsJson) return false;
    this.#diagnosticsJson = diagnosticsJson;
    const update: FileProviderUpdate = {
      snapshot,
      errors,
      warnings: combined.warnings,
      skipped: combined.skipped,
      snapshotChanged,
    };
    this.#current = update;
    for (const l of this.#listeners) this.#call(l, update);
    return true;
  }

  #call<T>(listener: (arg: T) => void, arg: T): void {
    try {
      listener(arg);
    } catch (e) {
      // A listener's bug is not the provider's to hide, nor to be broken by.
      setImmediate(() => {
        throw e;
      });
    }
  }
}
