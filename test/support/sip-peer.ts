/**
 * Raw SIP peers for black-box tests of the edge: a sender that writes exactly the bytes it is
 * given over TLS or UDP from a chosen loopback address (an attacker, a forged "Meta", a stranger
 * on the internal listener) and collects the answers; a minimal UAS that plays the media agent
 * and records every request that reaches it; and a trap that records anything sent to a
 * third host. Nothing here is clever: what goes on the wire is what the test wrote.
 */
import { createSocket, type Socket } from "node:dgram";
import { connect, type TLSSocket } from "node:tls";
import { connect as netConnect, type Socket as NetSocket } from "node:net";
import { randomBytes } from "node:crypto";
import { header, parseSipMessage, type SipMessage } from "../../media-agent/src/sip/message.js";
import type { Teardown } from "../../build/teardown.js";

export const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

/** Splits a TCP/TLS byte stream into SIP messages by Content-Length. */
function streamFramer(onMessage: (m: SipMessage) => void): (chunk: Buffer) => void {
  let buffered = Buffer.alloc(0);
  return (chunk) => {
    buffered = Buffer.concat([buffered, chunk]);
    for (;;) {
      const text = buffered.toString("latin1");
      const end = text.indexOf("\r\n\r\n");
      if (end < 0) return;
      const length = parseInt(/\r\nContent-Length:\s*(\d+)/i.exec(text.slice(0, end))?.[1] ?? "0", 10);
      if (buffered.length < end + 4 + length) return;
      const raw = buffered.subarray(0, end + 4 + length).toString("utf8");
      buffered = buffered.subarray(end + 4 + length);
      try {
        onMessage(parseSipMessage(raw));
      } catch {
        /* keepalive CRLFs or garbage: not a message */
      }
    }
  };
}

/** A SIP connection from one address: writes raw requests, gathers every message that comes back. */
export interface RawSipPeer {
  local: { host: string; port: number };
  received: SipMessage[];
  send(message: string | Buffer): void;
  /** The first final answer to the request with this Call-ID and CSeq method, or null on timeout. */
  answer(callId: string, method: string, timeoutMs?: number): Promise<SipMessage | null>;
  close(): void;
}

function peerOf(local: { host: string; port: number }, write: (b: Buffer) => void, close: () => void): RawSipPeer & { push(m: SipMessage): void } {
  const received: SipMessage[] = [];
  const find = (callId: string, method: string) =>
    received.find((m) => m.kind === "response" && m.status >= 200 && header(m, "Call-ID") === callId && (header(m, "CSeq") ?? "").endsWith(` ${method}`)) ?? null;
  return {
    local,
    received,
    push: (m) => received.push(m),
    send: (message) => write(Buffer.isBuffer(message) ? message : Buffer.from(message)),
    async answer(callId, method, timeoutMs = 3000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = find(callId, method);
        if (found || Date.now() > deadline) return found;
        await sleep(20);
      }
    },
    close,
  };
}

/** SIP over TLS (or plain TCP with `tcp`) from `from` to `to`. */
export async function tlsPeer(t: Teardown, from: string, to: { host: string; port: number }, tcp = false): Promise<RawSipPeer> {
  const raw = netConnect({ host: to.host, port: to.port, localAddress: from });
  const socket: TLSSocket | NetSocket = await new Promise((done, fail) => {
    const s = tcp ? raw : connect({ socket: raw, rejectUnauthorized: false, servername: "sip.example.com" });
    s.once(tcp ? "connect" : "secureConnect", () => done(s));
    s.once("error", fail);
  });
  const peer = peerOf({ host: from, port: raw.localPort! }, (b) => socket.write(b), () => socket.destroy());
  socket.on("data", streamFramer((m) => peer.push(m)));
  socket.on("error", () => {});
  t.teardown(() => socket.destroy());
  return peer;
}

export async function udpPeer(t: Teardown, from: string, to: { host: string; port: number }, port = 0): Promise<RawSipPeer> {
  const sock: Socket = createSocket("udp4");
  await new Promise<void>((done) => sock.bind(port, from, () => done()));
  const peer = peerOf({ host: from, port: sock.address().port }, (b) => sock.send(b, to.port, to.host), () => sock.close());
  sock.on("message", (b) => {
    try {
      peer.push(parseSipMessage(b.toString("utf8")));
    } catch {
      /* not SIP */
    }
  });
  t.teardown(() => {
    try {
      sock.close();
    } catch {
      /* closed */
    }
  });
  return peer;
}

