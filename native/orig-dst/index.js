// Loads the built addon. Throws (MODULE_NOT_FOUND, or the dlopen error) when it was not built: the install step is
// optional, and weft's wrapper (sidecar/capture/original-destination.ts) catches this and falls back to Host.
const { join } = require('node:path');

const addon = require(join(__dirname, 'build', 'Release', 'orig_dst.node'));

/**
 * Where a REDIRECTed TCP connection was going: `{ address, port, family: 'IPv4' | 'IPv6' }`, or null when the
 * kernel has no answer. For a connection that was not redirected the answer is the socket's own local address.
 * @param {number} fd a connected TCP socket's file descriptor (Node: `socket._handle.fd`)
 * @returns {{ address: string, port: number, family: 'IPv4' | 'IPv6' } | null}
 */
exports.getOriginalDst = addon.getOriginalDst;
