// docs/performance.md is written by several benchmarks (run.ts, translate.ts, tracing.ts), each owning one
// `## <heading>` section: a run replaces its own section and keeps everyone else's.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PERFORMANCE_DOC = join(resolve(dirname(fileURLToPath(import.meta.url)), '../..'), 'docs/performance.md');

/**
 * Replaces the `## heading` section of docs/performance.md (up to the next `## `) with `text`, keeping the rest. A
 * missing section goes before the `## before` section when there is one, else at the end. Returns the file written.
 */
export function writeDocSection(heading: string, text: string, before?: string): string {
  let doc = existsSync(PERFORMANCE_DOC)
    ? readFileSync(PERFORMANCE_DOC, 'utf8')
    : '# Performance\n\nFigures measured by the benchmarks in bench/, each section written by its own script.\n';
  const section = `${text.trimEnd()}\n`;
  const at = (h: string) => doc.search(new RegExp(`^## ${h}\\s*$`, 'm'));
  const start = at(heading);
  if (start >= 0) {
    const next = doc.slice(start + 1).search(/^## /m);
    const end = next < 0 ? doc.length : start + 1 + next;
    doc = `${doc.slice(0, start)}${section}${end < doc.length ? `\n${doc.slice(end)}` : ''}`;
  } else {
    const later = before === undefined ? -1 : at(before);
    doc = later >= 0 ? `${doc.slice(0, later)}${section}\n${doc.slice(later)}` : `${doc.trimEnd()}\n\n${section}`;
  }
  writeFileSync(PERFORMANCE_DOC, doc);
  return PERFORMANCE_DOC;
}
