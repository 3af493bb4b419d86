/**
 * One call's media: an RTP/RTCP socket pair on loopback, wired as the pipeline's first and last
 * stages. In: packets → DTMF or jitter buffer → decode (or concealment) → the call's audio: one
 * frame per 20 ms tick after the jitter buffer's delay for audio that is played on (echo, a
 * bridge), or each frame as soon as it has arrived in order for a listener (`CallAudio.listening`).
 * Out: the call's audio (or silence) → encode → pacer, every 20 ms from the moment the call is
 * answered, because Meta expects the business to send first and hangs up on silence.
 */
import { createSocket, type Socket, type SocketOptions } from "node:dgram";
import { lookup } from "node:dns";
import { isIPv4 } from "node:net";
import { EventEmitter } from "node:events";
import type { Logger } from "pino";
import type { CallAudio } from "../audio/call-audio.js";
import type { PcmFrame } from "../audio/frames.js";
import { createCodec, type AudioCodec } from "../codecs/codec.js";
import { SilencePayload } from "../codecs/silence-payload.js";
import type { NegotiatedMedia } from "../sdp/negotiate.js";
import { DtmfReceiver } from "./dtmf.js";
import { FrameClock, systemClock, type Clock } from "./frame-clock.js";
import { ArrivalJitter } from "./arrival-jitter.js";
import { JitterBuffer, type JitterStats } from "./jitter-buffer.js";
import { isRtcp, parseRtp, RtpParseError } from "./packet.js";
import { buildSenderReport } from "./rtcp.js";
import { RtpPacer } from "./rtp-pacer.js";

const RTCP_INTERVAL_MS = 5000;

/**
 * Sits between the socket and the receive path: tests use it to drop, delay or reorder real
 * datagrams from rtpengine (network impairment), never to make them up.
 */
export type RtpImpairment = (packet: Buffer, deliver: (packet: Buffer) => void) => void;

export interface MediaSessionEvents {
  /** No RTP from the far end for rtpTimeoutMs. */
  timeout: [];
  dtmf: [digit: string];
}

export interface MediaStats {
  packetsIn: number;
  packetsOut: number;
  malformed: number;
  unexpectedPayloadType: number;
  concealed: number;
  /** Wall-clock ms of the first packet sent and the first received (null: none). */
  firstSentAt: number | null;
  firstReceivedAt: number | null;
  jitter: JitterStats;
  /** RFC 3550 interarrival jitter of the caller's audio at the end, ms (null: no audio received). */
  arrivalJitterMs: number | null;
}

export class MediaSession extends EventEmitter<MediaSessionEvents> {
  private codec?: AudioCodec;
  private outbound?: SilencePayload;
  private jitter = new JitterBuffer();
  /** RFC 3550 interarrival jitter of the caller's audio (set up with the codec's clock rate). */
  private arrival: ArrivalJitter | null = null;
  private dtmf = new DtmfReceiver();
  private pacer?: RtpPacer;
  private frameClock?: FrameClock;
  private audio?: CallAudio;
  private media?: NegotiatedMedia;
  private decoded: PcmFrame[] = [];
  private lastPacketAt: number;
  private lastRtcpAt = 0;
  private timedOut = false;
  private stopped = false;
  private readonly counters = { packetsIn: 0, malformed: 0, unexpectedPayloadType: 0, concealed: 0, firstSentAt: null as number | null, firstReceivedAt: null as number | null };

  private constructor(
    private readonly rtp: Socket,
    private readonly rtcp: Socket,
    private readonly log: Logger,
    private readonly rtpTimeoutMs: number,
    private readonly clock: Clock,
    impair?: RtpImpairment,
  ) {
    super();
    this.lastPacketAt = clock.now();
    rtp.on("message", (buf) => (impair ? impair(buf, (b) => this.receive(b)) : this.receive(buf)));
    rtcp.on("message", () => {
      /* RTCP from rtpengine is only counted as life */
      this.lastPacketAt = this.clock.now();
    });
  }

  /** Binds an even RTP port and the next odd one for RTCP, from the range. */
  static async open(opts: {
    host: string;
    ports: { min: number; max: number };
    log: Logger;
    rtpTimeoutMs: number;
    clock?: Clock;
    impair?: RtpImpairment;
  }): Promise<MediaSession> {
    const span = Math.floor((opts.ports.max - opts.ports.min) / 2);
    const start = Math.floor(Math.random() * span);
    for (let i = 0; i < span; i++) {
      const port = opts.ports.min + 2 * ((start + i) % span);
      const rtp = await bind(opts.host, port);
      if (!rtp) continue;
      const rtcp = await bind(opts.host, port + 1);
      if (!rtcp) {
        rtp.close();
        continue;
      }
      return new MediaSession(rtp, rtcp, opts.log, opts.rtpTimeoutMs, opts.clock ?? systemClock, opts.impair);
    }
    throw new Error(`no free RTP port pair in ${opts.ports.min}-${opts.ports.max} on ${opts.host}`);
  }

  get localPort(): number {
    return this.rtp.address().port;
  }

  get codecName(): string | undefined {
    return this.codec?.name;
  }

  /** What the call hears and says from the next frame on (a transfer joins it to another call). */
  setAudio(audio: CallAudio): void {
    this.audio = audio;
  }

  /** Starts both directions; the first packet leaves now. */
  start(media: NegotiatedMedia, audio: CallAudio): void {
    this.media = media;
    this.audio = audio;
    this.codec = createCodec(media.codec.name);
    this.outbound = new SilencePayload(this.codec);
    this.pacer = new RtpPacer({
      payloadType: media.codec.payloadType,
      ticksPerFrame: this.codec.ticksPerFrame,
      send: (packet) => {
        if (!this.stopped) this.rtp.send(packet, media.remotePort, media.remoteAddress);
      },
    });
    this.lastPacketAt = this.clock.now();
    this.frameClock = new FrameClock(() => this.tick(), this.clock);
    this.frameClock.start();
  }

