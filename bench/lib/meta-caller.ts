/**
 * Meta's edge calling us, for the benchmarks: one TLS connection from 127.0.0.2 (in
 * WA_META_PREFIXES) to our Kamailio's TLS listener, carrying any number of user-initiated
 * calls as Meta sends them (../shared/docs/whatsapp-sip.md): an INVITE with Meta's headers and
 * an SDES-SRTP Opus offer (RTP/SAVP, AES_CM_128_HMAC_SHA1_80), ACK on the 200, SRTP media both
 * ways on a UDP socket per call (keys: ours in the offer, the answerer's in the 200), BYE.
 * A BYE from our side (the agent hanging up) is answered as Meta would. An INVITE given up (no
 * final answer in time) is CANCELled, and a 200 that still comes is ACKed and ended with BYE, so
 * a slow call leaves nothing behind in Kamailio, rtpengine or the agent.
 *
 *   const edge = await MetaEdge.connect({ target: tls });
 *   const call = await edge.call({ business: "+15550001111" });
 *   call.onRtp = (payload, header, arrivedAt) => …;   // authenticated and decrypted
 *   call.sendRtp(opusFrame);                             // the caller paces it, 20 ms a frame
 *   await call.hangUp();
 */
import { createSocket, type Socket } from "node:dgram";
import { Encoder } from "@evan/opus";
import { parseRtp, serializeRtp } from "../../media-agent/src/rtp/packet.js";
import { parseSdp } from "../../media-agent/src/sdp/sdp.js";
import { hdr, hdrs, META_IP, metaSdp, newId, replyTo, request, tlsClient, txKey, type Msg, type SipClient } from "../native/stand.js";
import { parseCryptoLine, newSrtpKeys, SrtpSession } from "./srtp.js";
import { twoToneFrames } from "./tone.js";

/** Opus in Meta's offer and in what comes back. */
export const OPUS_PAYLOAD_TYPE = 111;
/** RTP clock ticks per 20 ms frame (Opus: 48 kHz clock). */
const TICKS_PER_FRAME = 960;

/** A call that did not get its 200 (or its BYE no 200): `status` is the SIP status, 0 for a timeout. */
export class CallFailed extends Error {
  override name = "CallFailed";
  constructor(
    message: string,
    readonly status: number,
    readonly callId?: string,
  ) {
    super(message);
  }
}

export interface RtpHeader {
  sequence: number;
  timestamp: number;
  payloadType: number;
  marker: boolean;
  ssrc: number;
}

export interface MediaStats {
  /** SRTP packets sent. */
  sent: number;
  /** Packets that authenticated and decrypted with the answer's keys. */
  received: number;
  /** Packets whose SRTP tag did not verify (wrong keys, corruption). */
  authFailures: number;
  /** Datagrams that are not SRTP at all (RTCP, junk). */
  otherPackets: number;
  /**
   * Datagrams from another address than the answer's (e.g. a relay port of an earlier call that
   * had this local port and is not torn down yet): not this call's media, not counted above.
   */
  strayPackets: number;
}

export interface MetaEdgeOptions {
  /** Our Kamailio's TLS listener. */
  target: { host: string; port: number };
  /** Meta's edge's address (must be in WA_META_PREFIXES); default 127.0.0.2. */
  localAddress?: string;
  /** How long a request waits for its final answer. */
  timeoutMs?: number;
}

interface Pending {
  done: (m: Msg) => void;
  timer: NodeJS.Timeout;
}

/** One TLS connection as Meta's edge: places calls and answers what our side sends in their dialogs. */
export class MetaEdge {
  private readonly pending = new Map<string, Pending>();
  private readonly calls = new Map<string, MetaCall>();
  /** INVITEs not (yet) answered with 200, by Call-ID: what CANCEL and the ACK of a non-2xx need. */
  private readonly invites = new Map<string, { requestUri: string; via: string; from: string; to: string }>();
  /** INVITEs given up (no answer in time) and cancelled; a 200 that still comes is ACKed and ended with BYE. */
  readonly givenUp = { cancelled: 0, answeredLateAndEnded: 0 };

  private constructor(
    private readonly sip: SipClient,
    private readonly opts: Required<MetaEdgeOptions>,
  ) {
    sip.onMessage = (m) => (m.status ? this.onResponse(m) : this.onRequest(m));
  }

