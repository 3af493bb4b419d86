/**
 * RFC 3550 §6.4.1 interarrival jitter of the caller's stream: for consecutive packets, D is the
 * difference of their arrival spacing and their RTP timestamp spacing, and J += (|D| − J) / 16.
 * What RTCP receivers report, in ms here; the metrics take each call's last estimate.
 */
export class ArrivalJitter {
  private last: { arrivalMs: number; timestamp: number } | null = null;
  /** The current estimate, ms. */
  jitterMs = 0;

  constructor(private readonly clockRate: number) {}

  push(arrivalMs: number, timestamp: number): void {
    const last = this.last;
    this.last = { arrivalMs, timestamp };
    if (!last) return;
    // RTP timestamps wrap at 2^32: the difference as a signed 32-bit number.
    const tsDiffMs = (((timestamp - last.timestamp) | 0) * 1000) / this.clockRate;
    const d = arrivalMs - last.arrivalMs - tsDiffMs;
    this.jitterMs += (Math.abs(d) - this.jitterMs) / 16;
  }
}
