/**
 * Connection churn over TLS (and malformed datagrams over UDP) against a SIP listener.
 *
 * churnTls() opens many TLS connections from a chosen local address (the tests use 127.0.0.2,
 * Meta's edge in WA_META_PREFIXES), sends one or a few corpus messages on each and ends each
 * connection in a different way: close after the replies, immediate close, half-close, TCP reset
 * (resetAndDestroy), slow writes (slowloris, bounded), idle, handshake then close, garbage or a
 * truncated record instead of a ClientHello. Concurrency and total time are bounded; every
 * socket it opens is destroyed before it resolves.
 *
 * sendUdp() sends datagrams (a corpus, or a flood of one message) from a chosen address/port.
 */
import { createSocket } from "node:dgram";
import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import type { MalformedCase } from "./malformed-corpus.js";
import { seededRandom } from "./malformed-corpus.js";

export type ChurnMode =
  | "send-wait-close"
  | "send-close"
  | "send-destroy"
  | "half-close"
  | "reset"
  | "slow"
  | "idle"
  | "handshake-close"
  | "handshake-reset"
  | "garbage"
  | "truncated-hello"
  | "partial-message";

/** Relative weights of the ways a connection goes (default below). */
export const DEFAULT_MODES: Record<ChurnMode, number> = {
  "send-wait-close": 4,
  "send-close": 3,
  "send-destroy": 2,
  "half-close": 2,
  reset: 3,
  slow: 1,
  idle: 1,
  "handshake-close": 1,
  "handshake-reset": 1,
  garbage: 1,
  "truncated-hello": 1,
  "partial-message": 1,
};

export interface ChurnOptions {
  target: { host: string; port: number };
  /** Source address of every connection (e.g. 127.0.0.2). */
  localAddress?: string;
  corpus: MalformedCase[];
  /** Stop when this many corpus messages were sent (default: the corpus length). */
  messages?: number;
  /** Connections open at once. */
  concurrency?: number;
  /** Hard limit for the whole run; connections still open then are destroyed. */
  maxDurationMs?: number;
  /** Messages per connection, min..max (default 1..3). */
  perConnection?: [number, number];
  modes?: Partial<Record<ChurnMode, number>>;
  seed?: number;
  /** Slow writes: total time a slow connection may take (default 1500 ms). */
  slowMs?: number;
  /** Idle connections stay this long (default 1000 ms). */
  idleMs?: number;
  /** How long "send-wait-close" waits for replies (default 300 ms). */
  replyWaitMs?: number;
  /** Per-connection limit (connect + handshake + all), default 5000 ms. */
  connectionTimeoutMs?: number;
}

