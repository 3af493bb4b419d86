/**
 * "Is this the audio that was sent?" for tests and the demo: the normalised cross-correlation
 * of two signals' loudness envelopes (10 ms frames, dB), maximised over the unknown delay.
 * Envelopes survive what the media path legitimately does (Opus/G.711 coding, resampling,
 * gain, concealed losses) while different speech, silence or noise score low.
 */

const FRAME_MS = 10;
const FLOOR_DB = -50;

export interface Match {
  /** Normalised correlation at the best delay, -1..1 (1: same envelope). */
  score: number;
  /** Delay of the reference inside the recording, in ms. */
  lagMs: number;
}

export function envelope(samples: Int16Array, sampleRate: number): Float64Array {
  const size = Math.round((sampleRate * FRAME_MS) / 1000);
  const out = new Float64Array(Math.floor(samples.length / size));
  for (let f = 0; f < out.length; f++) {
    let energy = 0;
    for (let i = f * size; i < (f + 1) * size; i++) energy += samples[i] * samples[i];
    const rms = Math.sqrt(energy / size) / 32768;
    out[f] = Math.max(FLOOR_DB, 20 * Math.log10(rms + 1e-9));
  }
  return out;
}

export function bestCorrelation(reference: Int16Array, recorded: Int16Array, sampleRate: number, opts: { maxLagMs?: number } = {}): Match {
  const { env: ref, first } = trimSilence(envelope(reference, sampleRate));
  const rec = envelope(recorded, sampleRate);
  const maxLag = Math.round((opts.maxLagMs ?? 5000) / FRAME_MS);
  let best: Match = { score: -1, lagMs: 0 };
  // `lag` places the reference's start (its padding included) in the recording; its trimmed
  // envelope starts `first` frames later.
  for (let lag = -maxLag; lag <= maxLag; lag++) {
    const at = lag + first;
    const from = Math.max(0, -at);
    const to = Math.min(ref.length, rec.length - at);
    // Most of the reference must be inside the recording for the match to count.
    if (to - from < ref.length * 0.8) continue;
    const score = ncc(ref, rec, from, to, at);
    if (score > best.score) best = { score, lagMs: lag * FRAME_MS };
  }
  return best;
}

/**
 * The reference without its leading and trailing silence (padding is not what is compared), and
 * how many frames of it came first. Silence is 35 dB below the peak, or the floor itself: a quiet
 * reference (peak below −15 dBFS) has its floor within 35 dB of the peak, and its padding would
 * otherwise count as signal that the recording must hold.
 */
function trimSilence(env: Float64Array): { env: Float64Array; first: number } {
  const peak = Math.max(...env);
  const loud = (v: number) => v > peak - 35 && v > FLOOR_DB;
  let first = 0;
  let last = env.length - 1;
  while (first < last && !loud(env[first])) first++;
  while (last > first && !loud(env[last])) last--;
  return { env: env.slice(first, last + 1), first };
}

function ncc(a: Float64Array, b: Float64Array, from: number, to: number, lag: number): number {
  const n = to - from;
  let ma = 0;
  let mb = 0;
  for (let i = from; i < to; i++) {
    ma += a[i];
    mb += b[i + lag];
  }
  ma /= n;
  mb /= n;
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = from; i < to; i++) {
    const x = a[i] - ma;
    const y = b[i + lag] - mb;
    ab += x * y;
    aa += x * x;
    bb += y * y;
  }
  return aa === 0 || bb === 0 ? 0 : ab / Math.sqrt(aa * bb);
}
