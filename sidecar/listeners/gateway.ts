// Edge mode: one port of a Gateway. The Gateway's listeners on that port are told apart by
// host (SNI for the certificate, Host for the routes): exact name, then the longest wildcard,
// then the listener without hostname. An HTTPS request whose Host selects another listener
// than its SNI did is answered 421 (Misdirected Request), as the Gateway API requires.
import type { IncomingMessage } from 'node:http';
import { createSecureContext, type SecureContext, type TLSSocket } from 'node:tls';
import type { Listener, TlsCertificate } from '../config/proxy-config.ts';
import { ConfigCompileError, ProxyError, ProxyErrorCode } from '../errors.ts';
import { parseTarget } from '../http/request-target.ts';
import type { RoutedRequest } from '../http/routed-request.ts';
import { hostName } from '../router/host.ts';
import { normalizePath } from '../router/path.ts';
import type { CompiledRouteTable } from '../router/route-table.ts';

type GatewayListener = Extract<Listener, { kind: 'gateway' }>;

export interface GatewayHost {
  /** `namespace/gateway/listener`. */
  readonly listener: string;
  readonly hostname: string | undefined;
  readonly table: CompiledRouteTable;
  readonly context: SecureContext | undefined;
  /** The PEMs behind `context`, for Server#setSecureContext (which takes options, not a context). */
  readonly pems: { readonly cert: string[]; readonly key: string[] } | undefined;
}

export interface CompiledGatewayListener {
  readonly kind: 'gateway';
  readonly name: string;
  readonly port: number;
  readonly tls: boolean;
  readonly exact: ReadonlyMap<string, GatewayHost>;
  /** `.suffix` of `*.suffix` hostnames, longest first. */
  readonly wildcards: readonly { suffix: string; host: GatewayHost }[];
  readonly any: GatewayHost | undefined;
  /** Served to clients that send no SNI (or SNI matching no listener). */
  readonly defaultContext: SecureContext | undefined;
  readonly defaultPems: GatewayHost['pems'];
}

export function compileGatewayListener(
  l: GatewayListener,
  tables: ReadonlyMap<string, CompiledRouteTable>,
  certificates: Readonly<Record<string, TlsCertificate>>,
): CompiledGatewayListener {
  const tls = l.protocol === 'HTTPS';
  const exact = new Map<string, GatewayHost>();
  const wildcards: { suffix: string; host: GatewayHost }[] = [];
  let any: GatewayHost | undefined;
  let first: GatewayHost | undefined;
  for (const h of l.hosts) {
    const table = tables.get(h.routeTable);
    if (!table)
      throw new ConfigCompileError(`listener ${l.name}: route table ${JSON.stringify(h.routeTable)} does not exist`);
    let context: SecureContext | undefined;
    let pemPairs: GatewayHost['pems'];
    if (tls) {
      const pems = h.certificates.map((key) => {
        const pem = certificates[key];
        if (!pem) throw new ConfigCompileError(`listener ${l.name}: certificate ${JSON.stringify(key)} does not exist`);
        return pem;
      });
      if (pems.length === 0)
        throw new ConfigCompileError(`listener ${l.name} (${h.listener}): HTTPS without certificate`);
      pemPairs = { cert: pems.map((p) => p.certChain), key: pems.map((p) => p.privateKey) };
      try {
        // Several pairs (RSA and ECDSA) may serve one host; OpenSSL picks by the client's offer.
        context = createSecureContext(pemPairs);
      } catch (err) {
        throw new ConfigCompileError(`listener ${l.name} (${h.listener}): bad certificate: ${(err as Error).message}`, {
          cause: err,
        });
      }
    }
    const host: GatewayHost = { listener: h.listener, hostname: h.hostname, table, context, pems: pemPairs };
    first ??= host;
    const name = h.hostname?.toLowerCase();
    if (name === undefined) any ??= host;
    else if (name.startsWith('*.')) {
      if (!wildcards.some((w) => w.suffix === name.slice(1))) wildcards.push({ suffix: name.slice(1), host });
    } else if (!exact.has(name)) exact.set(name, host);
  }
  wildcards.sort((a, b) => b.suffix.length - a.suffix.length);
  return {
    kind: 'gateway',
    name: l.name,
    port: l.port,
    tls,
    exact,
    wildcards,
    any,
    defaultContext: (any ?? first)?.context,
    defaultPems: (any ?? first)?.pems,
  };
}

/** The Gateway listener serving a host name (lowercased, no port). */
export function selectGatewayHost(l: CompiledGatewayListener, name: string): GatewayHost | undefined {
  const exact = l.exact.get(name);
  if (exact) return exact;
  for (let i = 0; i < l.wildcards.length; i++) {
    const s = l.wildcards[i].suffix;
    if (name.length > s.length && name.endsWith(s)) return l.wildcards[i].host;
  }
  return l.any;
}

/** The certificate for an SNI name; the default one when no listener claims the name. */
export function sniContext(l: CompiledGatewayListener, servername: string): SecureContext | undefined {
  return selectGatewayHost(l, servername.toLowerCase())?.context ?? l.defaultContext;
}

/** The routing input of a request on a Gateway port, or the error to answer it with. */
export function resolveGateway(l: CompiledGatewayListener, req: IncomingMessage): RoutedRequest | ProxyError {
  const target = parseTarget(req.url!);
  if (target === undefined) return new ProxyError(ProxyErrorCode.BadRequest, 400, 'unsupported request target');
  const authority = target.authority ?? req.headers.host;
  if (authority === undefined) return new ProxyError(ProxyErrorCode.BadRequest, 400, 'no Host');
  const host = hostName(authority);
  const selected = selectGatewayHost(l, host);
  // A Host no listener serves is a 404 whatever the SNI (GEP-3567); one another listener serves is
  // a connection reused across listeners (HTTP/2 coalescing): 421, the client retries on a new one.
  if (l.tls && selected !== undefined) {
    const sni = (req.socket as TLSSocket).servername;
    if (typeof sni === 'string' && sni !== '' && selectGatewayHost(l, sni.toLowerCase()) !== selected) {
      return new ProxyError(ProxyErrorCode.Misdirected, 421, `Host ${host} is not served under SNI ${sni}`);
    }
  }
  if (selected === undefined) return new ProxyError(ProxyErrorCode.NoRoute, 404, `no listener for host ${host}`);
  const path = normalizePath(target.path);
  if (path === null) return new ProxyError(ProxyErrorCode.BadPath, 400, 'path cannot be normalised safely');
  const scheme = l.tls ? 'https' : 'http';
  const forwardedFor = req.headers['x-forwarded-for'];
  const client = req.socket.remoteAddress ?? '';
  return {
    table: selected.table,
    scheme,
    listenerPort: l.port,
    host,
    authority,
    path,
    query: target.query,
    parent: selected.listener,
    extraHeaders: {
      'x-forwarded-proto': scheme,
      'x-forwarded-for': forwardedFor === undefined ? client : `${forwardedFor}, ${client}`,
    },
  };
}
