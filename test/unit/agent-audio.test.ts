/** Audio stages of the media agent: G.711, resampling, the codec stage (Opus PLC), WAV, matching. */
import t from "tap";
import { bestCorrelation } from "../../media-agent/src/audio/compare.js";
import { FRAME_SAMPLES } from "../../media-agent/src/audio/frames.js";
import { readWav, toFrames, WavDecoder, writeWav } from "../../media-agent/src/audio/wav.js";
import { createCodec, type AudioCodec } from "../../media-agent/src/codecs/codec.js";
import { SILENCE_SETTLE_FRAMES, SilencePayload } from "../../media-agent/src/codecs/silence-payload.js";
import { alawToLinear, decodeG711, encodeG711, linearToAlaw, linearToUlaw, ulawToLinear } from "../../media-agent/src/codecs/g711.js";
import { resample, StreamResampler } from "../../media-agent/src/codecs/resample.js";

function tone(hz: number, rate: number, seconds: number, amplitude = 10000): Int16Array {
  return Int16Array.from({ length: Math.round(rate * seconds) }, (_, i) => Math.round(amplitude * Math.sin((2 * Math.PI * hz * i) / rate)));
}

function rms(x: Int16Array, from = 0, to = x.length): number {
  let e = 0;
  for (let i = from; i < to; i++) e += x[i] * x[i];
  return Math.sqrt(e / Math.max(1, to - from));
}

