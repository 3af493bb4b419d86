/**
 * Sample-rate conversion with a Blackman-windowed sinc low-pass (cut-off at the lower
 * Nyquist), so 48 kHz → 16 kHz or 16 kHz → 8 kHz does not alias. `resample` converts a whole
 * signal; `StreamResampler` converts frame by frame with state, giving exactly
 * chunk·to/from samples per chunk and no seams between frames (at a fixed delay).
 */

/** Taps per side, relative to the cut-off: more = steeper filter. */
const ZERO_CROSSINGS = 12;

function kernel(x: number, cutoff: number, halfWidth: number): number {
  if (Math.abs(x) >= halfWidth) return 0;
  const window = 0.42 + 0.5 * Math.cos((Math.PI * x) / halfWidth) + 0.08 * Math.cos((2 * Math.PI * x) / halfWidth);
  const arg = Math.PI * cutoff * x;
  return cutoff * (arg === 0 ? 1 : Math.sin(arg) / arg) * window;
}

function clamp16(v: number): number {
  return v > 32767 ? 32767 : v < -32768 ? -32768 : Math.round(v);
}

/** Interpolates the signal at fractional input position t (samples outside `at` are zero). */
function interpolate(at: (i: number) => number, t: number, cutoff: number, halfWidth: number): number {
  let sum = 0;
  const first = Math.ceil(t - halfWidth);
  const last = Math.floor(t + halfWidth);
  for (let i = first; i <= last; i++) sum += at(i) * kernel(t - i, cutoff, halfWidth);
  return sum;
}

export function resample(input: Int16Array, fromRate: number, toRate: number): Int16Array {
  if (fromRate === toRate) return input.slice();
  const cutoff = Math.min(1, toRate / fromRate);
  const halfWidth = ZERO_CROSSINGS / cutoff;
  const length = Math.floor((input.length * toRate) / fromRate);
  const out = new Int16Array(length);
  const at = (i: number) => (i >= 0 && i < input.length ? input[i] : 0);
  for (let n = 0; n < length; n++) out[n] = clamp16(interpolate(at, (n * fromRate) / toRate, cutoff, halfWidth));
  return out;
}

export class StreamResampler {
  private readonly cutoff: number;
  private readonly halfWidth: number;
  /** Input kept for the filter: history[0] is absolute input sample `historyStart`. */
  private history = new Float64Array(0);
  private historyStart = 0;
  private received = 0;
  private produced = 0;

  constructor(
    private readonly fromRate: number,
    private readonly toRate: number,
  ) {
    this.cutoff = Math.min(1, toRate / fromRate);
    this.halfWidth = ZERO_CROSSINGS / this.cutoff;
  }

  /** Output delay in input samples (the filter's look-ahead). */
  get delay(): number {
    return Math.ceil(this.halfWidth);
  }

  process(chunk: Int16Array): Int16Array {
    const merged = new Float64Array(this.history.length + chunk.length);
    merged.set(this.history);
    merged.set(chunk, this.history.length);
    this.history = merged;
    this.received += chunk.length;
    const count = Math.floor((this.received * this.toRate) / this.fromRate) - this.produced;
    const out = new Int16Array(Math.max(0, count));
    const at = (i: number) => {
      const k = i - this.historyStart;
      return k >= 0 && k < this.history.length ? this.history[k] : 0;
    };
    for (let j = 0; j < out.length; j++) {
      const t = ((this.produced + j) * this.fromRate) / this.toRate - this.delay;
      out[j] = clamp16(interpolate(at, t, this.cutoff, this.halfWidth));
    }
    this.produced += out.length;
    // Keep only what the next outputs can still reach.
    const oldestNeeded = Math.floor((this.produced * this.fromRate) / this.toRate - this.delay - this.halfWidth) - 1;
    const drop = Math.max(0, Math.min(this.history.length, oldestNeeded - this.historyStart));
    if (drop > 0) {
      this.history = this.history.slice(drop);
      this.historyStart += drop;
    }
    return out;
  }
}
