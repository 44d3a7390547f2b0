// What each part of the proxy's footprint costs: a child of bench/run.ts that imports one
// module (an npm package the proxy loads, or sidecar/proxy.ts itself), lets it settle, forces
// GCs and tells its resident set size. Compared with a process that imports nothing, it shows
// where an idle proxy's RSS goes. Usage: node --expose-gc bench/proxy-module-rss.ts [specifier]
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { reportFailures, tell } from './lib/child.ts';

reportFailures();
const specifier = process.argv[2];
if (specifier) await import(specifier.startsWith('.') ? new URL(specifier, import.meta.url).href : specifier);
const gc = (globalThis as { gc?: () => void }).gc;
for (let i = 0; i < 3; i++) {
  gc?.();
  await sleep(200);
}
const rss = Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0) * 1024;
tell({ type: 'result', rss, heapUsed: process.memoryUsage().heapUsed }, () => process.exit(0));
