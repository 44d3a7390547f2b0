// Workload credentials from files (`weft proxy --cert FILE --key FILE --roots FILE`), for proxies whose certificate
// is issued by something else (cert-manager, a mounted Secret). The files are checked together before use — the
// chain verifies up to the roots, the key matches the leaf, the leaf carries one SPIFFE ID and is valid now — and
// read again when they change (and every `pollIntervalMs`, for volume updates a watcher can miss). A set that does
// not check out is logged and ignored: the previous credentials stay until their own notAfter.
import { EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { watch, type FSWatcher } from 'chokidar';
import type { Logger } from 'pino';
import { spiffeIdOf } from '../identity/peer.ts';
import { verifyWorkloadCertificate } from '../identity/verify.ts';
import type { IdentitySource, MeshCredentials } from './mtls.ts';

export interface FileIdentityOptions {
  certFile: string;
  keyFile: string;
  rootsFile: string;
  log?: Logger;
  /** Re-read this often even without a change event; 0 turns it off. Default 60 s. */
  pollIntervalMs?: number;
  /** Milliseconds since the epoch (tests). */
  now?: () => number;
}

export interface FileCredentials extends MeshCredentials {
  spiffeId: string;
  serialNumber: string;
  notBefore: Date;
  notAfter: Date;
}

/** Reads and checks the three files; throws (with the file at fault in the message) when they do not fit. */
export async function readCredentialFiles(
  o: Pick<FileIdentityOptions, 'certFile' | 'keyFile' | 'rootsFile' | 'now'>,
): Promise<FileCredentials> {
  const read = (file: string) =>
    readFile(file, 'utf8').catch((err: Error) => {
      throw new Error(`cannot read ${file}: ${err.message}`);
    });
  const [certChain, key, rootCAs] = await Promise.all([read(o.certFile), read(o.keyFile), read(o.rootsFile)]);
  let privateKey: ReturnType<typeof createPrivateKey>;
  let leaf: X509Certificate;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new Error(`${o.keyFile}: not a private key: ${(err as Error).message}`);
  }
  try {
    leaf = new X509Certificate(certChain);
  } catch (err) {
    throw new Error(`${o.certFile}: not a certificate: ${(err as Error).message}`);
  }
  const spiffeId = spiffeIdOf(leaf);
  if (spiffeId === undefined) throw new Error(`${o.certFile}: the leaf carries no single SPIFFE ID`);
  try {
    const verified = verifyWorkloadCertificate({
      certChainPem: certChain,
      rootCAsPem: rootCAs,
      trustAnchorsPem: rootCAs,
      privateKey,
      spiffeId,
      now: (o.now ?? Date.now)(),
    });
    return {
      key,
      certChain,
      rootCAs,
      spiffeId,
      serialNumber: verified.serialNumber,
      notBefore: verified.notBefore,
      notAfter: verified.notAfter,
    };
  } catch (err) {
    throw new Error(`${o.certFile} with ${o.keyFile} and ${o.rootsFile}: ${(err as Error).message}`);
  }
}

/** An IdentitySource on three PEM files; emits `change` when a re-read yields new, valid credentials. */
export class FileIdentitySource extends EventEmitter implements IdentitySource {
  readonly #o: FileIdentityOptions;
  #creds: FileCredentials;
  #watcher: FSWatcher | undefined;
  #poll: NodeJS.Timeout | undefined;
  #reading: Promise<boolean> | undefined;
  #again = false;

  private constructor(o: FileIdentityOptions, creds: FileCredentials) {
    super();
    this.#o = o;
    this.#creds = creds;
  }

  /** Reads the files (rejecting when they do not check out) and starts watching them. */
  static async open(o: FileIdentityOptions): Promise<FileIdentitySource> {
    const source = new FileIdentitySource(o, await readCredentialFiles(o));
    source.#watch();
    return source;
  }

  current(): FileCredentials | undefined {
    const now = (this.#o.now ?? Date.now)();
    return this.#creds.notAfter.getTime() > now ? this.#creds : undefined;
  }

  /** Reads the files now; resolves true when new credentials were taken. Overlapping calls coalesce. */
  reload(): Promise<boolean> {
    if (this.#reading) {
      this.#again = true;
      return this.#reading;
    }
    this.#reading = (async () => {
      let changed = false;
      do {
        this.#again = false;
        changed = (await this.#readOnce()) || changed;
      } while (this.#again);
      this.#reading = undefined;
      return changed;
    })();
    return this.#reading;
  }

  async #readOnce(): Promise<boolean> {
    let next: FileCredentials;
    try {
      next = await readCredentialFiles(this.#o);
    } catch (err) {
      this.#o.log?.error({ err }, 'workload credential files refused; keeping the previous certificate');
      return false;
    }
    const prev = this.#creds;
    if (next.certChain === prev.certChain && next.key === prev.key && next.rootCAs === prev.rootCAs) return false;
    this.#creds = next;
    this.#o.log?.info(
      { spiffeId: next.spiffeId, serial: next.serialNumber, notAfter: next.notAfter },
      'workload certificate reloaded from files',
    );
    this.emit('change', next);
    return true;
  }

  #watch(): void {
    const { certFile, keyFile, rootsFile } = this.#o;
    // Files are often replaced by rename (kubectl cp, editors): watch adds as well as changes, after writes settle.
    this.#watcher = watch([certFile, keyFile, rootsFile], {
      ignoreInitial: true,
      awaitWriteFinish: { stabilityThreshold: 100, pollInterval: 25 },
    });
    const onEvent = () => void this.reload();
    this.#watcher.on('change', onEvent);
    this.#watcher.on('add', onEvent);
    this.#watcher.on('error', (err) => this.#o.log?.error({ err }, 'credential file watch failed'));
    const every = this.#o.pollIntervalMs ?? 60_000;
    if (every > 0) {
      this.#poll = setInterval(onEvent, every);
      this.#poll.unref();
    }
  }

  async close(): Promise<void> {
    clearInterval(this.#poll);
    await this.#watcher?.close();
    await this.#reading;
  }
}
