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
 *
 * The buffer keeps its own copy of each packet (header and payload bytes) in a slot it reuses,
 * so what it holds allocates nothing: a packet and the datagram it came in die young. Held
 * in a Map, every packet (its object, its payload view, the datagram's ArrayBuffer, the Map's
 * rehashed table) lived through a young-generation collection or two for its 60 ms, was moved
 * to the old generation and left there as garbage: at 200 echo calls those were over half of
 * what each mark-compact (a 4–11 ms pause of the event loop, about once a second) collected.
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

const FREE = -1;

/** One buffered packet: the buffer's copy, and the answer that hands it out, both reused. */
class Slot {
  /** Extended sequence number of the packet held; FREE when none. */
  ext = FREE;
  private bytes = new Uint8Array(0);
  readonly packet: RtpPacket = { marker: false, payloadType: 0, sequence: 0, timestamp: 0, ssrc: 0, csrc: [], payload: this.bytes };
  readonly output: JitterOutput = { kind: "packet", packet: this.packet };

  hold(ext: number, p: RtpPacket): void {
    this.ext = ext;
    const q = this.packet;
    q.marker = p.marker;
    q.payloadType = p.payloadType;
    q.sequence = p.sequence;
    q.timestamp = p.timestamp;
    q.ssrc = p.ssrc;
    q.csrc = p.csrc;
    const length = p.payload.length;
    if (length > this.bytes.length) this.bytes = new Uint8Array(length);
    // A new view only when the length changes: a codec's packets are mostly one size.
    if (q.payload.length !== length || q.payload.buffer !== this.bytes.buffer) q.payload = this.bytes.subarray(0, length);
    q.payload.set(p.payload);
  }
}

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

/**
 * The packet handed out (`pop`, `nextInOrder`) is the buffer's own copy: use it before the next
 * `push`, which may reuse its slot.
 */
export class JitterBuffer {
  /** maxDelayFrames + 1: a push may hold one packet over the maximum until the oldest goes. */
  private readonly slots: Slot[] = [];
  /** Slots holding a packet. */
  private held = 0;
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
    for (let i = 0; i <= this.max; i++) this.slots.push(new Slot());
  }

  get stats(): JitterStats {
    return { ...this.counters };
  }

  push(p: RtpPacket): void {
    if (this.ssrc !== null && p.ssrc !== this.ssrc) {
      this.counters.ssrcChanges++;
      this.clear();
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
    if (this.find(ext)) {
      this.counters.duplicates++;
      return;
    }
    this.counters.received++;
    if (this.highest !== null && ext < this.highest) this.counters.reordered++;
    if (this.highest === null || ext > this.highest) this.highest = ext;
    this.find(FREE)!.hold(ext, p); // held ≤ max < slots.length
    this.held++;
    if (this.held > this.max) {
      const oldest = this.oldest();
      this.release(this.find(oldest)!);
      this.counters.overflow++;
      if (this.next !== null && this.next <= oldest) this.next = oldest + 1;
    }
  }

  pop(): JitterOutput {
    if (this.buffering) {
      if (this.held < this.target) return IDLE;
      this.buffering = false;
      if (this.next === null) this.next = this.oldest();
    }
    if (this.held === 0) {
      this.buffering = true;
      return IDLE;
    }
    this.drainLastingExcess();
    const seq = this.next!;
    this.next = seq + 1;
    const slot = this.find(seq);
    if (!slot) {
      this.counters.lost++;
      return LOST;
    }
    this.release(slot);
    this.counters.played++;
    return slot.output;
  }

  /**
   * For a listener: the next packet in sequence as soon as it has arrived ("idle" while it has
   * not). A missing packet is waited for until `target` later packets have arrived or `target`
   * ticks have passed (`tick`: the caller's 20 ms tick, once per tick), then it is "lost"; a
   * packet arriving after that is late. The stream starts at its first packet.
   */
  nextInOrder(tick = false): JitterOutput {
    if (this.next === null) {
      if (this.held === 0) return IDLE;
      this.next = this.oldest();
    }
    this.buffering = false; // a switch to playout (pop) goes on from here
    const seq = this.next;
    const slot = this.find(seq);
    if (slot) {
      this.release(slot);
      this.next = seq + 1;
      this.gapTicks = 0;
      this.counters.played++;
      return slot.output;
    }
    if (this.held === 0) {
      this.gapTicks = 0;
      return IDLE;
    }
    if (tick) this.gapTicks++;
    if (this.highest! - seq < this.target && this.gapTicks < this.target) return IDLE;
    const resumeAt = this.oldest();
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
    for (const slot of this.slots) {
      if (slot.ext !== FREE && slot.ext >= this.next! && slot.ext < keepFrom) {
        this.release(slot);
        this.counters.drained++;
      }
    }
    this.next = keepFrom;
    this.excessPops = 0;
  }

  /** The slot holding `ext` (FREE: a free slot), or null. A scan: there are maxDelayFrames + 1 of them. */
  private find(ext: number): Slot | null {
    for (const slot of this.slots) if (slot.ext === ext) return slot;
    return null;
  }

  /** The lowest extended sequence number held (there is one: callers check `held` first). */
  private oldest(): number {
    let lowest = Infinity;
    for (const slot of this.slots) if (slot.ext !== FREE && slot.ext < lowest) lowest = slot.ext;
    return lowest;
  }

  private release(slot: Slot): void {
    slot.ext = FREE;
    this.held--;
  }

  private clear(): void {
    for (const slot of this.slots) slot.ext = FREE;
    this.held = 0;
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
