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

  /** Returns the digit when an event completes, null otherwise. */
  push(p: RtpPacket): string | null {
    if (p.payload.length < 4) return null;
    const event = p.payload[0];
    const end = (p.payload[1] & 0x80) !== 0;
    let unreported: string | null = null;
    if (!this.current || this.current.timestamp !== p.timestamp) {
      if (this.current && !this.current.reported) unreported = dtmfDigit(this.current.event);
      this.current = { timestamp: p.timestamp, event, reported: false };
    }
    if (end && !this.current.reported) {
      this.current.reported = true;
      return unreported ?? dtmfDigit(event);
    }
    return unreported;
  }
}