export interface ChurnStats {
  connections: number;
  handshakes: number;
  /** Connections that ended with a socket/TLS error on our side (expected with churn). */
  socketErrors: number;
  messagesSent: number;
  bytesSent: number;
  /** SIP status lines seen in what came back. */
  replies: number;
  byMode: Record<string, number>;
  /** Connections destroyed by the per-connection limit (the peer neither answered nor closed). */
  timedOut: number;
  durationMs: number;
  /** True when maxDurationMs ended the run before all messages were sent. */
  cutShort: boolean;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const STATUS_LINE = /SIP\/2\.0 \d{3} /g;

function weighted<T extends string>(r: () => number, weights: Record<T, number>): T {
  const entries = Object.entries(weights) as [T, number][];
  const total = entries.reduce((s, [, w]) => s + w, 0);
  let x = r() * total;
  for (const [k, w] of entries) {
    x -= w;
    if (x < 0) return k;
  }
  return entries[entries.length - 1]![0];
}

export async function churnTls(opts: ChurnOptions): Promise<ChurnStats> {
  const started = Date.now();
  const r = seededRandom(opts.seed ?? 7);
  const modes = { ...DEFAULT_MODES, ...(opts.modes ?? {}) } as Record<ChurnMode, number>;
  const total = Math.min(opts.messages ?? opts.corpus.length, Number.MAX_SAFE_INTEGER);
  const concurrency = opts.concurrency ?? 16;
  const deadline = started + (opts.maxDurationMs ?? 60_000);
  const [pmin, pmax] = opts.perConnection ?? [1, 3];
  const stats: ChurnStats = {
    connections: 0, handshakes: 0, socketErrors: 0, messagesSent: 0, bytesSent: 0, replies: 0,
    byMode: {}, timedOut: 0, durationMs: 0, cutShort: false,
  };
  const open = new Set<Socket>();
  let next = 0; // index into the corpus (wraps)
  let planned = 0; // messages handed to connections

  const takeMessages = (n: number): MalformedCase[] => {
    const out: MalformedCase[] = [];
    for (let i = 0; i < n && planned < total; i++, planned++) out.push(opts.corpus[next++ % opts.corpus.length]!);
    return out;
  };

  async function oneConnection(mode: ChurnMode, msgs: MalformedCase[]): Promise<void> {
    stats.connections++;
    stats.byMode[mode] = (stats.byMode[mode] ?? 0) + 1;
    const raw = netConnect({ host: opts.target.host, port: opts.target.port, localAddress: opts.localAddress });
    open.add(raw);
    let tls: TLSSocket | undefined;
    let closed = false;
    const limit = setTimeout(() => {
      if (!closed) stats.timedOut++;
      raw.destroy();
      tls?.destroy();
    }, opts.connectionTimeoutMs ?? 5000);
    const done = new Promise<void>((resolve) => raw.once("close", () => {
      closed = true;
      resolve();
    }));
    raw.on("error", () => stats.socketErrors++);
    try {
      await new Promise<void>((ok, fail) => {
        raw.once("connect", ok);
        raw.once("error", fail);
      });
      if (mode === "garbage" || mode === "truncated-hello") {
        const bytes = mode === "garbage"
          ? Buffer.concat(msgs.map((m) => m.data))
          // a TLS handshake record header announcing more bytes than follow
          : Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]), Buffer.alloc(Math.floor(r() * 100), 0x41)]);
        raw.write(bytes);
        stats.bytesSent += bytes.length;
        stats.messagesSent += mode === "garbage" ? msgs.length : 0;
        await sleep(Math.floor(r() * 50));
        if (r() < 0.5) raw.resetAndDestroy();
        else raw.end();
        await done;
        return;
      }
      tls = tlsConnect({ socket: raw, rejectUnauthorized: false, servername: "sip.example.com" });
      tls.on("error", () => stats.socketErrors++);
      tls.on("data", (d: Buffer) => {
        stats.replies += (d.toString("latin1").match(STATUS_LINE) ?? []).length;
      });
      await new Promise<void>((ok, fail) => {
        tls!.once("secureConnect", ok);
        tls!.once("error", fail);
        tls!.once("close", () => fail(new Error("closed during handshake")));
      });
      stats.handshakes++;
      const t = tls;
      switch (mode) {
        case "handshake-close":
          t.end();
          break;
        case "handshake-reset":
          raw.resetAndDestroy();
          break;
        case "idle":
          await Promise.race([sleep(opts.idleMs ?? 1000), done]);
          t.end();
          break;
        case "slow": {
          const bytes = Buffer.concat(msgs.map((m) => m.data));
          const budget = opts.slowMs ?? 1500;
          const chunks = Math.max(2, Math.min(30, Math.ceil(bytes.length / 16)));
          const size = Math.ceil(bytes.length / chunks);
          for (let off = 0; off < bytes.length && !closed; off += size) {
            t.write(bytes.subarray(off, off + size));
            await sleep(budget / chunks);
          }
          stats.messagesSent += msgs.length;
          stats.bytesSent += bytes.length;
          if (r() < 0.5) t.end();
          else raw.resetAndDestroy();
          break;
        }
        case "partial-message": {
          const m = msgs[0]!;
          const cut = m.data.subarray(0, Math.max(1, Math.floor(m.data.length * r())));
          t.write(cut);
          stats.messagesSent++;
          stats.bytesSent += cut.length;
          await sleep(Math.floor(r() * 100));
          t.end();
          break;
        }
        default: {
          // Several messages in one write (pipelined) or one write each.
          if (r() < 0.3) t.write(Buffer.concat(msgs.map((m) => m.data)));
          else for (const m of msgs) t.write(m.data);
          stats.messagesSent += msgs.length;
          stats.bytesSent += msgs.reduce((s, m) => s + m.data.length, 0);
          if (mode === "send-wait-close") {
            await Promise.race([sleep(opts.replyWaitMs ?? 300), done]);
            t.end();
          } else if (mode === "send-close") {
            t.end();
          } else if (mode === "send-destroy") {
            t.destroy();
            raw.destroy();
          } else if (mode === "half-close") {
            t.end(); // close_notify + FIN; keep reading until the server closes (or the limit)
          } else if (mode === "reset") {
            await sleep(Math.floor(r() * 20));
            raw.resetAndDestroy();
          }
        }
      }
      await done;
    } catch {
      raw.destroy();
      await done;
    } finally {
      clearTimeout(limit);
      open.delete(raw);
    }
  }

  const workers: Promise<void>[] = [];
  for (let w = 0; w < concurrency; w++) {
    workers.push((async () => {
      while (planned < total && Date.now() < deadline) {
        const mode = weighted(r, modes);
        const n = mode === "handshake-close" || mode === "handshake-reset" || mode === "idle" || mode === "truncated-hello"
          ? 0
          : mode === "partial-message" ? 1 : pmin + Math.floor(r() * (pmax - pmin + 1));
        const msgs = n > 0 ? takeMessages(n) : [];
        if (n > 0 && msgs.length === 0) break;
        await oneConnection(mode, msgs);
      }
    })());
  }
  const overall = setTimeout(() => {
    for (const s of open) s.destroy();
  }, Math.max(0, deadline - Date.now()) + 6000);
  await Promise.all(workers);
  clearTimeout(overall);
  stats.cutShort = planned < total;
  stats.durationMs = Date.now() - started;
  return stats;
}

