/**
 * The routing benchmark's stand, shared with test/integration/routing-twin.test.ts: one
 * Kamailio of a variant (the project's bundle, the app_jsdt floor, the native twin) with the same
 * settings, listeners, modules and rtpengine; a UAS in the agent's place (UDP, loopback) and one
 * in Meta's edge's place (TLS on 127.0.0.2 with a wa.meta.vc certificate from a test CA that is
 * WA_META_CA_LIST); and small SIP helpers for writing requests and reading answers fast.
 *
 * Loopback only: 127.0.0.1 is our host and the agent, 127.0.0.2 Meta's edge (WA_META_PREFIXES).
 */
import { createSocket, type Socket } from "node:dgram";
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from "node:tls";
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { randomBytes } from "node:crypto";
import { buildBundle, DEFAULT_ENTRY, REPO_ROOT } from "../../build/bundle.js";
import { ensureStateDb, renderTlsConfig, startKamailio, KAMAILIO_CFG, type KamailioProcess } from "../../build/kamailio.js";
import { freePort, freePortRange } from "../../build/ports.js";
import { startRtpengine, type RtpengineProcess } from "../../build/rtpengine.js";
import { createTestCa, issueCert } from "../../build/test-ca.js";
import type { Teardown } from "../../build/teardown.js";
import { cryptoLine, newSrtpKeys, type SrtpKeys } from "../lib/srtp.js";

export type Variant = "bundle" | "floor" | "native";
export const VARIANTS: Variant[] = ["bundle", "floor", "native"];
export const FLOOR_ENTRY = resolve(REPO_ROOT, "bench/floor/main.ts");
export const TWIN_CFG = resolve(REPO_ROOT, "bench/native/kamailio-twin.cfg");

export const BUSINESS = "+15550001111";
export const OTHER_BUSINESS = "+15550002222";
export const META_IP = "127.0.0.2";
export const OUTSIDER_IP = "127.0.0.3";
/** WhatsApp users with a permanent call permission for BUSINESS: +15552000000 … */
export const permittedUser = (i: number) => `+1555${String(2000000 + i)}`;

export interface Stand {
  variant: Variant;
  kamailio: KamailioProcess;
  rtpengine: RtpengineProcess;
  internal: { host: string; port: number };
  tls: { host: string; port: number };
  agent: AgentUas;
  meta: MetaUas;
  workDir: string;
}

/** Callback-rule state with a permanent permission for `users` pairs, as the permission API writes it. */
function seedStateDb(file: string, users: number): string {
  const url = ensureStateDb(file);
  const rows: string[] = [];
  const state = JSON.stringify({ permission: "permanent", permissionExpires: null, connected: [], unanswered: 0, blockedUntil: null, activeCall: null });
  for (let i = 0; i < users; i++) rows.push(`('${BUSINESS}|${permittedUser(i)}',0,0,'${state}',0)`);
  if (rows.length) execFileSync("sqlite3", [file], { input: `INSERT INTO wa_callback (key_name,key_type,value_type,key_value,expires) VALUES ${rows.join(",")};\n` });
  return url;
}

