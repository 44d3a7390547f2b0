// `weft proxy-status`: which proxies are connected to the control plane, which config version each was sent,
// whether it acknowledged it, and why it refused the last one it refused. Reads the control plane's admin
// endpoint (`GET /proxies`, 127.0.0.1:15014 by default).
import { Command, Option } from 'commander';
import type { ProxyRecord } from '../../controlplane/push/server.ts';

export const DEFAULT_ADMIN_URL = 'http://127.0.0.1:15014';
const SHORT_VERSION = 12;
const MAX_REASON = 72;

export interface ProxyStatusOptions {
  admin: string;
  output: 'table' | 'json';
}

export function proxyStatusCommand(): Command {
  return new Command('proxy-status')
    .summary('list the proxies connected to the control plane and their config acknowledgement')
    .description(
      'Ask the control plane (its admin endpoint) for every proxy it serves: its id, the SPIFFE identity of its ' +
        'certificate, how long it has been connected, the config version last sent to it, whether it acknowledged ' +
        'that version (yes), has not yet (no) or refused it (NACK), and the reason of its last refusal. ' +
        'Proxies that disconnected in the last ten minutes are listed as gone.',
    )
    .option('--admin <url>', 'control plane admin URL', DEFAULT_ADMIN_URL)
    .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'))
    .action(async (opts: ProxyStatusOptions) => {
      process.stdout.write(await runProxyStatus(opts));
    });
}

export async function runProxyStatus(opts: ProxyStatusOptions): Promise<string> {
  const url = new URL('/proxies', opts.admin);
  let body: { time: string; proxies: ProxyRecord[] };
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    body = (await res.json()) as { time: string; proxies: ProxyRecord[] };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    const why = e.cause?.code ?? e.cause?.message ?? e.message;
    throw new Error(`cannot read ${url.href} (is the control plane running, and is --admin right?): ${why}`);
  }
  if (opts.output === 'json') return `${JSON.stringify(body.proxies, null, 2)}\n`;
  return formatProxyStatus(body.proxies, Date.parse(body.time));
}

/** `1h2m`, `3m12s`, `45s`. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (h > 0) return `${h}h${m}m`;
  if (m > 0) return `${m}m${s % 60}s`;
  return `${s}s`;
}

/** yes: the config the control plane has now is acknowledged; NACK: the last sent was refused; no: not yet. */
function ackState(r: ProxyRecord): string {
  if (r.currentVersion === undefined && r.lastSentVersion === undefined) return '-';
  const wanted = r.currentVersion ?? r.lastSentVersion;
  if (r.lastAckedVersion !== undefined && r.lastAckedVersion === wanted) return 'yes';
  if (r.lastNack && r.lastNack.version === (r.lastSentVersion ?? wanted)) return 'NACK';
  return 'no';
}

/** The table `weft proxy-status` prints; `now` is the control plane's time (durations ignore local clock skew). */
export function formatProxyStatus(records: readonly ProxyRecord[], now: number): string {
  if (records.length === 0) return 'no proxies connected\n';
  const rows = records.map((r) => {
    const since = r.connected
      ? formatDuration(now - Date.parse(r.connectedSince))
      : `gone ${formatDuration(now - Date.parse(r.disconnectedAt ?? r.connectedSince))}`;
    const sent = r.lastSentVersion ?? r.lastAckedVersion;
    let nack = r.lastNack ? r.lastNack.reason : '-';
    if (nack.length > MAX_REASON) nack = `${nack.slice(0, MAX_REASON - 1)}…`;
    return [r.proxyId, r.identity, since, sent ? sent.slice(0, SHORT_VERSION) : '-', ackState(r), nack];
  });
  const header = ['PROXY', 'IDENTITY', 'CONNECTED', 'VERSION SENT', 'ACKED', 'LAST NACK'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return `${[line(header), ...rows.map(line)].join('\n')}\n`;
}
