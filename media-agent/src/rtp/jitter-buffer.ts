/**
 * Orders the caller's packets by sequence number (wraparound-aware) and plays one out per
 * 20 ms tick after a target delay: reordered packets are put back in place, duplicates and
 * late packets dropped, a gap becomes "lost" (the decoder conceals it), an SSRC change
 * restarts the stream. Empty → "idle" until it has refilled to the target (re-buffering).
 * Playing one packet per tick, the buffer would never shrink again after a burst (packets held
 * back by the network or by a stall of our own event loop, when the frame clock skipped ticks):
 * every later word of the caller would reach the VAD that much later, for the rest of the call.
 * So an excess over the target that has lasted DRAIN_AFTER_POPS ticks is dropped (oldest first,
 * counted as "drained"): a few tens of ms of audio once, instead of added delay for good.
 *
 * A listener (the voice pipeline: its VAD and STT need the audio in order, not evenly spaced)
 * takes packets with `nextInOrder()` instead: each as soon as it and all before it are there,
 * without the playout delay, which would make every turn and every barge-in that much later.
 */
import type { RtpPacket } from "./packet.js";

/** Frames over the target tolerated without draining (ordinary jitter). */
const DRAIN_SLACK_FRAMES = 2;
/** How long (ticks of 20 ms) the excess must last before it is dropped: 0.5 s. */
const DRAIN_AFTER_POPS = 25;

export type JitterOutput = { kind: "packet"; packet: RtpPacket } | { readonly kind: "lost" } | { readonly kind: "idle" };

// Shared answers: pop() runs every tick of every call.
const IDLE: JitterOutput = Object.freeze({ kind: "idle" });
const LOST: JitterOutput = Object.freeze({ kind: "lost" });

export interface JitterStats {
  received: number;
  played: number;
  lost: number;
  late: number;
  duplicates: number;
  reordered: number;
  overflow: number;
  /** Dropped to bring a lasting excess back to the target depth. */
  drained: number;
  ssrcChanges: number;
}

export class JitterBuffer {
  private readonly packets = new Map<number, RtpPacket>();
  private ssrc: number | null = null;
  /** Extended sequence number of the next packet to play; null before playout starts. */
  private next: number | null = null;
  /** Highest extended sequence number seen (the reference for unwrapping). */
  private highest: number | null = null;
  private buffering = true;
  /** Consecutive pops with more than target + slack frames buffered. */
  private excessPops = 0;
  /** Ticks a listener has waited on the gap at `next` (nextInOrder). */
  private gapTicks = 0;
  private readonly counters: JitterStats = { received: 0, played: 0, lost: 0, late: 0, duplicates: 0, reordered: 0, overflow: 0, drained: 0, ssrcChanges: 0 };
  private readonly target: number;
  private readonly max: number;

  constructor(opts: { targetDelayFrames?: number; maxDelayFrames?: number } = {}) {
    this.target = opts.targetDelayFrames ?? 3;
    this.max = opts.maxDelayFrames ?? 15;
  }

  get stats(): JitterStats {
    return { ...this.counters };
  }

  push(p: RtpPacket): void {
    if (this.ssrc !== null && p.ssrc !== this.ssrc) {
      this.counters.ssrcChanges++;
      this.packets.clear();
      this.next = null;
      this.highest = null;
      this.buffering = true;
    }
    this.ssrc = p.ssrc;
    const ext = this.extend(p.sequence);
    if ((this.next !== null && ext < this.next)) {
      this.counters.late++;
      return;
    }
    if (this.packets.has(ext)) {
      this.counters.duplicates++;
      return;
    }
    this.counters.received++;
    if (this.highest !== null && ext < this.highest) this.counters.reordered++;
    if (this.highest === null || ext > this.highest) this.highest = ext;
    this.packets.set(ext, p);
    while (this.packets.size > this.max) {
      const oldest = Math.min(...this.packets.keys());
      this.packets.delete(oldest);
      this.counters.overflow++;
      if (this.next !== null && this.next <= oldest) this.next = oldest + 1;
    }
  }

  pop(): JitterOutput {
    if (this.buffering) {
      if (this.packets.size < this.target) return IDLE;
      this.buffering = false;
      if (this.next === null) this.next = Math.min(...this.packets.keys());
    }
    if (this.packets.size === 0) {
      this.buffering = true;
      return IDLE;
    }
    this.drainLastingExcess();
    const seq = this.next!;
    this.next = seq + 1;
    const packet = this.packets.get(seq);
    if (!packet) {
      this.counters.lost++;
      return LOST;
    }
    this.packets.delete(seq);
    this.counters.played++;
    return { kind: "packet", packet };
  }

  /**
   * For a listener: the next packet in sequence as soon as it has arrived ("idle" while it has
   * not). A missing packet is waited for until `target` later packets have arrived or `target`
   * ticks have passed (`tick`: the caller's 20 ms tick, once per tick), then it is "lost"; a
   * packet arriving after that is late. The stream starts at its first packet.
   */
  nextInOrder(tick = false): JitterOutput {
    if (this.next === null) {
      if (this.packets.size === 0) return IDLE;
      this.next = Math.min(...this.packets.keys());
    }
    this.buffering = false; // a switch to playout (pop) goes on from here
    const seq = this.next;
    const packet = this.packets.get(seq);
    if (packet) {
      this.packets.delete(seq);
      this.next = seq + 1;
      this.gapTicks = 0;
      this.counters.played++;
      return { kind: "packet", packet };
    }
    if (this.packets.size === 0) {
      this.gapTicks = 0;
      return IDLE;
    }
    if (tick) this.gapTicks++;
    if (this.highest! - seq < this.target && this.gapTicks < this.target) return IDLE;
    const resumeAt = Math.min(...this.packets.keys());
    if (resumeAt - seq > this.max) {
      // A jump, not a burst of losses (a far end that restarted its numbering, or a forged
      // sequence number): one concealed frame, not one per missing number.
      this.counters.lost += resumeAt - seq;
      this.next = resumeAt;
      return LOST;
    }
    // Given up: the rest of a longer gap follows at once (gapTicks stays until a packet comes).
    this.next = seq + 1;
    this.counters.lost++;
    return LOST;
  }

  private drainLastingExcess(): void {
    const depth = this.highest! - this.next! + 1;
    if (depth <= this.target + DRAIN_SLACK_FRAMES) {
      this.excessPops = 0;
      return;
    }
    if (++this.excessPops < DRAIN_AFTER_POPS) return;
    const keepFrom = this.highest! - this.target + 1;
    for (let seq = this.next!; seq < keepFrom; seq++) if (this.packets.delete(seq)) this.counters.drained++;
    this.next = keepFrom;
    this.excessPops = 0;
  }

  /** 16-bit sequence → extended sequence closest to the highest seen. */
  private extend(sequence: number): number {
    if (this.highest === null) return sequence + 65536; // headroom for early reordering
    const base = this.highest - (this.highest & 0xffff);
    let ext = base + sequence;
    if (ext - this.highest > 32768) ext -= 65536;
    else if (this.highest - ext > 32768) ext += 65536;
    return ext;
  }
}