export async function startStand(
  t: Teardown,
  variant: Variant,
  workDir: string,
  opts: { permittedUsers?: number; env?: Record<string, string> } = {},
): Promise<Stand> {
  mkdirSync(workDir, { recursive: true });
  const ca = createTestCa(workDir);
  const ours = issueCert(ca, "us", ["sip.example.com", "127.0.0.1"]);
  const metaCert = issueCert(ca, "meta", ["wa.meta.vc", META_IP]);
  const internal = { host: "127.0.0.1", port: await freePort() };
  const tls = { host: "127.0.0.1", port: await freePort() };
  const agentPort = await freePort();
  const metaPort = await freePort(META_IP);
  // Three stands run side by side: small random ranges make a clash between their rtpengines unlikely.
  const ports = await freePortRange(600);
  const rtpengine = await startRtpengine({
    runDir: join(workDir, "rtpengine"),
    interfaces: ["127.0.0.1"],
    ng: { host: "127.0.0.1", port: await freePort() },
    portMin: ports.min,
    portMax: ports.max,
    logLevel: 4,
  });
  t.teardown(() => rtpengine.stop());
  const agent = await agentUas(t, { host: "127.0.0.1", port: agentPort });
  const meta = await metaUas(t, { host: META_IP, port: metaPort }, metaCert);
  const runDir = join(workDir, "run");
  mkdirSync(runDir, { recursive: true });
  const env: Record<string, string> = {
    WA_PUBLIC_IP: tls.host,
    WA_TLS_PORT: String(tls.port),
    WA_INTERNAL_IP: internal.host,
    WA_INTERNAL_PORT: String(internal.port),
    WA_DOMAIN: "sip.example.com",
    WA_TLS_CERT: ours.cert,
    WA_TLS_KEY: ours.key,
    WA_META_CA_LIST: ca.cert,
    WA_CHILDREN: "2",
    WA_API_PORT: String(await freePort()),
    WA_RTPENGINE_SOCK: rtpengine.sock,
    WA_NUMBERS: `${BUSINESS}=sales,${OTHER_BUSINESS}=support`,
    WA_SIP_PASSWORDS: `${BUSINESS}=s3cret-Meta-generated`,
    WA_META_PREFIXES: `${META_IP}/32`,
    WA_INTERNAL_ALLOW: "127.0.0.1/32",
    WA_META_EDGE: `${META_IP}:${metaPort}`,
    WA_AGENT_URI: `sip:127.0.0.1:${agentPort}`,
    // The benchmark places many calls per pair; the rules still run, their limits do not bite.
    WA_CALLBACK_DAILY_LIMIT: "100000000",
    WA_STATE_DB_URL: seedStateDb(join(runDir, "callback.sqlite"), opts.permittedUsers ?? 0),
    ...opts.env,
  };
  if (variant === "native") {
    env.WA_TWIN_NUMBERS = env.WA_NUMBERS.split(",").join(";");
    env.WA_TWIN_PASSWORDS = env.WA_SIP_PASSWORDS.split(",").join(";");
    env.WA_TLS_CONFIG = renderTlsConfig(env, join(runDir, "tls.cfg"));
  } else {
    const { outFile } = await buildBundle(variant === "bundle" ? (process.env.ROUTING_BENCH_BUNDLE_ENTRY ?? DEFAULT_ENTRY) : FLOOR_ENTRY, join(workDir, "routing.js"));
    env.WA_BUNDLE = outFile;
  }
  const kamailio = await startKamailio({ runDir, env, cfg: variant === "native" ? TWIN_CFG : KAMAILIO_CFG });
  t.teardown(() => kamailio.stop());
  return { variant, kamailio, rtpengine, internal, tls, agent, meta, workDir };
}

/** CPU seconds (utime+stime) of every process in a process group (Kamailio runs in its own). */
export function groupCpuSeconds(pgid: number): number {
  let ticks = 0;
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, "utf8");
    } catch {
      continue;
    }
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(f[2]) === pgid) ticks += Number(f[11]) + Number(f[12]);
  }
  return ticks / 100;
}

// ---------------------------------------------------------------- SIP text, minimal and fast

export interface Msg {
  raw: string;
  /** Status code of a response; 0 for a request. */
  status: number;
  reason: string;
  method: string;
  headers: Array<[string, string]>;
  body: string;
}

export function parseMsg(raw: string): Msg | null {
  const end = raw.indexOf("\r\n\r\n");
  if (end < 0) return null;
  const lines = raw.slice(0, end).split("\r\n");
  const first = lines[0];
  const headers: Array<[string, string]> = [];
  for (let i = 1; i < lines.length; i++) {
    const at = lines[i].indexOf(":");
    if (at > 0) headers.push([lines[i].slice(0, at).trim().toLowerCase(), lines[i].slice(at + 1).trim()]);
  }
  const body = raw.slice(end + 4);
  if (first.startsWith("SIP/2.0 ")) {
    const sp = first.indexOf(" ", 8);
    return { raw, status: parseInt(first.slice(8, sp < 0 ? undefined : sp), 10), reason: sp < 0 ? "" : first.slice(sp + 1), method: "", headers, body };
  }
  return { raw, status: 0, reason: "", method: first.slice(0, first.indexOf(" ")), headers, body };
}