/** Everything that arrives at a UDP address that nobody should ever send to. */
export async function trap(t: Teardown, host = "127.0.0.1"): Promise<{ host: string; port: number; received: Buffer[] }> {
  const sock = createSocket("udp4");
  const received: Buffer[] = [];
  await new Promise<void>((done) => sock.bind(0, host, () => done()));
  sock.on("message", (b) => received.push(b));
  t.teardown(() => sock.close());
  return { host, port: sock.address().port, received };
}

export const newTag = () => randomBytes(4).toString("hex");
export const newBranch = () => `z9hG4bK-${randomBytes(6).toString("hex")}`;

/** A request as a test writes it: start line, the given headers in order, Content-Length. */
export function rawRequest(method: string, uri: string, headers: Array<[string, string]>, body = ""): string {
  const lines = [`${method} ${uri} SIP/2.0`, ...headers.map(([n, v]) => `${n}: ${v}`), `Content-Length: ${Buffer.byteLength(body)}`];
  return `${lines.join("\r\n")}\r\n\r\n${body}`;
}

/**
 * Plays the media agent on UDP: rings, answers after `answerAfterMs` with plain-RTP SDP, takes
 * ACK, BYE (200) and CANCEL (200 + 487), and records every request that reached it.
 */
export async function agentUas(t: Teardown, bind: { host: string; port: number }, opts: { answerAfterMs?: number } = {}) {
  const sock = createSocket("udp4");
  await new Promise<void>((done) => sock.bind(bind.port, bind.host, () => done()));
  const requests: SipMessage[] = [];
  const toTag = newTag();
  const pending = new Map<string, NodeJS.Timeout>();
  t.teardown(() => {
    for (const timer of pending.values()) clearTimeout(timer);
    sock.close();
  });
  const reply = (req: SipMessage, status: number, reason: string, to: { port: number; address: string }, extra: string[] = [], body = "") => {
    const withTag = status > 100 && !/;tag=/.test(header(req, "To") ?? "") ? `${header(req, "To")};tag=${toTag}` : header(req, "To");
    const lines = [
      `SIP/2.0 ${status} ${reason}`,
      ...req.headers.filter((h) => /^(via|record-route)$/i.test(h.name)).map((h) => `${h.name}: ${h.value}`),
      `From: ${header(req, "From")}`, `To: ${withTag}`, `Call-ID: ${header(req, "Call-ID")}`, `CSeq: ${header(req, "CSeq")}`,
      ...extra, `Content-Length: ${Buffer.byteLength(body)}`, "", body,
    ];
    sock.send(Buffer.from(lines.join("\r\n")), to.port, to.address);
  };
  sock.on("message", (b, rinfo) => {
    let req: SipMessage;
    try {
      req = parseSipMessage(b.toString("utf8"));
    } catch {
      return;
    }
    if (req.kind !== "request") return;
    requests.push(req);
    const callId = header(req, "Call-ID")!;
    const contact = [`Contact: <sip:agent@${bind.host}:${bind.port}>`];
    if (req.method === "INVITE") {
      reply(req, 180, "Ringing", rinfo, contact);
      const sdp = ["v=0", `o=- 1 1 IN IP4 ${bind.host}`, "s=-", `c=IN IP4 ${bind.host}`, "t=0 0", "m=audio 40000 RTP/AVP 8 0", "a=rtpmap:8 PCMA/8000", "a=sendrecv", ""].join("\r\n");
      pending.set(callId, setTimeout(() => reply(req, 200, "OK", rinfo, [...contact, "Content-Type: application/sdp"], sdp), opts.answerAfterMs ?? 0));
    } else if (req.method === "CANCEL") {
      clearTimeout(pending.get(callId));
      reply(req, 200, "OK", rinfo);
      const invite = requests.find((r) => r.method === "INVITE" && header(r, "Call-ID") === callId);
      if (invite) reply(invite, 487, "Request Terminated", rinfo);
    } else if (req.method !== "ACK") reply(req, 200, "OK", rinfo);
  });
  return { requests, toTag, contact: `sip:agent@${bind.host}:${bind.port}`, of: (method: string) => requests.filter((r) => r.method === method) };
}
