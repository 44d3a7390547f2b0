// An open-loop load generator at a fixed request rate (wrk2's idea): request i is due at
// start + i/rate whatever happened to the ones before, and goes out on any idle keep-alive
// connection of a fixed pool, so a slow answer does not hold back the next request (no
// coordinated omission while a connection is free). Latency is timed with a sub-microsecond
// clock from the moment the request is written to the moment its response is complete.
// autocannon is not used for this: its latency histogram has 1 ms resolution (integer
// buckets) and its rate limit releases each second's budget in a burst.
import { connect, type Socket } from 'node:net';

export interface ConstantRateOptions {
  host: string;
  port: number;
  /** Host header of every request. */
  authority: string;
  path: string;
  /** Requests per second. */
  rate: number;
  /** Discarded first seconds (JIT, connection pools, caches). */
  warmupS: number;
  /** Measured seconds after the warm-up. */
  durationS: number;
  /** Size of the connection pool: how many requests may be outstanding at once. */
  connections: number;
}

export interface LatencySummary {
  /** Measured requests completed with a 2xx. */
  count: number;
  errors: number;
  non2xx: number;
  /** Completed measured requests per second. */
  achievedRate: number;
  /** Milliseconds, from write to complete response. */
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
  /** p99 from the due time instead of the write (includes waiting for the timer or a connection). */
  p99FromSchedule: number;
  /** Share of requests written more than 1 ms after they were due. */
  lateShare: number;
}

/** Minimal HTTP/1.1 response reader: status, then a Content-Length or chunked body. */
class ResponseReader {
  #buf: Buffer = Buffer.alloc(0);
  #status = 0;
  /** Bytes of body still expected (Content-Length); -1 while reading headers; -2 chunked. */
  #remaining = -1;

