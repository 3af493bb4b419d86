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
