/**
 * Sample-rate conversion with a Blackman-windowed sinc low-pass (cut-off at the lower
 * Nyquist), so 48 kHz → 16 kHz or 16 kHz → 8 kHz does not alias. Polyphase: for from → to,
 * reduced to L/M (to = L·g, from = M·g), output sample n sits at input position n·M/L, whose
 * fraction is one of L phases; each phase's filter taps are computed once per rate pair
 * (`polyphaseTable`) and every output sample is then one dot product. Taps that are zero are
 * left out: 16k ↔ 8k are half-band filters, where every other tap is a zero of the sinc.
 * `resample` converts a whole signal (`SignalResampler` the same as its pieces arrive);
 * `StreamResampler` converts frame by frame with state, giving exactly
 * chunk·to/from samples per chunk and no seams between frames (at a fixed delay).
 */

import { fitted } from "../audio/frames.js";

/** Taps per side, relative to the cut-off: more = steeper filter. */
const ZERO_CROSSINGS = 12;

function kernel(x: number, cutoff: number, halfWidth: number): number {
  if (Math.abs(x) >= halfWidth) return 0;
  const window = 0.42 + 0.5 * Math.cos((Math.PI * x) / halfWidth) + 0.08 * Math.cos((2 * Math.PI * x) / halfWidth);
  const arg = Math.PI * cutoff * x;
  return cutoff * (arg === 0 ? 1 : Math.sin(arg) / arg) * window;
}

/**
 * The filter for one rate pair. Phase p's non-zero taps are entries start[p] … start[p+1] − 1:
 * tap i reads input (floor of the position) + offsets[i] with weight coefficients[i].
 */
export interface PolyphaseTable {
  /** Output samples per `down` input samples (the ratio in lowest terms). */
  up: number;
  down: number;
  /** No tap reaches further than this many input samples either side of the position. */
  reach: number;
  start: Int32Array;
  offsets: Int32Array;
  coefficients: Float64Array;
}

/** Below this a tap is a zero of the kernel (rounding leaves ~1e-17 there). */
const ZERO_TAP = 1e-12;

const tables = new Map<string, PolyphaseTable>();

