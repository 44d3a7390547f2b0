// Enforces the dependency directions of DESIGN.md ("Parts and how data flows") by reading the module specifiers of
// every .ts file in the repository. A small lexer skips comments, strings, templates and regular expressions, so
// text that merely looks like an import (in a comment or a string) is not counted, and type-only imports are.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const skipDirs = new Set(['node_modules', '.git']);
// Ignored by .gitignore: scratch output, not source.
const skipRootDirs = new Set(['tmp', 'build', '.weft']);
const tsFile = /\.[mc]?ts$/;

interface ImportRef {
  specifier: string;
  line: number;
}

interface Token {
  kind: 'name' | 'string' | 'template' | 'punct' | 'other';
  value: string;
  line: number;
}

// Keywords after which a `/` starts a regular expression rather than a division.
const regexAfterKeyword = new Set([
  'return',
  'typeof',
  'instanceof',
  'in',
  'of',
  'new',
  'delete',
  'void',
  'throw',
  'case',
  'do',
  'else',
  'yield',
  'await',
]);

function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  let line = 1;
  // One entry per open `${` of a template: the brace depth at which that substitution closes.
  const templateDepths: number[] = [];
  let braceDepth = 0;

  const countLines = (from: number, to: number) => {
    for (let k = from; k < to; k++) if (source[k] === '\n') line++;
  };

  // Reads template characters from i (just after ` or }) up to the closing ` or the next `${`.
  const readTemplate = (startLine: number, continued: boolean) => {
    let value = '';
    while (i < source.length) {
      const c = source[i];
      if (c === '\\') {
        value += source.slice(i, i + 2);
        countLines(i, i + 2);
        i += 2;
      } else if (c === '`') {
        i++;
        tokens.push({ kind: 'template', value: continued ? '\0' : value, line: startLine });
        return;
      } else if (c === '$' && source[i + 1] === '{') {
        i += 2;
        templateDepths.push(braceDepth);
        braceDepth++;
        // A template with substitutions has no static value.
        tokens.push({ kind: 'template', value: '\0', line: startLine });
        return;
      } else {
        if (c === '\n') line++;
        value += c;
        i++;
      }
    }
  };

  const regexAllowed = () => {
    const prev = tokens.at(-1);
    if (!prev) return true;
    if (prev.kind === 'name') return regexAfterKeyword.has(prev.value);
    if (prev.kind === 'punct') return !')]}'.includes(prev.value);
    return false;
  };

  while (i < source.length) {
    const c = source[i];
    const next = source[i + 1];
    if (c === '\n') {
      line++;
      i++;
    } else if (/\s/.test(c)) {
      i++;
    } else if (c === '/' && next === '/') {
      while (i < source.length && source[i] !== '\n') i++;
    } else if (c === '/' && next === '*') {
      const end = source.indexOf('*/', i + 2);
      const stop = end === -1 ? source.length : end + 2;
      countLines(i, stop);
      i = stop;
    } else if (c === "'" || c === '"') {
      const startLine = line;
      let value = '';
      i++;
      while (i < source.length && source[i] !== c && source[i] !== '\n') {
        if (source[i] === '\\') {
          value += source.slice(i, i + 2);
          countLines(i, i + 2);
          i += 2;
        } else {
          value += source[i++];
        }
      }
      i++;
      tokens.push({ kind: 'string', value, line: startLine });
    } else if (c === '`') {
      i++;
      readTemplate(line, false);
    } else if (c === '}' && templateDepths.at(-1) === braceDepth - 1) {
      templateDepths.pop();
      braceDepth--;
      i++;
      readTemplate(line, true);
    } else if (c === '/' && regexAllowed()) {
      const startLine = line;
      let inClass = false;
      i++;
      while (i < source.length && source[i] !== '\n') {
        const r = source[i];
        if (r === '\\') i++;
        else if (r === '[') inClass = true;
        else if (r === ']') inClass = false;
        else if (r === '/' && !inClass) break;
        i++;
      }
      i++;
      while (i < source.length && /[a-z]/i.test(source[i])) i++;
      tokens.push({ kind: 'other', value: 'regex', line: startLine });
    } else if (/[A-Za-z_$#]/.test(c)) {
      const start = i;
      while (i < source.length && /[\w$#]/.test(source[i])) i++;
      tokens.push({ kind: 'name', value: source.slice(start, i), line });
    } else if (/[0-9]/.test(c)) {
      while (i < source.length && /[\w.]/.test(source[i])) i++;
      tokens.push({ kind: 'other', value: 'number', line });
    } else {
      if (c === '{') braceDepth++;
      if (c === '}') braceDepth--;
      tokens.push({ kind: 'punct', value: c, line });
      i++;
    }
  }
  return tokens;
}

/** Module specifiers of `import … from`, `export … from`, `import '…'` and `import('…')`, with their lines. */
function findImports(source: string): ImportRef[] {
  const tokens = tokenize(source);
  const found: ImportRef[] = [];
  const isLiteral = (t: Token | undefined): t is Token =>
    t !== undefined && (t.kind === 'string' || (t.kind === 'template' && t.value !== '\0'));
  for (let k = 0; k < tokens.length; k++) {
    const t = tokens[k];
    if (t.kind !== 'name') continue;
    const prev = tokens[k - 1];
    // `x.from`, `x.import` are property names, not keywords.
    if (prev?.kind === 'punct' && prev.value === '.') continue;
    const a = tokens[k + 1];
    const b = tokens[k + 2];
    if (t.value === 'from' && isLiteral(a)) found.push({ specifier: a.value, line: a.line });
    else if (t.value === 'import' && isLiteral(a)) found.push({ specifier: a.value, line: a.line });
    else if (t.value === 'import' && a?.value === '(' && isLiteral(b)) found.push({ specifier: b.value, line: b.line });
  }
  return found;
}

function listTsFiles(dir: string): string[] {
  const files: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (skipDirs.has(entry.name) || (dir === root && skipRootDirs.has(entry.name))) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...listTsFiles(path));
    else if (entry.isFile() && tsFile.test(entry.name)) files.push(path);
  }
  return files;
}

