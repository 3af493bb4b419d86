/** G.711 A-law and µ-law (ITU-T G.711), sample by sample. */
import { fitted } from "../audio/frames.js";

// Module constants: an array literal inside the per-sample functions is a candidate allocation per sample.
const ALAW_SEGMENT_ENDS = Int32Array.of(0x1f, 0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff);
const ULAW_SEGMENT_ENDS = Int32Array.of(0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff, 0x1fff);

export function linearToAlaw(sample: number): number {
  let pcm = sample >> 3; // 13-bit magnitude domain
  let mask: number;
  if (pcm >= 0) mask = 0xd5;
  else {
    mask = 0x55;
    pcm = -pcm - 1;
  }
  let seg = 0;
  while (seg < 8 && pcm > ALAW_SEGMENT_ENDS[seg]) seg++;
  if (seg >= 8) return 0x7f ^ mask;
  const aval = (seg << 4) | ((seg < 2 ? pcm >> 1 : pcm >> seg) & 0x0f);
  return aval ^ mask;
}

export function alawToLinear(value: number): number {
  const a = value ^ 0x55;
  let t = (a & 0x0f) << 4;
  const seg = (a & 0x70) >> 4;
  if (seg === 0) t += 8;
  else if (seg === 1) t += 0x108;
  else t = (t + 0x108) << (seg - 1);
  return a & 0x80 ? t : -t;
}

const BIAS = 0x84;
const CLIP = 8159;

export function linearToUlaw(sample: number): number {
  let pcm = sample >> 2; // 14-bit
  let mask: number;
  if (pcm < 0) {
    pcm = -pcm;
    mask = 0x7f;
  } else mask = 0xff;
  if (pcm > CLIP) pcm = CLIP;
  pcm += BIAS >> 2;
  let seg = 0;
  while (seg < 8 && pcm > ULAW_SEGMENT_ENDS[seg]) seg++;
  if (seg >= 8) return 0x7f ^ mask;
  return ((seg << 4) | ((pcm >> (seg + 1)) & 0x0f)) ^ mask;
}

export function ulawToLinear(value: number): number {
  const u = ~value & 0xff;
  let t = ((u & 0x0f) << 3) + BIAS;
  t <<= (u & 0x70) >> 4;
  return u & 0x80 ? BIAS - t : t - BIAS;
}

/** `scratch`: a buffer the caller reuses; the bytes go there when it is long enough (the result is a view of it). */
export function encodeG711(samples: Int16Array, law: "alaw" | "ulaw", scratch?: Uint8Array): Uint8Array {
  const out = fitted(scratch, samples.length) ?? new Uint8Array(samples.length);
  const f = law === "alaw" ? linearToAlaw : linearToUlaw;
  for (let i = 0; i < samples.length; i++) out[i] = f(samples[i]);
  return out;
}

/** `scratch`: a buffer the caller reuses; the samples go there when it is long enough (the result is a view of it). */
export function decodeG711(payload: Uint8Array, law: "alaw" | "ulaw", scratch?: Int16Array): Int16Array {
  const out = fitted(scratch, payload.length) ?? new Int16Array(payload.length);
  const f = law === "alaw" ? alawToLinear : ulawToLinear;
  for (let i = 0; i < payload.length; i++) out[i] = f(payload[i]);
  return out;
}
