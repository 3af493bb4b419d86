/**
 * The agent's internal audio format: 16 kHz mono signed 16-bit PCM in 20 ms frames. Every codec
 * decodes into it and encodes from it, and the voice pipeline only ever sees these frames.
 */
export const SAMPLE_RATE = 16000;
export const FRAME_MS = 20;
export const FRAME_SAMPLES = (SAMPLE_RATE * FRAME_MS) / 1000;

/** One 20 ms frame: FRAME_SAMPLES samples of 16 kHz mono PCM. */
export type PcmFrame = Int16Array;

export function silentFrame(): PcmFrame {
  return new Int16Array(FRAME_SAMPLES);
}

/**
 * Frames per FrameSlab block: 160 ms of audio, 5 KiB. Blocks of 64 frames outlived the young
 * generation (kept alive by one frame in the echo's queue) and brought mark-compacts every second.
 */
const SLAB_FRAMES = 8;

/**
 * New frames for a call's decoder, carved out of one block per SLAB_FRAMES frames. Every
 * decoded frame is a new array (the pipeline keeps them: echo's queue, the STT's utterance),
 * but each ArrayBuffer of its own is freed one by one by the young-generation GC while the
 * event loop waits: at 200 calls that sweep was half of every collection's pause. A block
 * lives as long as any of its frames; the frames are ordinary Int16Arrays (views: use byteOffset).
 */
export class FrameSlab {
  private block = new Int16Array(0);
  private used = 0;

  /** A new silent frame. */
  take(): PcmFrame {
    if (this.used === this.block.length) {
      this.block = new Int16Array(FRAME_SAMPLES * SLAB_FRAMES);
      this.used = 0;
    }
    const frame = this.block.subarray(this.used, this.used + FRAME_SAMPLES);
    this.used += FRAME_SAMPLES;
    return frame;
  }
}

/** Frames (or any sample runs) joined into one run. */
export function concatSamples(parts: Int16Array[]): Int16Array {
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A Call-ID as a file name (recordings, traces). */
export function callFileName(callId: string): string {
  return callId.replace(/[^A-Za-z0-9._-]/g, "_");
}

/** `scratch` as `length` elements (itself when it is that long: a view is an object too), or null when it is too short. */
export function fitted<T extends Uint8Array | Int16Array>(scratch: T | undefined, length: number): T | null {
  if (!scratch || scratch.length < length) return null;
  return scratch.length === length ? scratch : (scratch.subarray(0, length) as T);
}
