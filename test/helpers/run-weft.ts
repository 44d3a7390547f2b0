// Runs the `weft` command as a user would (a child process on bin/weft.ts), and finds a port nothing listens on.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';

const WEFT = new URL('../../bin/weft.ts', import.meta.url).pathname;

export interface WeftRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `weft ...args` to completion. Asynchronous, so servers of the calling test keep answering it. */
export function runWeft(args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<WeftRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [WEFT, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => {
      stdout += c;
    });
    child.stderr.on('data', (c) => {
      stderr += c;
    });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A loopback port nothing listens on (bound, then closed): connections to it are refused. */
export async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as { port: number };
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}