  stop(): void {
    if (this.stopped) return;
    this.frameClock?.stop();
    if (this.pacer && this.media) this.sendRtcp(); // a last report with the final counts
    this.stopped = true;
    this.codec?.close();
    this.rtp.close();
    this.rtcp.close();
  }

  stats(): MediaStats {
    return { ...this.counters, packetsOut: this.pacer?.packetCount ?? 0, jitter: this.jitter.stats, arrivalJitterMs: this.arrival ? Math.round(this.arrival.jitterMs * 100) / 100 : null };
  }

  private receive(buf: Buffer): void {
    if (isRtcp(buf)) return; // rtcp-mux is not negotiated toward the agent; stray RTCP is ignored
    let packet;
    try {
      packet = parseRtp(buf);
    } catch (err) {
      if (!(err instanceof RtpParseError)) throw err;
      this.counters.malformed++;
      return;
    }
    this.lastPacketAt = this.clock.now();
    this.counters.packetsIn++;
    this.counters.firstReceivedAt ??= Date.now();
    const media = this.media;
    if (!media) return;
    if (media.telephoneEvent && packet.payloadType === media.telephoneEvent.payloadType) {
      for (const digit of this.dtmf.push(packet)) {
        this.audio?.onDtmf?.(digit);
        this.emit("dtmf", digit);
      }
      return;
    }
    if (packet.payloadType !== media.codec.payloadType) {
      this.counters.unexpectedPayloadType++;
      return;
    }
    (this.arrival ??= new ArrivalJitter(media.codec.clockRate)).push(this.lastPacketAt, packet.timestamp);
    this.jitter.push(packet);
    if (this.audio?.listening) this.deliverArrived(false);
  }

  /** Every 20 ms: one frame in (if the caller's stream has started), one frame out. */
  private tick(): void {
    if (this.stopped) return;
    const codec = this.codec!;
    const audio = this.audio!;
    if (audio.listening) this.deliverArrived(true);
    else {
      const callerFrame = this.nextCallerFrame(codec);
      if (callerFrame) audio.onCallerFrame(callerFrame);
    }
    this.pacer!.sendFrame(this.outbound!.encode(audio.nextAgentFrame()));
    this.counters.firstSentAt ??= Date.now();

    const now = this.clock.now();
    if (now - this.lastRtcpAt >= RTCP_INTERVAL_MS) this.sendRtcp();
    if (!this.timedOut && now - this.lastPacketAt > this.rtpTimeoutMs) {
      this.timedOut = true;
      this.log.warn({ silentMs: Math.round(now - this.lastPacketAt) }, "RTP timeout");
      this.emit("timeout");
    }
  }

  /**
   * A listener's frames: every packet that has arrived in order, decoded now (a gap the jitter
   * buffer gives up on is concealed). `tick`: called by the 20 ms tick, which times out gaps.
   */
  private deliverArrived(tick: boolean): void {
    if (this.stopped) return;
    const codec = this.codec!; // both set with the media, before any packet is taken (receive, tick)
    const audio = this.audio!;
    for (let frame = this.decoded.shift(); frame; frame = this.decoded.shift()) audio.onCallerFrame(frame);
    for (;;) {
      const out = this.jitter.nextInOrder(tick);
      tick = false;
      if (out.kind === "idle") return;
      if (out.kind === "lost") {
        this.counters.concealed++;
        audio.onCallerFrame(codec.conceal());
        continue;
      }
      for (const frame of codec.decode(out.packet.payload)) audio.onCallerFrame(frame);
    }
  }

  private nextCallerFrame(codec: AudioCodec): PcmFrame | null {
    if (this.decoded.length > 0) return this.decoded.shift()!;
    const out = this.jitter.pop();
    if (out.kind === "idle") return null;
    if (out.kind === "lost") {
      this.counters.concealed++;
      return codec.conceal();
    }
    const frames = codec.decode(out.packet.payload);
    for (let i = 1; i < frames.length; i++) this.decoded.push(frames[i]);
    return frames[0] ?? null;
  }

  private sendRtcp(): void {
    const pacer = this.pacer!;
    const media = this.media!;
    this.lastRtcpAt = this.clock.now();
    const report = buildSenderReport({
      ssrc: pacer.ssrc,
      ntpMs: Date.now(),
      rtpTimestamp: pacer.lastTimestamp,
      packetCount: pacer.packetCount,
      octetCount: pacer.octetCount,
      cname: `agent@${this.rtp.address().address}`,
    });
    this.rtcp.send(report, media.remoteRtcpPort, media.remoteAddress);
  }
}

/**
 * The sockets' address lookup: an IP address (what SDP carries) is its own answer, at once.
 * Node's default (dns.lookup) answers even an IP address on the next tick, through a closure
 * and a queued callback per datagram: per packet sent, half of what the send path left to the
 * garbage collector. A name still goes to dns.lookup.
 */
const lookupAddress: NonNullable<SocketOptions["lookup"]> = (host, options, callback) => {
  if (isIPv4(host)) callback(null, host, 4);
  else lookup(host, options, callback);
};

function bind(host: string, port: number): Promise<Socket | null> {
  return new Promise((done) => {
    const socket = createSocket({ type: "udp4", lookup: lookupAddress });
    socket.once("error", () => {
      socket.close();
      done(null);
    });
    socket.bind(port, host, () => {
      socket.removeAllListeners("error");
      socket.on("error", () => {
        /* ICMP port unreachable while the far end is not up yet: nothing to do */
      });
      done(socket);
    });
  });
}
