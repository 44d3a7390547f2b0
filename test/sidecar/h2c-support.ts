// Shared by the h2c tests: a cleartext HTTP/2 backend that records its sessions and streams, and a proxy config
// whose one route sends everything to an h2c cluster of such backends. Not a test file.
import { createHash } from 'node:crypto';
import {
  createServer as createH2Server,
  type Http2Server,
  type IncomingHttpHeaders,
  type ServerHttp2Session,
  type ServerHttp2Stream,
  type Settings,
} from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { ExecutionContext } from 'ava';
import { type ClusterInput, edgeConfig, type RouteInput, route, to } from './harness.ts';

export interface SeenStream {
  headers: IncomingHttpHeaders;
  /** Raw header pairs as they arrived (a repeated field stays two entries). */
  raw: string[];
  stream: ServerHttp2Stream;
  session: ServerHttp2Session;
}

export interface H2Backend {
  server: Http2Server;
  port: number;
  sessions: ServerHttp2Session[];
  streams: SeenStream[];
}

export type StreamHandler = (s: SeenStream) => void;

/** sha256 of a body, hex. */
export const digest = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/**
 * Answers `/echo…` with JSON of what arrived (pseudo-headers included, body length and digest) unless `handler`
 * takes the stream (it returns true when it did).
 */
export async function h2Backend(
  t: ExecutionContext,
  handler?: (s: SeenStream) => boolean,
  settings?: Settings,
): Promise<H2Backend> {
  const sessions: ServerHttp2Session[] = [];
  const streams: SeenStream[] = [];
  const server = createH2Server({ settings });
  server.on('session', (session) => {
    sessions.push(session);
    session.on('error', () => {});
  });
  server.on('stream', (stream, headers, _flags, raw) => {
    stream.on('error', () => {});
    const seen = { headers, raw, stream, session: stream.session as ServerHttp2Session };
    streams.push(seen);
    if (handler?.(seen)) return;
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      const body = Buffer.concat(chunks);
      if (stream.closed) return;
      stream.respond({ ':status': 200, 'content-type': 'application/json', 'set-cookie': ['a=1', 'b=2'] });
      stream.end(JSON.stringify({ headers, raw, length: body.length, digest: digest(body) }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(
    () =>
      new Promise<void>((r) => {
        for (const s of sessions) s.destroy();
        server.close(() => r());
      }),
  );
  return { server, port: (server.address() as AddressInfo).port, sessions, streams };
}

/** An h2c cluster `ns/h2` of backends on these ports. */
export function h2Cluster(...ports: number[]): ClusterInput {
  return {
    service: 'ns/h2',
    port: 8081,
    protocol: 'h2c',
    endpoints: ports.map((port, i) => ({ address: '127.0.0.1', port, pod: `ns/h2-${i}` })),
  };
}

/** An edge config whose one route (plus `extra`) sends everything to `clusters['ns/h2']`. */
export function h2Config(clusters: Record<string, ClusterInput>, extra: Partial<RouteInput> = {}) {
  return edgeConfig({ clusters, routes: [route({ backends: to('ns/h2'), ...extra })] });
}