/** Computed on first use per rate pair and kept (16k → 8k: 25 taps; 8k → 16k: 1 and 24). */
export function polyphaseTable(fromRate: number, toRate: number): PolyphaseTable {
  const key = `${fromRate}/${toRate}`;
  let table = tables.get(key);
  if (!table) {
    const g = gcd(fromRate, toRate);
    const up = toRate / g;
    const down = fromRate / g;
    const cutoff = Math.min(1, toRate / fromRate);
    const halfWidth = ZERO_CROSSINGS / cutoff;
    const reach = Math.ceil(halfWidth);
    const start = new Int32Array(up + 1);
    const offsets: number[] = [];
    const coefficients: number[] = [];
    // Phase p: the position's fraction is p/up; offset j reads input (floor of position) + j.
    for (let p = 0; p < up; p++) {
      start[p] = offsets.length;
      for (let j = -reach; j <= reach; j++) {
        const c = kernel(p / up - j, cutoff, halfWidth);
        if (Math.abs(c) < ZERO_TAP) continue;
        offsets.push(j);
        coefficients.push(c);
      }
    }
    start[up] = offsets.length;
    table = { up, down, reach, start, offsets: Int32Array.from(offsets), coefficients: Float64Array.from(coefficients) };
    tables.set(key, table);
  }
  return table;
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

function clamp16(v: number): number {
  return v > 32767 ? 32767 : v < -32768 ? -32768 : Math.round(v);
}

export function resample(input: Int16Array, fromRate: number, toRate: number): Int16Array {
  if (fromRate === toRate) return input.slice();
  const table = polyphaseTable(fromRate, toRate);
  const out = new Int16Array(Math.floor((input.length * table.up) / table.down));
  resampleRange(input, table, out, 0, out.length);
  return out;
}

/**
 * `resample` of a signal that arrives in pieces (a synthesiser's output): each push() returns
 * the output samples whose taps the input received so far covers, end() the rest. The outputs
 * joined are exactly `resample` of the inputs joined.
 */
export class SignalResampler {
  private readonly table: PolyphaseTable;
  private input = new Int16Array(0);
  private received = 0;
  private produced = 0;

  constructor(fromRate: number, toRate: number) {
    this.table = polyphaseTable(fromRate, toRate);
  }

  push(chunk: Int16Array): Int16Array {
    if (this.received + chunk.length > this.input.length) {
      const grown = new Int16Array(Math.max(2 * this.input.length, this.received + chunk.length));
      grown.set(this.input.subarray(0, this.received));
      this.input = grown;
    }
    this.input.set(chunk, this.received);
    this.received += chunk.length;
    // Output n reads input up to floor(n·down/up) + reach: ready while that is below `received`.
    const { up, down, reach } = this.table;
    return this.produce(Math.max(this.produced, Math.ceil(((this.received - reach) * up) / down)));
  }

  end(): Int16Array {
    return this.produce(Math.floor((this.received * this.table.up) / this.table.down));
  }

  private produce(upTo: number): Int16Array {
    const from = this.produced;
    this.produced = upTo;
    const out = new Int16Array(upTo - from);
    resampleRange(this.input.subarray(0, this.received), this.table, out, from, upTo, from);
    return out;
  }
}

/** Output samples [from, to) of a whole signal (zero outside it), written at out[n − outStart]. */
function resampleRange(input: Int16Array, t: PolyphaseTable, out: Int16Array, from: number, to: number, outStart = 0): void {
  const { up, down, start, offsets, coefficients } = t;
  for (let n = from; n < to; n++) {
    const position = Math.floor((n * down) / up);
    const phase = (n * down) % up;
    let sum = 0;
    for (let i = start[phase], end = start[phase + 1]; i < end; i++) {
      const at = position + offsets[i];
      if (at >= 0 && at < input.length) sum += input[at] * coefficients[i];
    }
    out[n - outStart] = clamp16(sum);
  }
}

export class StreamResampler {
  private readonly table: PolyphaseTable;
  /** Input kept for the filter: history[0] is absolute input sample `historyStart`. */
  private history: Float64Array;
  private historyLength: number;
  private historyStart: number;
  /** Output sample n sits at input position n·down/up − delay: its whole part and phase. */
  private position: number;
  private phase = 0;
  private received = 0;
  private produced = 0;

  constructor(
    private readonly fromRate: number,
    private readonly toRate: number,
  ) {
    this.table = polyphaseTable(fromRate, toRate);
    this.position = -this.delay;
    // Zeros before the first sample, as far back as the first output's taps reach.
    this.historyStart = -this.delay - this.table.reach;
    this.historyLength = this.delay + this.table.reach;
    this.history = new Float64Array(this.historyLength + 4 * this.table.reach + 1024);
  }

  /** Output delay in input samples (the filter's look-ahead). */
  get delay(): number {
    return this.table.reach;
  }

  /**
   * The output for one more chunk of input. `target`: a scratch buffer the caller reuses; when
   * it is long enough the output is written there (the result is a view of it), else into a new array.
   */
  process(chunk: Int16Array, target?: Int16Array): Int16Array {
    this.append(chunk);
    const { up, down, reach, start, offsets, coefficients } = this.table;
    const count = Math.max(0, Math.floor((this.received * this.toRate) / this.fromRate) - this.produced);
    const out = fitted(target, count) ?? new Int16Array(count);
    const history = this.history;
    let position = this.position;
    let phase = this.phase;
    for (let j = 0; j < out.length; j++) {
      const at = position - this.historyStart;
      let sum = 0;
      for (let i = start[phase], end = start[phase + 1]; i < end; i++) sum += history[at + offsets[i]] * coefficients[i];
      out[j] = clamp16(sum);
      phase += down;
      position += Math.floor(phase / up);
      phase %= up;
    }
    this.position = position;
    this.phase = phase;
    this.produced += out.length;
    // Keep only what the next outputs can still reach.
    this.dropBefore(position - reach);
    return out;
  }

  private append(chunk: Int16Array): void {
    const needed = this.historyLength + chunk.length;
    if (needed > this.history.length) {
      const grown = new Float64Array(2 * needed);
      grown.set(this.history.subarray(0, this.historyLength));
      this.history = grown;
    }
    this.history.set(chunk, this.historyLength);
    this.historyLength += chunk.length;
    this.received += chunk.length;
  }

  private dropBefore(absolute: number): void {
    const drop = Math.min(this.historyLength, absolute - this.historyStart);
    if (drop <= 0) return;
    this.history.copyWithin(0, drop, this.historyLength);
    this.historyLength -= drop;
    this.historyStart += drop;
  }
}
