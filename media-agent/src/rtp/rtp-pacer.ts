/**
 * Stamps the agent's outgoing packets: sequence numbers +1 and timestamps +one frame per
 * packet (both wrapping), random starting values (RFC 3550 §5.1), the marker bit on the first
 * packet only (one talkspurt: silence is sent, never suppressed). Timing is the FrameClock's.
 */
import { randomBytes } from "node:crypto";
import { serializeRtp } from "./packet.js";

export interface RtpPacerOptions {
  payloadType: number;
  ticksPerFrame: number;
  ssrc?: number;
  initialSequence?: number;
  initialTimestamp?: number;
  send: (packet: Buffer) => void;
}

export class RtpPacer {
  readonly ssrc: number;
  private sequence: number;
  private timestamp: number;
  private sent = 0;
  private octets = 0;

  constructor(private readonly opts: RtpPacerOptions) {
    const random = randomBytes(10);
    this.ssrc = opts.ssrc ?? random.readUInt32BE(0);
    this.sequence = opts.initialSequence ?? random.readUInt16BE(4);
    this.timestamp = opts.initialTimestamp ?? random.readUInt32BE(6);
  }

  sendFrame(payload: Uint8Array): void {
    if (this.sent > 0) {
      this.sequence = (this.sequence + 1) & 0xffff;
      this.timestamp = (this.timestamp + this.opts.ticksPerFrame) >>> 0;
    }
    this.opts.send(
      serializeRtp({
        marker: this.sent === 0,
        payloadType: this.opts.payloadType,
        sequence: this.sequence,
        timestamp: this.timestamp,
        ssrc: this.ssrc,
        payload,
      }),
    );
    this.sent++;
    this.octets += payload.length;
  }

  get packetCount(): number {
    return this.sent;
  }

  get octetCount(): number {
    return this.octets;
  }

  /** The RTP timestamp of the last packet sent (for sender reports). */
  get lastTimestamp(): number {
    return this.timestamp;
  }

  get lastSequence(): number {
    return this.sequence;
  }
}
