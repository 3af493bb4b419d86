/** G.711 A-law and µ-law (ITU-T G.711), sample by sample. */

export function linearToAlaw(sample: number): number {
  let pcm = sample >> 3; // 13-bit magnitude domain
  let mask: number;
  if (pcm >= 0) mask = 0xd5;
  else {
    mask = 0x55;
    pcm = -pcm - 1;
  }
  const segEnds = [0x1f, 0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff];
  let seg = 0;
  while (seg < 8 && pcm > segEnds[seg]) seg++;
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
  const segEnds = [0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff, 0x1fff];
  let seg = 0;
  while (seg < 8 && pcm > segEnds[seg]) seg++;
  if (seg >= 8) return 0x7f ^ mask;
  return ((seg << 4) | ((pcm >> (seg + 1)) & 0x0f)) ^ mask;
}

export function ulawToLinear(value: number): number {
  const u = ~value & 0xff;
  let t = ((u & 0x0f) << 3) + BIAS;
  t <<= (u & 0x70) >> 4;
  return u & 0x80 ? BIAS - t : t - BIAS;
}

export function encodeG711(samples: Int16Array, law: "alaw" | "ulaw"): Uint8Array {
  const out = new Uint8Array(samples.length);
  const f = law === "alaw" ? linearToAlaw : linearToUlaw;
  for (let i = 0; i < samples.length; i++) out[i] = f(samples[i]);
  return out;
}

export function decodeG711(payload: Uint8Array, law: "alaw" | "ulaw"): Int16Array {
  const out = new Int16Array(payload.length);
  const f = law === "alaw" ? alawToLinear : ulawToLinear;
  for (let i = 0; i < payload.length; i++) out[i] = f(payload[i]);
  return out;
}