interface Edge {
  /** Repository-relative path of the importing file, with `/`. */
  from: string;
  line: number;
  specifier: string;
  /** Repository-relative path of the imported module when the specifier points into the repository. */
  to: string | undefined;
}

const toRepoPath = (absolute: string) => relative(root, absolute).split(sep).join('/');

function scanRepository(): { files: string[]; edges: Edge[] } {
  const files = listTsFiles(root);
  const edges: Edge[] = [];
  for (const file of files) {
    for (const { specifier, line } of findImports(readFileSync(file, 'utf8'))) {
      let to: string | undefined;
      if (specifier.startsWith('.') || specifier.startsWith('/')) {
        const target = toRepoPath(resolve(dirname(file), specifier));
        if (!target.startsWith('..')) to = target;
      }
      edges.push({ from: toRepoPath(file), line, specifier, to });
    }
  }
  return { files: files.map(toRepoPath), edges };
}

const { files, edges } = scanRepository();

const within = (path: string | undefined, dir: string) => path?.startsWith(`${dir}/`) === true;
const partOf = (path: string | undefined) => path?.split('/')[0];
const describe = (e: Edge) => `${e.from}:${e.line} imports '${e.specifier}'`;
const offenders = (broken: (e: Edge) => boolean) => edges.filter(broken).map(describe);

test('scanner: finds this file and its import of ava (so the rules below cannot pass vacuously)', (t) => {
  t.true(files.includes('test/architecture.test.ts'));
  const own = edges.filter((e) => e.from === 'test/architecture.test.ts');
  t.deepEqual(
    own.map((e) => `${e.line} ${e.specifier}`),
    ['4 node:fs', '5 node:path', '6 node:url', '7 ava'],
  );
  t.true(files.some((f) => within(f, 'sidecar')));
  t.true(files.some((f) => within(f, 'controlplane')));
});

test('scanner: reads every import form and ignores look-alikes in comments, strings and regexes', (t) => {
  const source = [
    "import a from './a.ts';",
    'import type {',
    '  B,',
    "} from '../b.ts';",
    "export * from './c.ts';",
    "export { d } from './d.ts';",
    "import './e.ts';",
    "const f = await import('./f.ts');",
    'const g = await import(`./g.ts`);',
    "// import x from './comment.ts';",
    "/* export * from './block.ts' */",
    'const s = "import y from \'./string.ts\'";',
    "const r = /from '/; const q = 'from';",
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the text is a template literal on purpose
    "const u = `import z from './template.ts' ${'x'}`;",
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a template literal with a substitution, on purpose
    'const h = await import(`./dyn-${u}.ts`);',
    'const meta = import.meta.url; const o = { from: 1 }; o.from;',
    "export { i } from './i.ts';",
  ].join('\n');
  t.deepEqual(findImports(source), [
    { specifier: './a.ts', line: 1 },
    { specifier: '../b.ts', line: 4 },
    { specifier: './c.ts', line: 5 },
    { specifier: './d.ts', line: 6 },
    { specifier: './e.ts', line: 7 },
    { specifier: './f.ts', line: 8 },
    { specifier: './g.ts', line: 9 },
    { specifier: './i.ts', line: 17 },
  ]);
});

test('sidecar/ imports nothing else of the repository', (t) => {
  t.deepEqual(
    offenders((e) => within(e.from, 'sidecar') && e.to !== undefined && !within(e.to, 'sidecar')),
    [],
  );
});

test('controlplane/ and injector/ import only sidecar/config/ of sidecar/, and not bin/', (t) => {
  t.deepEqual(
    offenders(
      (e) =>
        (within(e.from, 'controlplane') || within(e.from, 'injector')) &&
        ((within(e.to, 'sidecar') && !within(e.to, 'sidecar/config')) || within(e.to, 'bin')),
    ),
    [],
  );
});

test('controlplane/ and injector/ do not import each other', (t) => {
  t.deepEqual(
    offenders(
      (e) =>
        (within(e.from, 'controlplane') && within(e.to, 'injector')) ||
        (within(e.from, 'injector') && within(e.to, 'controlplane')),
    ),
    [],
  );
});

test('only bin/ (and test/, bench/, conformance/) import controlplane/, injector/ and sidecar/ from outside them', (t) => {
  const parts = new Set(['controlplane', 'injector', 'sidecar']);
  const exempt = new Set(['bin', 'test', 'bench', 'conformance', ...parts]);
  t.deepEqual(
    offenders((e) => !exempt.has(partOf(e.from) ?? '') && parts.has(partOf(e.to) ?? '')),
    [],
  );
});

// Product code talks to Kubernetes through controlplane/k8s only; test code may read client-node's model metadata
// (test/chart validates rendered manifests with it).
test('@kubernetes/client-node is imported only under controlplane/k8s/ (and test/)', (t) => {
  t.deepEqual(
    offenders(
      (e) =>
        (e.specifier === '@kubernetes/client-node' || e.specifier.startsWith('@kubernetes/client-node/')) &&
        !within(e.from, 'controlplane/k8s') &&
        partOf(e.from) !== 'test',
    ),
    [],
  );
});
