/**
 * RFC 4733 telephone-events in: each key press is reported once, when its first end packet
 * arrives (senders repeat the end packet three times), or, if every end packet was lost, when
 * the next event starts.
 */
import type { RtpPacket } from "./packet.js";

const EVENTS = "0123456789*#ABCD";

export function dtmfDigit(event: number): string | null {
  return event < EVENTS.length ? EVENTS[event] : null;
}

export class DtmfReceiver {
  private current: { timestamp: number; event: number; reported: boolean } | null = null;

  /** The digits this packet completes (usually none or one). */
  push(p: RtpPacket): string[] {
    if (p.payload.length < 4) return [];
    const event = p.payload[0];
    const end = (p.payload[1] & 0x80) !== 0;
    const done: Array<string | null> = [];
    if (!this.current || this.current.timestamp !== p.timestamp) {
      if (this.current && !this.current.reported) done.push(dtmfDigit(this.current.event));
      this.current = { timestamp: p.timestamp, event, reported: false };
    }
    if (end && !this.current.reported) {
      this.current.reported = true;
      done.push(dtmfDigit(event));
    }
    return done.filter((d): d is string => d !== null);
  }
}