  static async connect(opts: MetaEdgeOptions): Promise<MetaEdge> {
    const full = { localAddress: META_IP, timeoutMs: 5000, ...opts };
    return new MetaEdge(await tlsClient(full.localAddress, full.target), full);
  }

  /** Calls in progress on this connection. */
  get activeCalls(): number {
    return this.calls.size;
  }

  /**
   * INVITE → 200 → ACK for `business` (the Request-URI's user). Resolves once the ACK is sent;
   * rejects with CallFailed on another final status or no answer in time.
   */
  async call(p: { business: string; caller?: string }): Promise<MetaCall> {
    const rtp = createSocket("udp4");
    await new Promise<void>((done) => rtp.bind(0, this.opts.localAddress, () => done()));
    const keys = newSrtpKeys();
    const callId = `outgoing:wacid.${newId()}${newId()}`;
    const caller = p.caller ?? `+1555${String(1000000 + Math.floor(Math.random() * 8999999))}`;
    const from = `"${caller.slice(1)}" <sip:${caller}@wa.meta.vc>;tag=${newId()}`;
    const { host, port } = this.opts.target;
    const local = this.sip.local;
    const started = performance.now();
    const invite = { requestUri: `sip:${p.business}@${host}:${port};transport=tls`, via: this.via(), from, to: `<sip:${p.business}@sip.example.com>` };
    let ok: Msg;
    try {
      const answer = this.transaction(callId, "INVITE");
      this.invites.set(callId, invite);
      this.sip.send(request("INVITE", invite.requestUri, [
        ["Via", invite.via], ["Max-Forwards", "70"], ["From", from], ["To", invite.to],
        ["Call-ID", callId], ["CSeq", "1 INVITE"], ["Contact", `<sip:${caller}@${local.host}:${local.port};transport=tls;ob>;isfocus`],
        ["User-Agent", "Facebook SipGateway"], ["Allow", "INVITE, ACK, BYE, CANCEL, NOTIFY, OPTIONS"],
        ["X-FB-External-Domain", "wa.meta.vc"], ["x-wa-meta-wacid", newId()], ["Content-Type", "application/sdp"],
      ], metaSdp(local.host, rtp.address().port, keys)));
      ok = await answer.catch((err: CallFailed) => {
        // As a UAC that gives up: CANCEL (a 200 that crosses it is ACKed and ended with BYE).
        this.sip.send(request("CANCEL", invite.requestUri, [
          ["Via", invite.via], ["Max-Forwards", "70"], ["From", from], ["To", invite.to], ["Call-ID", callId], ["CSeq", "1 CANCEL"],
        ]));
        this.givenUp.cancelled++;
        throw err;
      });
      if (ok.status !== 200) throw new CallFailed(`INVITE answered ${ok.status} ${ok.reason}`, ok.status, callId);
      this.invites.delete(callId);
    } catch (err) {
      rtp.close();
      throw err;
    }
    const answerMs = performance.now() - started;
    let call: MetaCall;
    try {
      call = new MetaCall(this, rtp, callId, ok, keys, answerMs);
    } catch (err) {
      rtp.close();
      throw err;
    }
    this.calls.set(callId, call);
    call.ack();
    void call.ended.then(() => this.calls.delete(callId));
    return call;
  }

  close(): void {
    for (const call of this.calls.values()) call.close("connection closed");
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
    this.sip.close();
  }

  /** @internal The final answer to the request `method` of call `callId`. */
  transaction(callId: string, method: string): Promise<Msg> {
    return new Promise((done, fail) => {
      const key = `${callId} ${method}`;
      const timer = setTimeout(() => {
        this.pending.delete(key);
        fail(new CallFailed(`no final answer to ${method} within ${this.opts.timeoutMs} ms`, 0, callId));
      }, this.opts.timeoutMs);
      this.pending.set(key, { done, timer });
    });
  }

  /** @internal */
  send(text: string): void {
    this.sip.send(text);
  }

  /** @internal A Via for a new request from this connection. */
  via(): string {
    return `SIP/2.0/TLS ${this.sip.local.host}:${this.sip.local.port};branch=z9hG4bK-${newId()};rport`;
  }

