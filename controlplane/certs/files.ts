// Files holding CA secrets (the root key, the bootstrap-token key): created once, never overwritten, private.
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { link, stat, unlink, writeFile } from 'node:fs/promises';
import { CaSetupError } from './errors.ts';

/** Writes `path` only if it does not exist yet, atomically (temp file + hard link), with `mode`. EEXIST if it does. */
export async function writeNew(path: string, content: string, mode: number): Promise<void> {
  const temp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(temp, content, { mode, flag: fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_WRONLY });
  try {
    await link(temp, path);
  } finally {
    await unlink(temp);
  }
}

export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** Refuses a secret file that group or others may read (as ssh does with private keys). */
export async function checkPrivateMode(path: string): Promise<void> {
  const mode = (await stat(path)).mode;
  if ((mode & 0o077) !== 0) {
    throw new CaSetupError(
      'WEFT_ERR_CA_KEY_PERMISSIONS',
      `${path} is readable by group or others (mode ${(mode & 0o777).toString(8)}); chmod 600 it`,
    );
  }
}
