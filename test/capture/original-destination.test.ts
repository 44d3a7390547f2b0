// The original-destination lookup around the optional addon: on sockets of a real loopback connection (never
// redirected, so no original destination), with the addon missing (a loader that fails as an unbuilt addon's
// require does), and the addon's own argument checks.
import { openSync, closeSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import test from 'ava';
import {
  createOriginalDestinationLookup,
  originalDstAddon,
  readOriginalDestination,
} from '../../sidecar/capture/original-destination.ts';

async function connectedPair(): Promise<{ server: Server; accepted: Socket; client: Socket }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
  const client = connect((server.address() as { port: number }).port, '127.0.0.1');
  return { server, accepted: await accepted, client };
}

function closePair(p: { server: Server; accepted: Socket; client: Socket }): Promise<void> {
  p.client.destroy();
  p.accepted.destroy();
  return new Promise((resolve) => p.server.close(() => resolve()));
}

const warnings = () => {
  const seen: unknown[][] = [];
  return { seen, logger: { warn: (...a: unknown[]) => seen.push(a), debug: () => {} } };
};

test('without the addon the lookup answers undefined (Host decides) and says so once', async (t) => {
  const p = await connectedPair();
  t.teardown(() => closePair(p));
  const { seen, logger } = warnings();
  const lookup = createOriginalDestinationLookup({
    logger,
    load: () => {
      throw new Error("Cannot find module 'weft-orig-dst'\nRequire stack: …");
    },
  });
  t.is(lookup(p.accepted), undefined);
  t.is(lookup(p.accepted), undefined);
  t.is(lookup(p.client), undefined);
  t.is(seen.length, 1);
  t.like(seen[0][0] as object, { package: 'weft-orig-dst', reason: "Cannot find module 'weft-orig-dst'" });
});

const addon = originalDstAddon();
// Without the addon (its build is optional) these have nothing to look at: skipped, and the title says why.
const addonTest = addon.available ? test : test.skip;
const unbuilt = addon.available ? '' : ` — skipped: weft-orig-dst not built (${addon.reason})`;

addonTest(`a connection that was not redirected has no original destination${unbuilt}`, async (t) => {
  if (!addon.available) return;
  const p = await connectedPair();
  t.teardown(() => closePair(p));
  const fd = (p.accepted as unknown as { _handle: { fd: number } })._handle.fd;
  // The kernel answers with the socket's own address, or nothing when conntrack does not track it.
  const raw = addon.get(fd);
  if (raw !== null) t.deepEqual(raw, { address: '127.0.0.1', port: p.accepted.localPort, family: 'IPv4' });
  t.is(readOriginalDestination(p.accepted), null);
  const { seen, logger } = warnings();
  const lookup = createOriginalDestinationLookup({ logger });
  t.is(lookup(p.accepted), undefined);
  t.is(seen.length, 0);
});

addonTest(`the addon checks its argument: a number, an open socket${unbuilt}`, (t) => {
  if (!addon.available) return;
  const get = addon.get as unknown as (fd: unknown) => unknown;
  t.throws(() => get('3'), { instanceOf: TypeError, code: 'WEFT_ERR_ORIG_DST_ARG' });
  t.throws(() => get(-1), { instanceOf: RangeError, code: 'WEFT_ERR_ORIG_DST_ARG' });
  const file = openSync(new URL(import.meta.url), 'r');
  t.teardown(() => closeSync(file));
  t.throws(() => get(file), { code: 'WEFT_ERR_ORIG_DST_FD' });
});

test('a socket without a descriptor (closed) gives null, not an exception', async (t) => {
  const p = await connectedPair();
  await closePair(p);
  t.is(
    readOriginalDestination(p.accepted, () => ({ address: '10.0.0.1', port: 1, family: 'IPv4' })),
    null,
  );
});
