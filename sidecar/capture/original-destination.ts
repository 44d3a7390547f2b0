// Where a captured outbound connection was going before iptables REDIRECTed it to the proxy: SO_ORIGINAL_DST,
// read by the optional native addon `weft-orig-dst` (native/orig-dst, built at install). The addon is loaded on
// first use; when it is missing the lookup answers undefined, so the outbound listener falls back to the Host
// header, and says so once in the log.
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { OriginalDestination, OriginalDestinationLookup } from '../listeners/outbound.ts';

export interface OriginalDst extends OriginalDestination {
  family: 'IPv4' | 'IPv6';
}

/** The addon's one function: SO_ORIGINAL_DST, then IP6T_SO_ORIGINAL_DST, of a connected TCP socket. */
export type GetOriginalDst = (fd: number) => OriginalDst | null;

/** The optional dependency that carries the addon. */
export const ORIG_DST_PACKAGE = 'weft-orig-dst';

export type AddonState = { available: true; get: GetOriginalDst } | { available: false; reason: string };

let addon: AddonState | undefined;

function requireAddon(): GetOriginalDst {
  const mod = createRequire(import.meta.url)(ORIG_DST_PACKAGE) as { getOriginalDst?: unknown };
  if (typeof mod.getOriginalDst !== 'function') throw new Error(`${ORIG_DST_PACKAGE} has no getOriginalDst`);
  return mod.getOriginalDst as GetOriginalDst;
}

function loadWith(load: () => GetOriginalDst): AddonState {
  try {
    return { available: true, get: load() };
  } catch (err) {
    // A require error's first line names the missing file; the rest is the require stack.
    return { available: false, reason: String((err as Error)?.message ?? err).split('\n')[0] };
  }
}

/** The addon, loaded once per process. */
export function originalDstAddon(): AddonState {
  addon ??= loadWith(requireAddon);
  return addon;
}

/** The socket's file descriptor, where Node exposes it (TCP sockets on Unix). */
function socketFd(socket: Socket): number | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } | null })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

const unmapped = (address: string | undefined) => address?.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');

/**
 * The original destination of a redirected connection; null when the addon is unavailable, the socket has no
 * descriptor, the kernel has no answer, or the answer is the socket's own local address (the connection reached
 * the listener directly, not through a REDIRECT).
 */
export function readOriginalDestination(socket: Socket, get?: GetOriginalDst): OriginalDst | null {
  let getter = get;
  if (getter === undefined) {
    const state = originalDstAddon();
    if (!state.available) return null;
    getter = state.get;
  }
  const fd = socketFd(socket);
  if (fd === undefined) return null;
  let dst: OriginalDst | null;
  try {
    dst = getter(fd);
  } catch {
    return null; // the socket closed under us (EBADF): nothing to route anyway
  }
  if (dst === null) return null;
  if (dst.port === socket.localPort && unmapped(dst.address) === unmapped(socket.localAddress)) return null;
  return dst;
}

export interface OriginalDestinationLookupOptions {
  /** Told once, on first use, when the addon is unavailable. */
  logger?: Pick<Logger, 'warn' | 'debug'>;
  /** Loads the addon's function; default: require `weft-orig-dst`. (Tests: a loader that throws, as if unbuilt.) */
  load?: () => GetOriginalDst;
}

/**
 * The `originalDestination` hook of `startProxy` for sidecar mode: SO_ORIGINAL_DST per connection, cached per
 * socket (keep-alive requests ask again), undefined when unavailable so the Host header decides.
 */
export function createOriginalDestinationLookup(
  options: OriginalDestinationLookupOptions = {},
): OriginalDestinationLookup {
  const cache = new WeakMap<Socket, OriginalDst | null>();
  let state: AddonState | undefined;
  return (socket) => {
    if (state === undefined) {
      state = options.load ? loadWith(options.load) : originalDstAddon();
      if (state.available) options.logger?.debug('original destinations read with SO_ORIGINAL_DST');
      else {
        options.logger?.warn(
          { package: ORIG_DST_PACKAGE, reason: state.reason },
          'SO_ORIGINAL_DST unavailable (native addon not built): outbound destinations come from the Host header',
        );
      }
    }
    if (!state.available) return undefined;
    let dst = cache.get(socket);
    if (dst === undefined) {
      dst = readOriginalDestination(socket, state.get);
      cache.set(socket, dst);
    }
    return dst ?? undefined;
  };
}
