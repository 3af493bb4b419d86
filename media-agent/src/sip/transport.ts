/**
 * SIP over UDP on loopback, talking only to Kamailio (its nodes). Every datagram is parsed
 * strictly; a malformed request gets a 400 naming the problem (never a crash), a request from any
 * address other than a Kamailio node's gets a 403, and malformed responses are dropped with a log line.
 */
import { createSocket, type Socket } from "node:dgram";
import type { Logger } from "pino";
import { sipMessageTurn } from "../loop-turns.js";
import { buildResponse, parseSipDatagram, serializeSipMessage, SipParseError, type SipMessage } from "./message.js";

export interface SipPeer {
  host: string;
  port: number;
}

export interface SipTransportOptions {
  bind: SipPeer;
  /** Where requests go by default (Kamailio's internal listener). */
  kamailio: SipPeer;
  /** Other Kamailio nodes (AGENT_KAMAILIO_PEERS): with `kamailio`, the only peers served. */
  peers?: SipPeer[];
  log: Logger;
  onMessage: (msg: SipMessage, from: SipPeer) => void;
}

export class SipTransport {
  private readonly socket: Socket;

  private constructor(private readonly opts: SipTransportOptions, socket: Socket) {
    this.socket = socket;
    // Datagrams are handled as they are read for up to ~2 ms per loop turn, the rest in order in
    // later turns (loop-turns.ts sipMessageTurn says why). Who sent one is still decided in
    // receive, by its source address alone: waiting in the queue trusts nothing.
    socket.on("message", (buf, rinfo) => {
      sipMessageTurn(() => this.receive(buf, { host: rinfo.address, port: rinfo.port })).catch((err: unknown) =>
        opts.log.error({ err }, "SIP message not handled"),
      );
    });
  }

  static async open(opts: SipTransportOptions): Promise<SipTransport> {
    const socket = createSocket("udp4");
    await new Promise<void>((done, fail) => {
      socket.once("error", fail);
      socket.bind(opts.bind.port, opts.bind.host, () => {
        socket.off("error", fail);
        done();
      });
    });
    socket.on("error", (err) => opts.log.error({ err }, "SIP socket error"));
    return new SipTransport(opts, socket);
  }

  get local(): SipPeer {
    const a = this.socket.address();
    return { host: a.address, port: a.port };
  }

  /**
   * A request goes to `to` (default: AGENT_KAMAILIO). A response goes where its top Via says the
   * request came from (RFC 3261 §18.2.2), when that is one of our Kamailio nodes: with several
   * nodes, the one that sent the request waits for it.
   */
  send(msg: SipMessage, to?: SipPeer): void {
    const target = to ?? (msg.kind === "response" ? this.viaNode(msg) : null) ?? this.opts.kamailio;
    this.sendText(serializeSipMessage(msg), target);
  }

  private viaNode(response: SipMessage): SipPeer | null {
    const via = response.headers.find((h) => h.name === "Via")?.value ?? "";
    const m = /^SIP\/2\.0\/UDP\s+([0-9.]+)(?::(\d+))?([^,]*)/i.exec(via.trim());
    if (!m) return null;
    const received = /;received=([0-9.]+)/i.exec(m[3]);
    const rport = /;rport=(\d+)/i.exec(m[3]);
    const node = { host: received ? received[1] : m[1], port: Number(rport ? rport[1] : (m[2] ?? 5060)) };
    return this.isKamailio(node) ? node : null;
  }

  close(): void {
    this.socket.close();
  }

  /** Whether an address is one of the Kamailio nodes this agent serves (source address: not a header). */
  isKamailio(peer: SipPeer): boolean {
    const same = (p: SipPeer) => p.host === peer.host && p.port === peer.port;
    return same(this.opts.kamailio) || (this.opts.peers ?? []).some(same);
  }

  private sendText(text: string, to: SipPeer): void {
    this.socket.send(text, to.port, to.host);
  }

  private receive(buf: Buffer, from: SipPeer): void {
    if (isKeepAlive(buf)) return;
    let msg: SipMessage;
    try {
      msg = parseSipDatagram(buf);
    } catch (err) {
      const reason = err instanceof SipParseError ? err.message : String(err);
      this.opts.log.warn({ from, reason }, "malformed SIP message");
      const answer = salvagedBadRequest(buf.toString("utf8"), reason);
      if (answer) this.sendText(answer, from);
      return;
    }
    if (!this.isKamailio(from)) {
      this.opts.log.warn({ from, method: msg.method || msg.status }, "SIP message from an address other than Kamailio refused");
      if (msg.kind === "request" && msg.method !== "ACK") {
        this.send(buildResponse(msg, 403, "Forbidden - Only Kamailio May Talk To The Agent"), from);
      }
      return;
    }
    try {
      this.opts.onMessage(msg, from);
    } catch (err) {
      this.opts.log.error({ err, callId: msg.headers.find((h) => h.name === "Call-ID")?.value }, "SIP handler failed");
      if (msg.kind === "request" && msg.method !== "ACK") this.send(buildResponse(msg, 500, "Server Internal Error"), from);
    }
  }
}

/** CRLF keep-alives (RFC 5626) are not messages. */
function isKeepAlive(buf: Buffer): boolean {
  return buf.length <= 4 && /^[\r\n]*$/.test(buf.toString("latin1"));
}

/**
 * A 400 for a request too broken to parse: built from whatever Via/From/To/Call-ID/CSeq lines
 * it has, so the sender can match it. Responses and unaddressable garbage get nothing.
 */
export function salvagedBadRequest(text: string, reason: string): string | null {
  const lines = text.split(/\r?\n/);
  if (/^SIP\/2\.0 /.test(lines[0] ?? "")) return null;
  const pick = (re: RegExp) => lines.filter((l) => re.test(l));
  const via = pick(/^(Via|v)\s*:/i);
  if (via.length === 0) return null;
  const kept = [...via, ...pick(/^(From|f)\s*:/i), ...pick(/^(To|t)\s*:/i), ...pick(/^(Call-ID|i)\s*:/i), ...pick(/^CSeq\s*:/i)];
  const safeReason = reason.replace(/[\r\n]+/g, " ").slice(0, 120);
  return [`SIP/2.0 400 Bad Request - ${safeReason}`, ...kept, "Content-Length: 0", "", ""].join("\r\n");
}
