/**
 * The encode stage's shortcut for silence. A call listens far more than it speaks, and while
 * the agent has nothing to say every tick used to encode a frame of zeros: for Opus ~90–140 µs
 * per call per 20 ms, most of a voice call's event-loop time. Once a codec has been fed a few
 * silent frames its filters and predictors have decayed and its payload for silence stops
 * changing, so from then on the last payload is sent again. The far end decodes the same
 * silence it would have; when audio resumes the codec continues from its settled silent state.
 */
import { silentFrame, type PcmFrame } from "../audio/frames.js";
import type { AudioCodec } from "./codec.js";

/** Silent frames encoded for real before the payload is reused (60 ms: longer than any tail). */
export const SILENCE_SETTLE_FRAMES = 3;

export class SilencePayload {
  private silentRun = 0;
  private settled: Uint8Array | null = null;

  constructor(private readonly codec: AudioCodec) {}

  /** The payload for this tick: `frame` encoded, or silence when there is nothing to play. */
  encode(frame: PcmFrame | null): Uint8Array {
    if (frame) {
      this.silentRun = 0;
      this.settled = null;
      return this.codec.encode(frame);
    }
    if (this.settled) return this.settled;
    const payload = this.codec.encode(silentFrame());
    // Copied: an encoder may hand out a view of a buffer it reuses (@evan/opus does).
    if (++this.silentRun === SILENCE_SETTLE_FRAMES) this.settled = new Uint8Array(payload);
    return payload;
  }
}
