// `npm run conformance -- [--cases DIR] [--profile MESH-HTTP|GATEWAY-HTTP] [--test NAME]… [--report FILE]`:
// replays a conformance vectors directory (default ../shared/conformance) against weft local worlds and prints one
// line per test (PASS, FAIL: first mismatch, SKIP: unsupported feature X), a summary per profile, and writes the
// upstream-format report (default docs/conformance/report.yaml for a whole run of the default directory).
// Exit status 1 when a test failed, 2 on bad arguments.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { type CaseFile, inProfile, loadCaseFiles, PROFILES, type Profile } from './case-file.ts';
import { LocalWorld } from './local-world.ts';
import { conformanceReport, profileReport, reportYaml, summaryLine } from './report.ts';
import { CONFORMANCE_DIR, DEFAULT_SUITE_OPTIONS } from './suite-setup.ts';
import { runSuite, type TestResult } from './suite.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const DEFAULT_REPORT = path.join(root, 'docs/conformance/report.yaml');

const USAGE = `usage: npm run conformance -- [--cases DIR] [--profile MESH-HTTP|GATEWAY-HTTP] [--test NAME]... [--report FILE] [--loopback] [--known-failures FILE]`;

function parse(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      cases: { type: 'string' },
      profile: { type: 'string' },
      test: { type: 'string', multiple: true },
      report: { type: 'string' },
      loopback: { type: 'boolean' },
      'known-failures': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  return values;
}

/** conformance/known-failures.json: test → why it fails now (each one is in docs/conformance.md too). */
type KnownFailures = Record<string, string>;

function line(r: TestResult, known: KnownFailures): string {
  const secs = `(${(r.ms / 1000).toFixed(1)} s)`;
  if (r.outcome === 'PASS')
    return `PASS ${r.test} ${secs}${known[r.test] ? ' — listed as a known failure: remove it from the list' : ''}`;
  if (r.outcome === 'SKIP') return `SKIP ${r.test}: ${r.message}`;
  return `FAIL ${r.test}: ${r.message} ${secs}${known[r.test] ? ` [known: ${known[r.test]}]` : ''}`;
}

export async function main(argv: string[]): Promise<number> {
  let args: ReturnType<typeof parse>;
  try {
    args = parse(argv);
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const dir = path.resolve(args.cases ?? CONFORMANCE_DIR);
  const profile = args.profile as Profile | undefined;
  if (profile && !PROFILES.includes(profile)) {
    process.stderr.write(`--profile must be one of ${PROFILES.join(', ')}\n`);
    return 2;
  }
  // Bad input (a missing directory, an unreadable case or known-failures file) is a usage error with its cause, not
  // a stack trace; a directory without a single case file would otherwise "pass" with 0 tests.
  let files: CaseFile[];
  let known: KnownFailures;
  try {
    files = loadCaseFiles(dir);
    known = args['known-failures'] ? (JSON.parse(await readFile(args['known-failures'], 'utf8')) as KnownFailures) : {};
  } catch (e) {
    process.stderr.write(`conformance: ${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (files.length === 0) {
    process.stderr.write(`conformance: no case files in ${path.join(dir, 'cases')}/*/\n`);
    return 2;
  }
  if (profile) files = files.filter((f) => inProfile(f, profile));
  else files = files.filter((f) => PROFILES.some((p) => inProfile(f, p)));
  if (args.test?.length) {
    const unknown = args.test.filter((t) => !files.some((f) => f.test === t));
    if (unknown.length > 0) {
      process.stderr.write(`no such test in ${dir}${profile ? ` (${profile})` : ''}: ${unknown.join(', ')}\n`);
      return 2;
    }
    files = files.filter((f) => args.test!.includes(f.test));
  }
  const root0 = process.getuid?.() === 0;
  const started = Date.now();
  const out = (s: string) => process.stdout.write(`${s}\n`);
  out(
    `conformance: ${files.length} tests from ${dir} (${root0 ? 'root: Gateway ports as they are' : 'not root: ports below 1024 moved up by 20000'})`,
  );
  const results = await runSuite({
    files,
    conformanceDir: dir,
    startWorld: async (family, objects) => {
      const options = {
        suite: { ...DEFAULT_SUITE_OPTIONS, conformanceDir: dir },
        portOffset: root0 ? 0 : 20_000,
        runLabel: 'runner',
        log: (l: string) => out(`  ${l}`),
      };
      // Mesh tests from inside the client pod's network namespace, captured as an unmodified workload's requests
      // are; Gateway tests reach the Gateway's address on loopback, which suffices for them.
      if (family === 'mesh' && root0 && !args.loopback) {
        try {
          return await LocalWorld.start({ ...options, netns: { prefix: 'wconf-', cidr: '10.231.0.0/16' } }, objects);
        } catch (e) {
          out(`# mesh world: network namespaces failed (${(e as Error).message}); on loopback instead`);
        }
      }
      return LocalWorld.start(options, objects);
    },
    onResult: (r) => out(line(r, known)),
    log: (l) => out(`# ${l}`),
  });

  out('');
  const profiles = profile ? [profile] : [...PROFILES];
  for (const p of profiles) {
    const r = profileReport(p, files, results);
    if (r) out(summaryLine(r));
  }
  const skipped = results.filter((r) => r.outcome === 'SKIP').length;
  const failed = results.filter((r) => r.outcome === 'FAIL');
  const passed = results.filter((r) => r.outcome === 'PASS').length;
  out(
    `conformance: ${passed} passed, ${failed.length} failed, ${skipped} skipped in ${((Date.now() - started) / 1000).toFixed(0)} s`,
  );

  const whole = !args.test?.length && !profile && dir === path.resolve(CONFORMANCE_DIR);
  const reportFile = args.report ?? (whole ? DEFAULT_REPORT : undefined);
  if (reportFile) {
    const index = JSON.parse(await readFile(path.join(dir, 'index.json'), 'utf8').catch(() => '{}')) as {
      source?: { commit?: string };
    };
    const pkg = JSON.parse(await readFile(path.join(root, 'package.json'), 'utf8')) as { version: string };
    const report = conformanceReport(profiles, files, results, {
      version: pkg.version,
      gatewayAPIVersion: index.source?.commit ? `main@${index.source.commit.slice(0, 12)}` : 'unknown',
    });
    await mkdir(path.dirname(reportFile), { recursive: true });
    await writeFile(reportFile, reportYaml(report));
    out(`report: ${path.relative(process.cwd(), reportFile) || reportFile}`);
  }
  // With a known-failures list, what decides the exit status is a failure not on it, or an entry that now passes.
  const unexpected = failed.filter((r) => !known[r.test]);
  const stale = results.filter((r) => r.outcome === 'PASS' && known[r.test]);
  if (Object.keys(known).length > 0)
    out(
      `conformance: ${failed.length - unexpected.length} known failure(s), ${unexpected.length} unexpected, ${stale.length} known failure(s) now passing`,
    );
  return unexpected.length > 0 || stale.length > 0 ? 1 : 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
      process.stderr.write(`conformance: ${(e as Error).stack ?? e}\n`);
      process.exit(2);
    },
  );
}
