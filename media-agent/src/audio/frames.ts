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

/**
 * The last `capacity` frames a stage must keep for a while (the echo's delay, the turn
 * detector's pre-roll), as copies in one block of its own. Kept as the frames handed over, they
 * would outlive V8's young generation (a scavenge every ~100 ms promotes what has lived
 * through two) and become old-generation garbage, collected by the mark-compacts that pause the
 * event loop for every call. A frame pushed is copied; a frame taken out (shift, at) is a view
 * of the ring, valid until `capacity` more frames have been pushed.
 */
export class FrameRing {
  private readonly slots: PcmFrame[] = [];
  private oldest = 0;
  private held = 0;

  constructor(readonly capacity: number) {
    const block = new Int16Array(FRAME_SAMPLES * capacity);
    for (let at = 0; at < block.length; at += FRAME_SAMPLES) this.slots.push(block.subarray(at, at + FRAME_SAMPLES));
  }

  get length(): number {
    return this.held;
  }

  /** Copies `frame` in; when the ring is full, the oldest frame goes. */
  push(frame: PcmFrame): void {
    if (this.held === this.capacity) this.drop();
    this.slots[(this.oldest + this.held) % this.capacity].set(frame);
    this.held++;
  }

  /** The oldest frame, taken out; null when empty. */
  shift(): PcmFrame | null {
    if (this.held === 0) return null;
    const frame = this.slots[this.oldest];
    this.drop();
    return frame;
  }

  /** The i-th frame, oldest first. */
  at(i: number): PcmFrame {
    return this.slots[(this.oldest + i) % this.capacity];
  }

  clear(): void {
    this.held = 0;
  }

  private drop(): void {
    this.oldest = (this.oldest + 1) % this.capacity;
    this.held--;
  }
}

/** A SampleRun's room once something is appended, and again after a long run: 2 s. */
const RUN_START_SAMPLES = SAMPLE_RATE * 2;
/** What a SampleRun keeps of its room after `clear`: 10 s (a call need not hold its longest turn's room). */
const RUN_KEEP_SAMPLES = SAMPLE_RATE * 10;
const NO_ROOM = new Int16Array(0);

/**
 * Samples appended frame by frame into one array of its own that grows by doubling (a turn's
 * audio while the caller speaks): one long-lived object instead of a kept frame per 20 ms.
 * Its room is taken at the first append, not when it is made: every call makes one as it is
 * answered, and 64 KB of fresh memory per call (~0.2 ms: page faults, and the external memory
 * V8 counts toward its next collection) added up when many calls were answered together.
 */
export class SampleRun {
  private samples = NO_ROOM;
  private used = 0;

  append(frame: Int16Array): void {
    if (this.used + frame.length > this.samples.length) {
      const grown = new Int16Array(Math.max(RUN_START_SAMPLES, this.samples.length * 2, this.used + frame.length));
      grown.set(this.samples.subarray(0, this.used));
      this.samples = grown;
    }
    this.samples.set(frame, this.used);
    this.used += frame.length;
  }

  /** A copy of what was appended since the last clear. */
  copy(): Int16Array {
    return this.samples.slice(0, this.used);
  }

  clear(): void {
    this.used = 0;
    if (this.samples.length > RUN_KEEP_SAMPLES) this.samples = NO_ROOM;
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
