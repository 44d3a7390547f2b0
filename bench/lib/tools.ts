// The benchmark's outside tools: nginx (the reference reverse proxy) and wrk (the saturation load
// generator), installed from Debian when missing and this process is root; without them the
// run goes on with autocannon and without the nginx baseline, and says so.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export interface Tools {
  nginx: { path: string; version: string } | undefined;
  wrk: { path: string; version: string; hasRate: boolean } | undefined;
  notes: string[];
}

function find(name: string): string | undefined {
  for (const dir of ['/usr/sbin', '/usr/bin', '/usr/local/sbin', '/usr/local/bin', '/sbin', '/bin']) {
    if (existsSync(`${dir}/${name}`)) return `${dir}/${name}`;
  }
  const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() ? r.stdout.trim() : undefined;
}

function aptInstall(packages: string[], notes: string[]): void {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () =>
    spawnSync('apt-get', ['install', '-y', '--no-install-recommends', ...packages], {
      env,
      encoding: 'utf8',
      timeout: 300_000,
    });
  process.stderr.write(`installing ${packages.join(' ')} with apt-get…\n`);
  let r = install();
  if (r.status !== 0) {
    // A fresh machine may have no package lists yet.
    spawnSync('apt-get', ['update'], { env, stdio: 'ignore', timeout: 300_000 });
    r = install();
  }
  if (r.status === 0) notes.push(`installed ${packages.join(' ')} from Debian (apt-get install -y)`);
  else notes.push(`apt-get install ${packages.join(' ')} failed: ${(r.stderr ?? '').trim().split('\n').pop()}`);
}

export function ensureTools(): Tools {
  const notes: string[] = [];
  const missing = ['nginx', 'wrk'].filter((t) => find(t) === undefined);
  if (missing.length > 0) {
    const root = process.getuid?.() === 0;
    if (root && find('apt-get')) aptInstall(missing, notes);
    else notes.push(`${missing.join(' and ')} missing and not root: not installed`);
  }
  const nginxPath = find('nginx');
  let nginx: Tools['nginx'];
  if (nginxPath) {
    const v = spawnSync(nginxPath, ['-v'], { encoding: 'utf8' });
    nginx = { path: nginxPath, version: (v.stderr || v.stdout).trim().replace(/^nginx version:\s*/, '') };
  } else notes.push('nginx unavailable: the nginx baseline and the ratios to it are skipped');
  const wrkPath = find('wrk');
  let wrk: Tools['wrk'];
  if (wrkPath) {
    const v = spawnSync(wrkPath, ['-v'], { encoding: 'utf8' });
    const text = `${v.stdout}${v.stderr}`;
    const version = /wrk (\S+)/.exec(text)?.[1] ?? 'unknown';
    // wrk2 has -R/--rate (constant rate); wg/wrk, which Debian ships, has not.
    const hasRate = /--rate/.test(text);
    wrk = { path: wrkPath, version, hasRate };
  } else notes.push('wrk unavailable: saturation is measured with autocannon');
  return { nginx, wrk, notes };
}
