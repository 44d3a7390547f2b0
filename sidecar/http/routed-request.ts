// A request on a listener with a route table (gateway, outbound): match, then the rule's
// filters in Gateway API order, then the chosen backend's. The outcome is a decision — an
// answer the proxy gives itself or a plan for the exchange — so plain requests and WebSocket
// upgrades share every routing rule.
import type { IncomingMessage } from 'node:http';
import { ProxyError, ProxyErrorCode } from '../errors.ts';
import type { CompiledFilters } from '../filters/compiled-filters.ts';
import { isPreflight, preflightHeaders } from '../filters/cors.ts';
import { applyHeaderModifier, type HeaderMap } from '../filters/header-modifier.ts';
import { modifyPath } from '../filters/path-modifier.ts';
import { redirectLocation } from '../filters/redirect.ts';
import type { RouteLabels } from '../metrics.ts';
import type { RequestFacts } from '../router/request-facts.ts';
import type { CompiledRoute, CompiledRouteTable } from '../router/route-table.ts';
import { pickWeighted } from '../upstream/balancer.ts';
import type { ExchangePlan } from './exchange.ts';
import { upstreamRequestHeaders } from './hygiene.ts';

export interface RoutedRequest {
  table: CompiledRouteTable;
  scheme: 'http' | 'https';
  /** Port for redirects that keep the request's port: the listener's (edge) or the Service's (mesh). */
  listenerPort: number;
  /** Host name, lowercased, without port. */
  host: string;
  /** The Host value sent upstream unless a rewrite replaces it. */
  authority: string;
  /** Normalised path. */
  path: string;
  /** Query string without `?`. */
  query: string;
  /** Headers the listener adds (x-forwarded-*). */
  extraHeaders: HeaderMap | undefined;
  /** What the route is attached through, for traces: the Gateway listener (`ns/gateway/listener`) or Service. */
  parent?: string;
}

/** An answer the proxy gives itself (redirect, preflight, directResponse). */
export interface LocalAnswer {
  readonly kind: 'local';
  readonly status: number;
  readonly headers: HeaderMap | undefined;
  readonly body: string;
}

export type Decision = ProxyError | LocalAnswer | ExchangePlan;

/**
 * Where decideRouted leaves the metric labels of the route and backend it took (undefined when
 * no route matched), so the answer, whichever it is, is counted under them.
 */
export interface DecisionLabels {
  labels: RouteLabels | undefined;
  /** The request's RoutedRequest.parent (traces). */
  parent?: string;
}

function redirect(route: CompiledRoute, filters: CompiledFilters, r: RoutedRequest): LocalAnswer {
  const location = redirectLocation(filters.redirect!, {
    scheme: r.scheme,
    host: r.host,
    listenerPort: r.listenerPort,
    path: r.path,
    query: r.query === '' ? '' : `?${r.query}`,
    prefix: route.prefix,
  });
  return { kind: 'local', status: filters.redirect!.statusCode, headers: { location }, body: '' };
}

export function decideRouted(req: IncomingMessage, r: RoutedRequest, out?: DecisionLabels): Decision {
  const method = req.method!;
  const facts: RequestFacts = { method, path: r.path, query: r.query, rawHeaders: req.rawHeaders };
  const route = r.table.match(r.host, facts);
  if (route === undefined) {
    return new ProxyError(ProxyErrorCode.NoRoute, r.table.noMatchStatus, `no route for ${r.host}${r.path}`);
  }
  if (out !== undefined) {
    out.labels = route.labels;
    out.parent = r.parent;
  }
  const filters = route.filters;
  if (filters?.cors) {
    const origin = req.headers.origin;
    const requestMethod = req.headers['access-control-request-method'];
    if (isPreflight(method, origin, requestMethod)) {
      const headers = preflightHeaders(
        filters.cors,
        origin!,
        requestMethod!,
        req.headers['access-control-request-headers'],
      );
      return { kind: 'local', status: 204, headers, body: '' };
    }
  }
  if (filters?.redirect) return redirect(route, filters, r);
  if (route.directResponse) {
    return {
      kind: 'local',
      status: route.directResponse.status,
      headers: undefined,
      body: route.directResponse.body ?? '',
    };
  }
  const index = pickWeighted(route.cumulativeWeights, Math.random());
  if (index < 0)
    return new ProxyError(ProxyErrorCode.BackendUnresolved, 500, `rule ${route.id} has no backend with weight`);
  const backend = route.backends[index];
  if (out !== undefined) out.labels = backend.labels;
  const bf = backend.filters;
  if (bf?.redirect) return redirect(route, bf, r);
  if (backend.cluster === null) {
    return new ProxyError(
      ProxyErrorCode.BackendUnresolved,
      backend.status,
      backend.reason ?? `backend of ${route.id} is unresolved`,
    );
  }

  const headers = upstreamRequestHeaders(req, backend.cluster.protocol === 'h2c');
  if (r.extraHeaders) Object.assign(headers, r.extraHeaders);
  headers.host = bf?.rewrite?.hostname ?? filters?.rewrite?.hostname ?? r.authority;
  if (filters?.requestHeaders) applyHeaderModifier(headers, filters.requestHeaders);
  if (bf?.requestHeaders) applyHeaderModifier(headers, bf.requestHeaders);
  const pathModifier = bf?.rewrite?.path ?? filters?.rewrite?.path;
  const path = pathModifier ? modifyPath(pathModifier, r.path, route.prefix) : r.path;

  let mirrors = filters?.mirrors ?? [];
  if (bf && bf.mirrors.length > 0) mirrors = mirrors.length > 0 ? [...mirrors, ...bf.mirrors] : bf.mirrors;

  return {
    kind: 'forward',
    cluster: backend.cluster,
    path: r.query === '' ? path : `${path}?${r.query}`,
    headers,
    retry: route.retry,
    requestTimeoutMs: route.requestTimeoutMs,
    backendTimeoutMs: route.backendRequestTimeoutMs,
    mirrors,
    responseHeaders: filters?.responseHeaders,
    backendResponseHeaders: bf?.responseHeaders,
    cors: filters?.cors ?? bf?.cors,
  };
}