  /** Feeds bytes; returns the status of each response completed by them. */
  feed(chunk: Buffer, done: (status: number) => void): void {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    for (;;) {
      if (this.#remaining === -1) {
        const end = this.#buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = this.#buf.subarray(0, end).toString('latin1');
        this.#buf = this.#buf.subarray(end + 4);
        this.#status = Number(head.slice(9, 12));
        const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
        if (length) this.#remaining = Number(length[1]);
        else if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) this.#remaining = -2;
        else this.#remaining = 0;
      }
      if (this.#remaining >= 0) {
        if (this.#buf.length < this.#remaining) return;
        this.#buf = this.#buf.subarray(this.#remaining);
        this.#remaining = -1;
        done(this.#status);
        continue;
      }
      // Chunked: size line, data, CRLF; a zero size line then CRLF ends it (no trailers expected).
      const eol = this.#buf.indexOf('\r\n');
      if (eol < 0) return;
      const size = Number.parseInt(this.#buf.subarray(0, eol).toString('latin1'), 16);
      if (size === 0) {
        if (this.#buf.length < eol + 4) return;
        this.#buf = this.#buf.subarray(eol + 4);
        this.#remaining = -1;
        done(this.#status);
        continue;
      }
      if (this.#buf.length < eol + 2 + size + 2) return;
      this.#buf = this.#buf.subarray(eol + 2 + size + 2);
    }
  }
}

interface Conn {
  socket: Socket;
  reader: ResponseReader;
  busy: boolean;
  due: number;
  sent: number;
  measured: boolean;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

function openConn(o: ConstantRateOptions): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: o.host, port: o.port, noDelay: true });
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

export async function runConstantRate(o: ConstantRateOptions): Promise<LatencySummary> {
  const request = Buffer.from(`GET ${o.path} HTTP/1.1\r\nHost: ${o.authority}\r\nUser-Agent: weft-bench\r\n\r\n`);
  const total = Math.round(o.rate * (o.warmupS + o.durationS));
  const firstMeasured = Math.round(o.rate * o.warmupS);
  const measuredCount = total - firstMeasured;
  const service = new Float64Array(measuredCount);
  const fromSchedule = new Float64Array(measuredCount);
  let recorded = 0;
  let errors = 0;
  let non2xx = 0;
  let late = 0;
  let completed = 0;
  let firstMeasuredAt = 0;
  let lastMeasuredAt = 0;
  const interval = 1000 / o.rate;
  const idle: Conn[] = [];
  const conns: Conn[] = [];
  /** Due times of requests waiting for a free connection. */
  const waiting: { due: number; index: number }[] = [];
  let finish: () => void = () => {};
  const finished = new Promise<void>((r) => {
    finish = r;
  });

  const send = (c: Conn, due: number, index: number) => {
    c.busy = true;
    c.due = due;
    c.measured = index >= firstMeasured;
    c.sent = performance.now();
    if (c.measured && c.sent - due > 1) late++;
    c.socket.write(request);
  };

  const onDone = (c: Conn, status: number) => {
    const now = performance.now();
    if (c.measured) {
      if (status >= 200 && status < 300) {
        service[recorded] = now - c.sent;
        fromSchedule[recorded] = now - c.due;
        recorded++;
      } else non2xx++;
      if (firstMeasuredAt === 0) firstMeasuredAt = c.sent;
      lastMeasuredAt = now;
    }
    c.busy = false;
    completed++;
    const next = waiting.shift();
    if (next) send(c, next.due, next.index);
    else idle.push(c);
    if (completed + errors >= total) finish();
  };

  for (let i = 0; i < o.connections; i++) {
    const socket = await openConn(o);
    const c: Conn = { socket, reader: new ResponseReader(), busy: false, due: 0, sent: 0, measured: false };
    socket.on('data', (chunk: Buffer) => c.reader.feed(chunk, (status) => onDone(c, status)));
    const lost = () => {
      // A connection that dies mid-request counts its request as an error and leaves the pool.
      if (c.busy) {
        c.busy = false;
        errors++;
        if (completed + errors >= total) finish();
      }
      const k = idle.indexOf(c);
      if (k >= 0) idle.splice(k, 1);
    };
    socket.on('error', lost);
    socket.on('close', lost);
    conns.push(c);
    idle.push(c);
  }

  const start = performance.now() + 5;
  let next = 0;
  const tick = () => {
    const now = performance.now();
    while (next < total && start + next * interval <= now) {
      const due = start + next * interval;
      const c = idle.pop();
      if (c) send(c, due, next);
      else waiting.push({ due, index: next });
      next++;
    }
    if (next < total) setTimeout(tick, Math.max(0, start + next * interval - performance.now()));
  };
  setTimeout(tick, 5);
  // Bounded: whatever is still outstanding a few seconds after the last due time is an error.
  const deadline = setTimeout(() => finish(), (o.warmupS + o.durationS + 5) * 1000);
  await finished;
  clearTimeout(deadline);
  for (const c of conns) {
    c.socket.removeAllListeners('close');
    c.socket.destroy();
  }
  const outstanding = total - completed - errors;
  const lat = service.subarray(0, recorded).sort();
  const sched = fromSchedule.subarray(0, recorded).sort();
  let sum = 0;
  for (let i = 0; i < lat.length; i++) sum += lat[i];
  const span = (lastMeasuredAt - firstMeasuredAt) / 1000;
  return {
    count: recorded,
    errors: errors + outstanding,
    non2xx,
    achievedRate: span > 0 ? (recorded + non2xx) / span : 0,
    p50: percentile(lat, 50),
    p90: percentile(lat, 90),
    p99: percentile(lat, 99),
    p999: percentile(lat, 99.9),
    max: lat.length > 0 ? lat[lat.length - 1] : Number.NaN,
    mean: lat.length > 0 ? sum / lat.length : Number.NaN,
    p99FromSchedule: percentile(sched, 99),
    lateShare: measuredCount > 0 ? late / measuredCount : 0,
  };
}
