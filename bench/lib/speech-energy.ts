/**
 * "Is there speech in this 20 ms frame?" as a listener would judge it: the frame's level against
 * a fixed floor. Used on the caller's own prompts (where their speech ends) and on the agent's
 * decoded audio as it arrives (when it becomes audible, when it stops). Decoded silence and
 * comfort noise stay far below the floor; espeak-ng speech is 20–40 dB above it, and the quiet
 * gaps between its words are shorter than any span this is used to find.
 */
import type { PcmFrame } from "../../media-agent/src/audio/frames.js";
import { createCodec, type CodecName } from "../../media-agent/src/codecs/codec.js";

/** The floor: -40 dBFS, the level the agent's EnergyVad baseline also uses. */
export const SPEECH_FLOOR_DBFS = -40;

export function frameDbfs(frame: PcmFrame): number {
  let energy = 0;
  for (const s of frame) energy += s * s;
  return 10 * Math.log10(energy / Math.max(1, frame.length) / (32768 * 32768) + 1e-12);
}

export function hasSpeechEnergy(frame: PcmFrame): boolean {
  return frameDbfs(frame) > SPEECH_FLOOR_DBFS;
}

/**
 * The agent's audio as it reaches the caller: each payload decoded in arrival order (loopback
 * does not reorder), the arrival time of every packet with speech energy kept in order.
 */
export class AudibleArrivals {
  private readonly decoder;
  /** performance.now() of each audible packet, ascending. */
  readonly times: number[] = [];
  packets = 0;

  constructor(codec: CodecName) {
    this.decoder = createCodec(codec);
  }

  push(payload: Uint8Array, arrivedAt: number): void {
    this.packets++;
    if (this.decoder.decode(payload).some(hasSpeechEnergy)) this.times.push(arrivedAt);
  }

  /** The first audible arrival after `t`, or null. */
  firstAfter(t: number): number | null {
    const i = this.indexAfter(t);
    return i < this.times.length ? this.times[i] : null;
  }

  /** The last audible arrival in [from, to), or null. */
  lastIn(from: number, to: number): number | null {
    const i = this.indexAfter(to - 1e-9) - 1;
    return i >= 0 && this.times[i] >= from ? this.times[i] : null;
  }

  /** Whether anything audible arrived in [from, to). */
  anyIn(from: number, to: number): boolean {
    return this.lastIn(from, to) !== null;
  }

  get last(): number | null {
    return this.times.length ? this.times[this.times.length - 1] : null;
  }

  /** Index of the first time > t (binary search). */
  private indexAfter(t: number): number {
    let lo = 0;
    let hi = this.times.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.times[mid] > t) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}