export const hdr = (m: Msg, name: string) => m.headers.find((h) => h[0] === name)?.[1] ?? "";
export const hdrs = (m: Msg, name: string) => m.headers.filter((h) => h[0] === name).map((h) => h[1]);
/** "Call-ID CSeq-method": what answers are matched by. */
export const txKey = (m: Msg) => `${hdr(m, "call-id")} ${hdr(m, "cseq").split(/\s+/)[1]}`;

export function request(method: string, uri: string, headers: Array<[string, string]>, body = ""): string {
  const lines = [`${method} ${uri} SIP/2.0`, ...headers.map(([n, v]) => `${n}: ${v}`), `Content-Length: ${Buffer.byteLength(body)}`];
  return `${lines.join("\r\n")}\r\n\r\n${body}`;
}

export const newId = () => randomBytes(6).toString("hex");

/** Splits a TLS byte stream into messages by Content-Length. */
function framer(onMessage: (raw: string) => void): (chunk: Buffer) => void {
  let buffered = "";
  return (chunk) => {
    buffered += chunk.toString("latin1");
    for (;;) {
      const end = buffered.indexOf("\r\n\r\n");
      if (end < 0) return;
      const m = /\r\n(?:Content-Length|l)\s*:\s*(\d+)/i.exec(buffered.slice(0, end + 2));
      const total = end + 4 + (m ? parseInt(m[1], 10) : 0);
      if (buffered.length < total) return;
      onMessage(buffered.slice(0, total));
      buffered = buffered.slice(total);
    }
  };
}

/** Plain-RTP SDP as the agent would offer or answer (Opus, G.711). */
export function agentSdp(host: string, port: number): string {
  return ["v=0", `o=- ${port} 1 IN IP4 ${host}`, "s=-", `c=IN IP4 ${host}`, "t=0 0", `m=audio ${port} RTP/AVP 111 8 0`,
    "a=rtpmap:111 opus/48000/2", "a=rtpmap:8 PCMA/8000", "a=rtpmap:0 PCMU/8000", "a=ptime:20", "a=sendrecv", ""].join("\r\n");
}

/** Meta's SDES offer/answer: RTP/SAVP, AES_CM_128_HMAC_SHA1_80, Opus 48000/2 (keys: the sender's; default fresh ones). */
export function metaSdp(host: string, port: number, keys: SrtpKeys = newSrtpKeys()): string {
  return ["v=0", `o=- ${port} 1 IN IP4 ${host}`, "s=-", `c=IN IP4 ${host}`, "t=0 0", `m=audio ${port} RTP/SAVP 111`,
    "a=rtpmap:111 opus/48000/2", "a=fmtp:111 maxaveragebitrate=20000;maxplaybackrate=16000;minptime=20;sprop-maxcapturerate=16000;useinbandfec=1",
    cryptoLine(1, keys), "a=ptime:20", "a=sendrecv", ""].join("\r\n");
}

/** A reply to a request: its Via and Record-Route lines, From, To (tagged), Call-ID, CSeq. */
export function replyTo(req: Msg, status: number, reason: string, toTag: string, extra: Array<[string, string]> = [], body = ""): string {
  const lines = [`SIP/2.0 ${status} ${reason}`];
  for (const [n, v] of req.headers) if (n === "via" || n === "record-route") lines.push(`${n === "via" ? "Via" : "Record-Route"}: ${v}`);
  const to = hdr(req, "to");
  lines.push(`From: ${hdr(req, "from")}`, `To: ${/;tag=/.test(to) || status === 100 ? to : `${to};tag=${toTag}`}`, `Call-ID: ${hdr(req, "call-id")}`, `CSeq: ${hdr(req, "cseq")}`);
  for (const [n, v] of extra) lines.push(`${n}: ${v}`);
  lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
  return `${lines.join("\r\n")}\r\n\r\n${body}`;
}

export interface AgentUas {
  host: string;
  port: number;
  invites: number;
}