  private onResponse(m: Msg): void {
    if (m.status < 200) return;
    const key = txKey(m);
    const callId = hdr(m, "call-id");
    const invite = key.endsWith(" INVITE") ? this.invites.get(callId) : undefined;
    if (invite && m.status > 200) {
      // A non-2xx final answer is ACKed within its transaction (RFC 3261 17.1.1.3).
      this.invites.delete(callId);
      this.sip.send(request("ACK", invite.requestUri, [
        ["Via", invite.via], ["Max-Forwards", "70"], ["From", invite.from], ["To", hdr(m, "to")], ["Call-ID", callId], ["CSeq", "1 ACK"],
      ]));
    }
    const waiting = this.pending.get(key);
    if (waiting) {
      this.pending.delete(key);
      clearTimeout(waiting.timer);
      waiting.done(m);
    } else if (m.status === 200 && invite) {
      // Answered after we gave up: the dialog exists on the far side, so ACK it and end it.
      this.invites.delete(callId);
      this.sip.send(inDialogRequest(this, m, "ACK", 1));
      this.sip.send(inDialogRequest(this, m, "BYE", 2));
      this.givenUp.answeredLateAndEnded++;
    } else if (m.status === 200 && key.endsWith(" INVITE")) {
      // A retransmitted 200 (our ACK was late or lost on the way through): ACK it again.
      this.calls.get(callId)?.ack();
    }
  }

  private onRequest(m: Msg): void {
    if (m.method === "ACK") return;
    const call = this.calls.get(hdr(m, "call-id"));
    if (m.method === "BYE" && call) {
      this.sip.send(replyTo(m, 200, "OK", ""));
      call.close("remote BYE");
    } else if (m.method === "OPTIONS") this.sip.send(replyTo(m, 200, "OK", newId()));
    // Meta answers re-INVITE and UPDATE with 500 (whatsapp-sip.md, "Dialog rules").
    else this.sip.send(replyTo(m, call ? 500 : 481, call ? "Server Internal Error" : "Call/Transaction Does Not Exist", newId()));
  }
}

/**
 * A request within the dialog a 200 to our INVITE set up: to its Contact, along its
 * Record-Route (reversed), From (our tag) and To (theirs) as the 200 has them.
 */
function inDialogRequest(edge: MetaEdge, ok: Msg, method: string, cseq: number): string {
  const routes = hdrs(ok, "record-route").flatMap((v) => v.split(/,(?=\s*<)/)).map((r) => r.trim()).reverse();
  const target = /<([^>]+)>/.exec(hdr(ok, "contact"))?.[1];
  if (!target) throw new CallFailed("the 200 has no Contact", 200, hdr(ok, "call-id"));
  return request(method, target, [
    ["Via", edge.via()], ["Max-Forwards", "70"], ...(routes.length ? [["Route", routes.join(", ")] as [string, string]] : []),
    ["From", hdr(ok, "from")], ["To", hdr(ok, "to")], ["Call-ID", hdr(ok, "call-id")], ["CSeq", `${cseq} ${method}`],
  ]);
}

/** One answered call: its dialog and its SRTP media. */
export class MetaCall {
  /** Authenticated, decrypted packets from the far side; arrivedAt is performance.now() on arrival. */
  onRtp: (payload: Buffer, header: RtpHeader, arrivedAt: number) => void = () => {};
  readonly stats: MediaStats = { sent: 0, received: 0, authFailures: 0, otherPackets: 0, strayPackets: 0 };
  /** Resolves with why the call ended: "local BYE", "remote BYE", or how it was cut short. */
  readonly ended: Promise<string>;
  /** Where the answer's SDP says media goes (rtpengine's SRTP side). */
  readonly remote: { host: string; port: number };
  /** The SRTP suite's keys of the answer, for what arrives. */
  private readonly inbound: SrtpSession;
  private readonly outbound: SrtpSession;
  private cseq = 1;
  private sequence = Math.floor(Math.random() * 0x10000);
  private timestamp = Math.floor(Math.random() * 2 ** 32);
  private readonly ssrc = Math.floor(Math.random() * 2 ** 32);
  private endedWith: string | null = null;
  private finish!: (reason: string) => void;

