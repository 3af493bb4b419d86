/**
 * The polyphase resampler against the filter's definition: a Blackman-windowed sinc evaluated
 * directly for every tap of every output sample (what the agent did before the kernel tables).
 */
import t from "tap";
import { polyphaseTable, resample, SignalResampler, StreamResampler } from "../../media-agent/src/codecs/resample.js";

function speechLike(rate: number, seconds: number, seed = 7): Int16Array {
  let s = seed;
  const rnd = () => (s = (s * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  const out = new Int16Array(Math.round(rate * seconds));
  let f0 = 150;
  for (let i = 0; i < out.length; i++) {
    if (i % 800 === 0) f0 = 100 + 200 * rnd();
    const v = [1, 0.5, 0.3, 0.2].reduce((a, g, k) => a + g * Math.sin((2 * Math.PI * f0 * (k + 1) * i) / rate), 0);
    out[i] = Math.round(7000 * v + 3000 * (rnd() - 0.5));
  }
  return out;
}

/** The definition: output n at input position n·from/to − delay, every kernel value computed. */
function direct(input: Int16Array, fromRate: number, toRate: number, length: number, delay = 0): Int16Array {
  const cutoff = Math.min(1, toRate / fromRate);
  const halfWidth = 12 / cutoff;
  const kernel = (x: number) => {
    if (Math.abs(x) >= halfWidth) return 0;
    const w = 0.42 + 0.5 * Math.cos((Math.PI * x) / halfWidth) + 0.08 * Math.cos((2 * Math.PI * x) / halfWidth);
    const arg = Math.PI * cutoff * x;
    return cutoff * (arg === 0 ? 1 : Math.sin(arg) / arg) * w;
  };
  const out = new Int16Array(length);
  for (let n = 0; n < length; n++) {
    const pos = (n * fromRate) / toRate - delay;
    let sum = 0;
    for (let i = Math.ceil(pos - halfWidth); i <= Math.floor(pos + halfWidth); i++) if (i >= 0 && i < input.length) sum += input[i] * kernel(pos - i);
    out[n] = Math.max(-32768, Math.min(32767, Math.round(sum)));
  }
  return out;
}

function worstDifference(a: Int16Array, b: Int16Array): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

const PAIRS: Array<[number, number]> = [[8000, 16000], [16000, 8000], [22050, 16000], [48000, 16000], [44100, 16000], [16000, 48000]];

t.test("whole signals: the polyphase tables give the directly evaluated filter's output", async (t) => {
  for (const [from, to] of PAIRS) {
    const x = speechLike(from, 0.25);
    const out = resample(x, from, to);
    t.equal(out.length, Math.floor((x.length * to) / from), `${from} → ${to}: length`);
    t.ok(worstDifference(out, direct(x, from, to, out.length)) <= 1, `${from} → ${to}: within 1 LSB of the definition`);
  }
});

t.test("frame by frame: the stream resampler gives the definition at its delay, 20 ms at a time", async (t) => {
  for (const [from, to] of PAIRS) {
    const x = speechLike(from, 0.3);
    const stream = new StreamResampler(from, to);
    const frame = from / 50;
    const parts: Int16Array[] = [];
    for (let at = 0; at < x.length; at += frame) parts.push(stream.process(x.subarray(at, at + frame)));
    t.ok(parts.every((p) => p.length === to / 50), `${from} → ${to}: ${to / 50} samples per frame`);
    const joined = Int16Array.from(parts.flatMap((p) => [...p]));
    t.ok(worstDifference(joined, direct(x, from, to, joined.length, stream.delay)) <= 1, `${from} → ${to}: within 1 LSB of the definition`);
  }
});

t.test("kernel tables are computed once per rate pair: one phase for 16k → 8k, 320 for 22.05k → 16k", async (t) => {
  t.equal(polyphaseTable(16000, 8000), polyphaseTable(16000, 8000), "the same table is reused");
  t.match(polyphaseTable(16000, 8000), { up: 1, down: 2 });
  t.match(polyphaseTable(8000, 16000), { up: 2, down: 1 });
  t.match(polyphaseTable(22050, 16000), { up: 320, down: 441 });
});

t.test("SignalResampler: a signal resampled as its pieces arrive is exactly resample of the whole", (t) => {
  const x = speechLike(22050, 2);
  for (const [from, to] of [[22050, 16000], [24000, 16000], [8000, 16000]]) {
    const signal = from === 22050 ? x : speechLike(from, 1.3);
    for (const piece of [1, 37, 4096, signal.length]) {
      const resampler = new SignalResampler(from, to);
      const parts: number[] = [];
      for (let at = 0; at < signal.length; at += piece) parts.push(...resampler.push(signal.subarray(at, at + piece)));
      const early = parts.length;
      parts.push(...resampler.end());
      t.same(Int16Array.from(parts), resample(signal, from, to), `${from} → ${to} Hz in pieces of ${piece}`);
      if (piece < signal.length) t.ok(signal.length * to / from - early < 40, `all but the filter's reach came before end() (${early} of ${parts.length})`);
    }
  }
  t.end();
});