export interface UdpOptions {
  target: { host: string; port: number };
  /** Bind here (e.g. the address:port the receiver trusts); default any. */
  local?: { host?: string; port?: number };
  datagrams: Buffer[];
  /** Send the list this many times (a flood repeats one message). */
  repeat?: number;
  /** Datagrams per millisecond-tick burst; 0 = as fast as the socket takes them. */
  burst?: number;
  /** Stop sending after this long. */
  maxDurationMs?: number;
  /** Keep listening for replies this long after the last send. */
  settleMs?: number;
}

export interface UdpStats {
  sent: number;
  bytesSent: number;
  replies: number;
  statuses: Record<string, number>;
  durationMs: number;
}

export async function sendUdp(opts: UdpOptions): Promise<UdpStats> {
  const started = Date.now();
  const socket = createSocket("udp4");
  const stats: UdpStats = { sent: 0, bytesSent: 0, replies: 0, statuses: {}, durationMs: 0 };
  socket.on("message", (d) => {
    const m = /^SIP\/2\.0 (\d{3})/.exec(d.toString("latin1"));
    if (m) {
      stats.replies++;
      stats.statuses[m[1]!] = (stats.statuses[m[1]!] ?? 0) + 1;
    }
  });
  socket.on("error", () => {});
  await new Promise<void>((ok, fail) => {
    socket.once("error", fail);
    socket.bind(opts.local?.port ?? 0, opts.local?.host, () => ok());
  });
  const deadline = started + (opts.maxDurationMs ?? 30_000);
  const burst = opts.burst ?? 50;
  try {
    outer: for (let rep = 0; rep < (opts.repeat ?? 1); rep++) {
      for (const d of opts.datagrams) {
        if (Date.now() > deadline) break outer;
        // UDP datagrams above 65507 bytes cannot be sent; cut them (still malformed).
        const data = d.length > 65_000 ? d.subarray(0, 65_000) : d;
        await new Promise<void>((ok) => socket.send(data, opts.target.port, opts.target.host, () => ok()));
        stats.sent++;
        stats.bytesSent += data.length;
        if (burst > 0 && stats.sent % burst === 0) await sleep(1);
      }
    }
    await sleep(opts.settleMs ?? 300);
  } finally {
    socket.close();
  }
  stats.durationMs = Date.now() - started;
  return stats;
}

/** Sends one request over a fresh TLS connection and resolves with the first status code (or null). */
export async function tlsRequest(
  target: { host: string; port: number },
  request: Buffer,
  opts: { localAddress?: string; timeoutMs?: number } = {},
): Promise<number | null> {
  return new Promise((resolve) => {
    let buf = "";
    const raw = netConnect({ host: target.host, port: target.port, localAddress: opts.localAddress });
    raw.on("error", () => {});
    const s = tlsConnect({ socket: raw, rejectUnauthorized: false, servername: "sip.example.com" });
    const finish = (v: number | null) => {
      clearTimeout(timer);
      s.destroy();
      raw.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => finish(null), opts.timeoutMs ?? 5000);
    s.on("secureConnect", () => s.write(request));
    s.on("data", (d: Buffer) => {
      buf += d.toString("latin1");
      const m = /SIP\/2\.0 (\d{3}) /.exec(buf);
      if (m && Number(m[1]) >= 200) finish(Number(m[1]));
    });
    s.on("error", () => finish(null));
    s.on("close", () => finish(null));
  });
}

/** Sends one datagram and resolves with the first final status code that comes back (or null). */
export async function udpRequest(
  target: { host: string; port: number },
  request: Buffer | ((local: { host: string; port: number }) => Buffer),
  opts: { local?: { host?: string; port?: number }; timeoutMs?: number } = {},
): Promise<number | null> {
  const socket = createSocket("udp4");
  await new Promise<void>((ok) => socket.bind(opts.local?.port ?? 0, opts.local?.host ?? "127.0.0.1", () => ok()));
  const a = socket.address();
  const data = typeof request === "function" ? request({ host: a.address, port: a.port }) : request;
  return new Promise((resolve) => {
    const finish = (v: number | null) => {
      clearTimeout(timer);
      socket.close();
      resolve(v);
    };
    const timer = setTimeout(() => finish(null), opts.timeoutMs ?? 3000);
    socket.on("message", (d) => {
      const m = /^SIP\/2\.0 (\d{3}) /.exec(d.toString("latin1"));
      if (m && Number(m[1]) >= 200) finish(Number(m[1]));
    });
    socket.send(data, target.port, target.host);
  });
}