  /** @internal Built by MetaEdge.call from the 200. */
  constructor(
    private readonly edge: MetaEdge,
    private readonly rtp: Socket,
    readonly callId: string,
    private readonly ok: Msg,
    ourKeys: ReturnType<typeof newSrtpKeys>,
    /** INVITE → 200, ms. */
    readonly answerMs: number,
  ) {
    const sdp = parseSdp(ok.body);
    const audio = sdp.media.find((m) => m.type === "audio");
    const host = audio?.connection ?? sdp.connection;
    if (!audio || !host || audio.port === 0) throw new CallFailed(`the 200's SDP has no usable audio stream: ${ok.body.replace(/\r\n/g, " | ")}`, 200);
    this.remote = { host, port: audio.port };
    this.inbound = new SrtpSession(parseCryptoLine(ok.body));
    this.outbound = new SrtpSession(ourKeys);
    inDialogRequest(edge, ok, "ACK", 1); // fails here, before anything is sent, when the 200 cannot carry a dialog
    this.ended = new Promise((done) => (this.finish = done));
    rtp.on("message", (datagram, from) => {
      const arrivedAt = performance.now();
      if (from.port !== this.remote.port || from.address !== this.remote.host) this.stats.strayPackets++;
      else this.onDatagram(datagram, arrivedAt);
    });
    rtp.on("error", () => {
      /* ICMP port unreachable after rtpengine closed the call's ports */
    });
  }

  /** Null while the call is up; else why it ended. */
  get endReason(): string | null {
    return this.endedWith;
  }

  /** One 20 ms frame: RTP header (+960 ticks), SRTP, to the answered address. A no-op once ended. */
  sendRtp(payload: Uint8Array, opts: { marker?: boolean } = {}): void {
    if (this.endedWith) return;
    const packet = serializeRtp({ marker: opts.marker ?? false, payloadType: OPUS_PAYLOAD_TYPE, sequence: this.sequence, timestamp: this.timestamp, ssrc: this.ssrc, payload });
    this.sequence = (this.sequence + 1) & 0xffff;
    this.timestamp = (this.timestamp + TICKS_PER_FRAME) >>> 0;
    this.rtp.send(this.outbound.protect(packet), this.remote.port, this.remote.host);
    this.stats.sent++;
  }

  /** BYE along the dialog's route; resolves on its 200 (rejects with CallFailed otherwise). */
  async hangUp(): Promise<void> {
    if (this.endedWith) throw new CallFailed(`the call already ended (${this.endedWith})`, 0);
    const answer = this.edge.transaction(this.callId, "BYE");
    this.edge.send(inDialogRequest(this.edge, this.ok, "BYE", ++this.cseq));
    try {
      const m = await answer;
      if (m.status !== 200) throw new CallFailed(`BYE answered ${m.status} ${m.reason}`, m.status);
      this.close("local BYE");
    } catch (err) {
      this.close(`BYE failed: ${(err as Error).message}`);
      throw err;
    }
  }

  /** @internal */
  ack(): void {
    this.edge.send(inDialogRequest(this.edge, this.ok, "ACK", 1));
  }

  /** @internal Ends the call here (no SIP): closes its UDP socket. */
  close(reason: string): void {
    if (this.endedWith) return;
    this.endedWith = reason;
    this.rtp.close();
    this.finish(reason);
  }

  private onDatagram(datagram: Buffer, arrivedAt: number): void {
    let clear: Buffer;
    try {
      clear = this.inbound.unprotect(datagram);
    } catch (err) {
      if (/auth tag/.test((err as Error).message)) this.stats.authFailures++;
      else this.stats.otherPackets++;
      return;
    }
    this.stats.received++;
    const p = parseRtp(clear);
    this.onRtp(Buffer.from(p.payload.buffer, p.payload.byteOffset, p.payload.byteLength), { sequence: p.sequence, timestamp: p.timestamp, payloadType: p.payloadType, marker: p.marker, ssrc: p.ssrc }, arrivedAt);
  }
}

/**
 * `frames` × 20 ms of the benchmarks' two-tone signal (bench/lib/tone.ts) as Opus packets the
 * way Meta's clients send them: mono 16 kHz content, 20 kbit/s. Encoded once; a benchmark sends
 * them in a loop.
 */
export function opusToneFrames(frames: number): Uint8Array[] {
  const encoder = new Encoder({ channels: 1, sample_rate: 16000, application: "voip" });
  encoder.bitrate = 20000;
  return twoToneFrames(frames).map((pcm) => encoder.encode(pcm).slice());
}
