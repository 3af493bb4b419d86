/**
 * The test signal the benchmarks' callers send: 440 Hz + 1230 Hz (two tones, so a codec or a
 * resampler that loses one shows), in the agent's 20 ms frames at 16 kHz.
 */
import { FRAME_SAMPLES } from "../../media-agent/src/audio/frames.js";

/** `frames` × 20 ms of the two tones, 16 kHz mono, continuous across frames. */
export function twoToneFrames(frames: number): Int16Array[] {
  const out: Int16Array[] = [];
  for (let f = 0; f < frames; f++) {
    const frame = new Int16Array(FRAME_SAMPLES);
    for (let i = 0; i < FRAME_SAMPLES; i++) {
      const n = f * FRAME_SAMPLES + i;
      frame[i] = Math.round(6000 * Math.sin((2 * Math.PI * 440 * n) / 16000) + 2000 * Math.sin((2 * Math.PI * 1230 * n) / 16000));
    }
    out.push(frame);
  }
  return out;
}