/** The agent's place: answers every INVITE with 200 and plain-RTP SDP, BYE with 200. */
export async function agentUas(t: Teardown, bind: { host: string; port: number }): Promise<AgentUas> {
  const sock: Socket = createSocket("udp4");
  await new Promise<void>((done) => sock.bind(bind.port, bind.host, () => done()));
  t.teardown(() => sock.close());
  const me: AgentUas = { ...bind, invites: 0 };
  const contact: Array<[string, string]> = [["Contact", `<sip:agent@${bind.host}:${bind.port}>`]];
  sock.on("message", (b, rinfo) => {
    const req = parseMsg(b.toString("latin1"));
    if (!req || req.status) return;
    let out: string | null = null;
    if (req.method === "INVITE") {
      me.invites++;
      out = replyTo(req, 200, "OK", `agent${hdr(req, "call-id").length}`, [...contact, ["Content-Type", "application/sdp"]], agentSdp(bind.host, 40000));
    } else if (req.method !== "ACK") out = replyTo(req, 200, "OK", "agent");
    if (out) sock.send(out, rinfo.port, rinfo.address);
  });
  return me;
}

export interface MetaUas {
  host: string;
  port: number;
  invites: number;
}

/** Meta's edge's place for business-initiated calls: TLS, answers INVITE with 200 and SDES SDP. */
export async function metaUas(t: Teardown, bind: { host: string; port: number }, cert: { cert: string; key: string }): Promise<MetaUas> {
  const me: MetaUas = { ...bind, invites: 0 };
  const sockets = new Set<TLSSocket>();
  const server: TlsServer = createTlsServer({ cert: readFileSync(cert.cert), key: readFileSync(cert.key) }, (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => {});
    s.on("data", framer((raw) => {
      const req = parseMsg(raw);
      if (!req || req.status) return;
      let out: string | null = null;
      if (req.method === "INVITE") {
        me.invites++;
        out = replyTo(req, 200, "OK", "meta", [["Contact", `<sip:wa@${bind.host}:${bind.port};transport=tls>`], ["Content-Type", "application/sdp"]], metaSdp(bind.host, 41000));
      } else if (req.method !== "ACK") out = replyTo(req, 200, "OK", "meta");
      if (out) s.write(out);
    }));
  });
  await new Promise<void>((done) => server.listen(bind.port, bind.host, () => done()));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return me;
}

/** A SIP client on one transport: sends text, hands every message it gets to `onMessage`. */
export interface SipClient {
  local: { host: string; port: number };
  transport: "UDP" | "TLS";
  send(text: string): void;
  onMessage: (m: Msg) => void;
  close(): void;
}

export async function udpClient(from: string, to: { host: string; port: number }): Promise<SipClient> {
  const sock = createSocket("udp4");
  await new Promise<void>((done) => sock.bind(0, from, () => done()));
  const c: SipClient = {
    local: { host: from, port: sock.address().port },
    transport: "UDP",
    send: (text) => sock.send(text, to.port, to.host),
    onMessage: () => {},
    close: () => sock.close(),
  };
  sock.on("message", (b) => {
    const m = parseMsg(b.toString("latin1"));
    if (m) c.onMessage(m);
  });
  return c;
}

export async function tlsClient(from: string, to: { host: string; port: number }): Promise<SipClient> {
  const { connect } = await import("node:tls");
  const { connect: netConnect } = await import("node:net");
  const s: TLSSocket = await new Promise((done, fail) => {
    const raw = netConnect({ host: to.host, port: to.port, localAddress: from });
    const sock = connect({ socket: raw, rejectUnauthorized: false, servername: "sip.example.com" });
    sock.once("secureConnect", () => done(sock));
    sock.once("error", fail);
  });
  s.setNoDelay(true);
  const c: SipClient = {
    local: { host: from, port: s.localPort! },
    transport: "TLS",
    send: (text) => s.write(text),
    onMessage: () => {},
    close: () => s.destroy(),
  };
  s.on("error", () => {});
  s.on("data", framer((raw) => {
    const m = parseMsg(raw);
    if (m) c.onMessage(m);
  }));
  return c;
}