/** Speech-like: syllables of random length and pitch with random pauses (deterministic per seed). */
function speechLike(rate: number, seconds: number, seed = 1): Int16Array {
  let s = seed;
  const rnd = () => (s = (s * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  const out = new Int16Array(Math.round(rate * seconds));
  for (let at = 0; at < out.length; ) {
    const length = Math.round(rate * (0.08 + 0.25 * rnd()));
    const voiced = rnd() > 0.3;
    const f0 = 100 + 150 * rnd();
    for (let i = 0; i < length && at + i < out.length; i++) {
      const shape = Math.sin((Math.PI * i) / length);
      const v = [1, 0.5, 0.3, 0.2].reduce((a, g, k) => a + g * Math.sin((2 * Math.PI * f0 * (k + 1) * i) / rate), 0);
      out[at + i] = voiced ? Math.round(6000 * v * shape) : 0;
    }
    at += length;
  }
  return out;
}

t.test("G.711 matches the ITU reference points and round-trips with its expected precision", async (t) => {
  t.equal(linearToAlaw(0), 0xd5);
  t.equal(alawToLinear(0xd5), 8);
  t.equal(linearToUlaw(0), 0xff);
  t.equal(ulawToLinear(0xff), 0);
  t.equal(alawToLinear(0x2a), -32256, "A-law full scale");
  t.equal(ulawToLinear(0x00), -32124, "µ-law full scale");
  const x = speechLike(8000, 1);
  for (const law of ["alaw", "ulaw"] as const) {
    const y = decodeG711(encodeG711(x, law), law);
    const noise = rms(Int16Array.from(x, (v, i) => v - y[i]));
    const snr = 20 * Math.log10(rms(x) / noise);
    t.ok(snr > 30, `${law} SNR ${snr.toFixed(1)} dB`);
  }
});

t.test("resampling keeps the pass band and does not alias", async (t) => {
  const pass = resample(tone(5000, 48000, 0.5), 48000, 16000);
  t.equal(pass.length, 8000);
  t.ok(Math.abs(rms(pass, 500, 7500) / rms(tone(5000, 16000, 0.5)) - 1) < 0.05, "a 5 kHz tone keeps its level at 16 kHz");
  const alias = resample(tone(7500, 48000, 0.5), 48000, 8000);
  // Below half an LSB the output rounds to 0: count that as the quantisation floor.
  const attenuation = 20 * Math.log10(Math.max(rms(alias, 200, 3800), 0.5) / rms(tone(7500, 48000, 0.5)));
  t.ok(attenuation < -30, `a 7.5 kHz tone is suppressed going to 8 kHz (${attenuation.toFixed(1)} dB)`);
});

t.test("stream resampling: exact sizes per frame and no seams compared with the whole signal", async (t) => {
  const x = speechLike(8000, 1);
  const stream = new StreamResampler(8000, 16000);
  const chunks: Int16Array[] = [];
  for (let at = 0; at < x.length; at += 160) chunks.push(stream.process(x.subarray(at, at + 160)));
  t.ok(chunks.every((c) => c.length === 320), "160 samples in, 320 out, every frame");
  const joined = Int16Array.from(chunks.flatMap((c) => [...c]));
  const whole = resample(x, 8000, 16000);
  const delay = 2 * stream.delay; // in output samples
  let worst = 0;
  for (let i = 400; i < whole.length - delay - 400; i++) worst = Math.max(worst, Math.abs(joined[i + delay] - whole[i]));
  t.ok(worst <= 2, `frame-by-frame equals whole-signal output after the delay (worst difference ${worst} LSB)`);
});

t.test("codec stage: Opus at 16 kHz round-trips, conceals loss with libopus PLC; G.711 splits 40 ms packets", async (t) => {
  const opus = createCodec("opus");
  t.same([opus.clockRate, opus.ticksPerFrame], [48000, 960]);
  const frames = toFrames(speechLike(16000, 2));
  const decoded = frames.flatMap((f) => opus.decode(opus.encode(f)));
  t.equal(decoded.length, frames.length);
  const tail = Int16Array.from(decoded.slice(10).flatMap((f) => [...f]));
  const match = bestCorrelation(Int16Array.from(frames.slice(10).flatMap((f) => [...f])), tail, 16000, { maxLagMs: 100 });
  t.ok(match.score > 0.9, `Opus round trip matches (${match.score.toFixed(3)})`);
  for (const f of toFrames(tone(440, 16000, 0.2))) opus.decode(opus.encode(f));
  const concealed = opus.conceal();
  t.equal(concealed.length, FRAME_SAMPLES);
  t.ok(rms(concealed) > 1000, `PLC continues the tone instead of a hole (rms ${rms(concealed).toFixed(0)})`);

  const pcma = createCodec("PCMA");
  const payload = encodeG711(tone(440, 8000, 0.04), "alaw"); // 40 ms
  t.equal(pcma.decode(payload).length, 2, "a 40 ms packet is two frames");
  t.equal(pcma.encode(frames[0]).length, 160, "one frame is 160 A-law bytes");
  const first = rms(pcma.conceal());
  const second = rms(pcma.conceal());
  t.ok(first > 0 && second < first * 0.6, "G.711 concealment fades");
  pcma.conceal();
  t.equal(rms(pcma.conceal()), 0, "and is silent after three losses");
});

t.test("WAV: 16-bit, 8-bit, float and extensible stereo read as mono; odd chunks skipped; bad files named", async (t) => {
  const samples = tone(300, 16000, 0.1);
  const back = readWav(writeWav(samples, 16000));
  t.same([back.sampleRate, back.samples.length], [16000, samples.length]);
  t.same([...back.samples.subarray(0, 50)], [...samples.subarray(0, 50)]);

  const wav = (tag: number, bits: number, channels: number, data: Buffer, extraChunk = false) => {
    const fmtSize = tag === 0xfffe ? 40 : 16;
    const fmt = Buffer.alloc(8 + fmtSize);
    fmt.write("fmt ", 0, "latin1");
    fmt.writeUInt32LE(fmtSize, 4);
    fmt.writeUInt16LE(tag, 8);
    fmt.writeUInt16LE(channels, 10);
    fmt.writeUInt32LE(8000, 12);
    fmt.writeUInt16LE(bits, 22);
    if (tag === 0xfffe) fmt.writeUInt16LE(1, 32); // sub-format PCM
    const list = extraChunk ? Buffer.concat([Buffer.from("LIST\x03\x00\x00\x00abc\x00", "latin1")]) : Buffer.alloc(0);
    const dataHeader = Buffer.alloc(8);
    dataHeader.write("data", 0, "latin1");
    dataHeader.writeUInt32LE(data.length, 4);
    const body = Buffer.concat([Buffer.from("WAVE", "latin1"), fmt, list, dataHeader, data]);
    const riff = Buffer.alloc(8);
    riff.write("RIFF", 0, "latin1");
    riff.writeUInt32LE(body.length, 4);
    return Buffer.concat([riff, body]);
  };
  const stereo = Buffer.alloc(8);
  stereo.writeInt16LE(1000, 0);
  stereo.writeInt16LE(3000, 2);
  t.same([...readWav(wav(0xfffe, 16, 2, stereo, true)).samples], [2000, 0], "stereo mixed down, LIST chunk (odd size) skipped");
  t.same([...readWav(wav(1, 8, 1, Buffer.from([128, 255]))).samples], [0, 127 << 8]);
  const float = Buffer.alloc(4);
  float.writeFloatLE(0.5, 0);
  t.same([...readWav(wav(3, 32, 1, float)).samples], [16384]);
  t.throws(() => readWav(Buffer.from("not a wav at all")), /not a RIFF\/WAVE file/);
  t.throws(() => readWav(wav(6, 8, 1, Buffer.alloc(4))), /unsupported WAV format \(format tag 6/);

  // As it arrives (a synthesiser's stdout): the same samples in pieces of any size.
  const inPieces = (file: Buffer, size: number) => {
    const decoder = new WavDecoder();
    const parts: number[] = [];
    for (let at = 0; at < file.length; at += size) parts.push(...decoder.push(file.subarray(at, at + size)));
    decoder.end();
    return parts;
  };
  const long = Buffer.alloc(2 * 4 * 101); // 101 stereo 16-bit frames, and a chunk after the data
  for (let i = 0; i < long.length; i += 2) long.writeInt16LE((i * 37) % 20000 - 10000, i);
  const withTail = Buffer.concat([wav(0xfffe, 16, 2, long, true), Buffer.from("LIST\x02\x00\x00\x00ab", "latin1")]);
  for (const size of [1, 3, 7, 64]) t.same(inPieces(withTail, size), [...readWav(withTail).samples], `pieces of ${size} bytes`);
  const piped = wav(1, 16, 1, long);
  piped.writeUInt32LE(0xffffffff, piped.length - long.length - 4); // a pipe's data size: unknown
  t.same(inPieces(piped, 5), [...readWav(piped).samples], "a data chunk of unknown size: all that arrives");
  t.throws(() => new WavDecoder().push(Buffer.from("not a wav at all")), /not a RIFF\/WAVE file/, "named as soon as 12 bytes are in");
  const headerOnly = new WavDecoder();
  headerOnly.push(wav(1, 16, 1, long).subarray(0, 30));
  t.throws(() => headerOnly.end(), /no data chunk/, "a stream that ends before its data");
  t.equal(toFrames(new Int16Array(321)).length, 2, "the last frame is padded");
});

t.test("20 ms frames: the samples in order, the last frame zero-padded, none of them a view of the samples given (a speech worker's chunk is a view of an IPC read buffer)", async (t) => {
  const samples = Int16Array.from({ length: 320 * 2 + 100 }, (_, i) => (i % 2000) - 1000);
  const frames = toFrames(samples);
  t.equal(frames.length, 3);
  t.ok(frames.every((f) => f.length === 320));
  t.same([...frames[0], ...frames[1], ...frames[2].subarray(0, 100)], [...samples], "in order");
  t.ok(frames[2].subarray(100).every((x) => x === 0), "padded with silence");
  samples.fill(7);
  t.equal(frames[1][5], 320 + 5 - 1000, "the samples given, changed afterwards, do not change the frames");
  t.same(toFrames(new Int16Array(0)), [], "no samples, no frames");
});

t.test("matching audio: the same speech after delay, gain and noise scores high; other speech, noise, silence low", async (t) => {
  const reference = speechLike(16000, 3, 1);
  const recorded = new Int16Array(16000 * 5);
  let s = 7;
  for (let i = 0; i < recorded.length; i++) recorded[i] = Math.round((((s = (s * 69069 + 1) >>> 0) / 2 ** 32) - 0.5) * 400);
  const delay = Math.round(0.73 * 16000);
  reference.forEach((v, i) => (recorded[i + delay] += Math.round(v * 0.6)));
  const same = bestCorrelation(reference, recorded, 16000);
  t.ok(same.score > 0.8, `same speech: ${same.score.toFixed(3)}`);
  t.equal(same.lagMs, 730, "the delay is found");
  const other = bestCorrelation(speechLike(16000, 3, 99), recorded, 16000);
  t.ok(other.score < 0.5, `different speech: ${other.score.toFixed(3)}`);
  const silence = bestCorrelation(reference, new Int16Array(16000 * 5), 16000);
  t.ok(silence.score < 0.3, `silence: ${silence.score.toFixed(3)}`);
});

t.test("matching audio: a quiet reference's padding is not part of what the recording must hold", async (t) => {
  // Peak about −20 dBFS: its silent padding (the envelope's −50 dB floor) is within 35 dB of the peak.
  const speech = speechLike(16000, 1, 5).map((v) => Math.round(v / 4));
  const reference = new Int16Array(16000 * 2);
  reference.set(speech, 16000 * 0.5); // 0.5 s before, 0.5 s after
  const recorded = new Int16Array(16000 * 1.3);
  recorded.set(speech, 16000 * 0.2); // the speech, 100 ms after it: a turn cut at the end of the words
  const match = bestCorrelation(reference, recorded, 16000);
  t.ok(match.score > 0.95, `the speech is found without the reference's padding (${match.score.toFixed(3)})`);
  t.ok(bestCorrelation(reference, new Int16Array(16000 * 1.3), 16000).score < 0.3, "silence still scores low");
});

t.test("encode stage: settled silence is sent without encoding, and the far end hears the same", async (t) => {
  const speech = toFrames(speechLike(16000, 1, 7));
  // What the agent plays over 3 s: speech, 1 s with nothing to play, speech again.
  const timeline: Array<Int16Array | null> = [...speech, ...Array<null>(50).fill(null), ...speech];
  for (const name of ["PCMU", "PCMA", "opus"] as const) {
    const counted = createCodec(name);
    let encoded = 0;
    const counting: AudioCodec = Object.assign(Object.create(counted) as AudioCodec, {
      encode: (frame: Int16Array) => (encoded++, counted.encode(frame)),
    });
    const stage = new SilencePayload(counting);
    const sent = timeline.map((frame) => Uint8Array.from(stage.encode(frame)));
    t.equal(encoded, 2 * speech.length + SILENCE_SETTLE_FRAMES, `${name}: only ${SILENCE_SETTLE_FRAMES} of 50 silent frames are encoded`);

    const reference = createCodec(name); // every frame encoded, silence as zeros
    const expected = timeline.map((frame) => Uint8Array.from(reference.encode(frame ?? new Int16Array(FRAME_SAMPLES))));
    const far = createCodec(name);
    const farRef = createCodec(name);
    const heard = sent.flatMap((p) => far.decode(p));
    const heardRef = expected.flatMap((p) => farRef.decode(p));
    const silent = heard.slice(speech.length + 5, speech.length + 50);
    t.ok(Math.max(...silent.map((f) => rms(f))) < 16, `${name}: the pause decodes as silence (A-law has no zero: ±8)`);
    const second = (frames: Int16Array[]) => Int16Array.from(frames.slice(speech.length + 50).flatMap((f) => [...f]));
    if (name === "opus") {
      const match = bestCorrelation(second(heardRef), second(heard), 16000, { maxLagMs: 5 });
      t.ok(match.score > 0.97, `opus: speech after the pause decodes as it would have (${match.score.toFixed(3)})`);
    } else {
      t.same(sent, expected, `${name}: byte for byte what encoding every frame gives`);
    }
  }
});
