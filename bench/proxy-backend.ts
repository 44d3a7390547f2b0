// The benchmark's backend, run as a child of bench/run.ts: node:http answering every request
// with the same small body, keep-alive, nothing else. Tells its port over IPC.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { reportFailures, tell } from './lib/child.ts';

reportFailures();
const body = Buffer.from('hello from the weft bench backend\n');
const server = createServer((req, res) => {
  req.resume();
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
  res.end(body);
});
// Pools of the proxies under test must not be cut between phases.
server.keepAliveTimeout = 120_000;
server.headersTimeout = 130_000;
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  tell({ type: 'ready', port: (server.address() as AddressInfo).port });
});
process.on('message', (m: { type: string }) => {
  if (m.type !== 'stop') return;
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
