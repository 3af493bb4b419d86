/** Text to speech: Piper over HTTP (its three server flavours) and built-in espeak-ng, at 16 kHz, in the speech workers. */
import { execFileSync } from "node:child_process";
import t, { type Test } from "tap";
import { Decoder, Encoder } from "@evan/opus";
import { concatSamples, FRAME_SAMPLES } from "../../media-agent/src/audio/frames.js";
import { readWav16k, toFrames, writeWav } from "../../media-agent/src/audio/wav.js";
import { OpusCodec, payloadAt, releaseEncoder, takeEncoder, type PackedPayloads } from "../../media-agent/src/codecs/opus.js";
import { Speaker } from "../../media-agent/src/pipeline/speaker.js";
import { processClock } from "../../media-agent/src/pipeline/engines.js";
import { bestCorrelation } from "../../media-agent/src/audio/compare.js";
import { SynthesisPool } from "../../media-agent/src/pipeline/synthesis-pool.js";
import { EspeakTts, PiperTts, TtsError, type TtsEngine } from "../../media-agent/src/pipeline/tts.js";
import { startPiperDouble } from "../../doubles/piper-double.js";
import { piperRequest } from "../../media-agent/src/pipeline/piper-request.js";
import { freePort } from "../../build/ports.js";
import { createServer, type ServerResponse } from "node:http";

const TEXT = "It is fourteen degrees and raining in Düsseldorf.";
const never = new AbortController().signal;

/** A Piper server that answers every request with `answer` (default: 200 with these bytes as the WAV). */
async function piperServer(t: Test, bytes: Uint8Array, answer = (res: ServerResponse) => res.writeHead(200, { "Content-Type": "audio/wav" }).end(bytes)): Promise<string> {
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => answer(res));
  });
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  t.teardown(() => new Promise<void>((done) => (server.closeAllConnections(), server.close(() => done()))));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

/** A speech worker's job: Piper's server at `baseUrl` asked for a clause. */
const piperJob = (baseUrl: string, timeoutMs = 5000) => ({ engine: "piper", request: piperRequest({ baseUrl, timeoutMs }, "A clause."), wavError: `Piper at ${baseUrl} sent no usable WAV` }) as const;

t.test("espeak-ng speaks the sentence as 16 kHz samples", async (t) => {
  const speech = await new EspeakTts({ voice: "en-us", speed: 160 }).synthesize(TEXT, never);
  const seconds = speech.samples.length / 16000;
  t.ok(seconds > 1.5 && seconds < 6, `${seconds.toFixed(2)} s of speech`);
  t.comment(`espeak-ng synthesis took ${speech.synthesisMs.toFixed(0)} ms`);
});

t.test("Piper: /synthesize, WAV resampled from 22050 Hz; the same words as espeak say", async (t) => {
  const piper = await startPiperDouble(t);
  const speech = await new PiperTts({ baseUrl: piper.url, voice: "en_US-lessac-medium", timeoutMs: 5000 }).synthesize(TEXT, never);
  t.same(piper.requests, [{ path: "/synthesize", body: { text: TEXT, voice: "en_US-lessac-medium" } }]);
  const reference = await new EspeakTts({ voice: "en-us", speed: 175 }).synthesize(TEXT, never);
  const match = bestCorrelation(reference.samples, speech.samples, 16000, { maxLagMs: 1000 });
  t.ok(match.score > 0.8, `the audio is that sentence (${match.score.toFixed(3)})`);
});

t.test("Piper's older servers only as the profile says: JSON on / (older piper1-gpl), the raw text (rhasspy/piper); a 404 says what to set", async (t) => {
  const root = await startPiperDouble(t, { flavour: "piper1-gpl-root" });
  await new PiperTts({ baseUrl: root.url, api: "json-root", voice: "en_US-lessac-medium", timeoutMs: 5000 }).synthesize("Hello.", never);
  t.same(root.requests, [{ path: "/", body: { text: "Hello.", voice: "en_US-lessac-medium" } }]);
  const rhasspy = await startPiperDouble(t, { flavour: "rhasspy" });
  const speech = await new PiperTts({ baseUrl: rhasspy.url, api: "raw-text", voice: "ignored", timeoutMs: 5000 }).synthesize(TEXT, never);
  t.same(rhasspy.requests, [{ path: "/", body: { text: TEXT } }], "the text itself is the body: nothing else would be read aloud");
  const reference = await new EspeakTts({ voice: "en-us", speed: 175 }).synthesize(TEXT, never);
  t.ok(bestCorrelation(reference.samples, speech.samples, 16000, { maxLagMs: 1000 }).score > 0.8, "the sentence, not JSON");
  const wrong = await new PiperTts({ baseUrl: rhasspy.url, timeoutMs: 5000 }).synthesize("Hello.", never).catch((e: unknown) => e);
  t.match((wrong as Error).message, /has no POST \/synthesize \(404\): an older server\. Set the profile's tts\.api to "json-root" .* or "raw-text"/);
  t.equal(rhasspy.requests.length, 1, "no guess: nothing was sent to / after the 404");
});

t.test("failures name their cause; abort stops a request", async (t) => {
  const port = await freePort();
  const down = new PiperTts({ baseUrl: `http://127.0.0.1:${port}`, timeoutMs: 1000 });
  const refused = await down.synthesize("Hello.", never).catch((e: unknown) => e);
  t.ok(refused instanceof TtsError);
  t.match((refused as Error).message, new RegExp(`Piper at http://127\\.0\\.0\\.1:${port}/synthesize: .*ECONNREFUSED`));
  const piper = await startPiperDouble(t);
  await t.rejects(new PiperTts({ baseUrl: piper.url, timeoutMs: 1000 }).synthesize("", never), /answered 400: text is required/);
  const abort = new AbortController();
  const pending = new EspeakTts({ voice: "en-us", speed: 160 }).synthesize("A long sentence that takes a while. ".repeat(20), abort.signal);
  abort.abort();
  await t.rejects(pending, { name: "AbortError" });

  // A server that takes the request and never answers: the timeout names itself; an abort
  // before then closes the worker's connection to it.
  let closed = 0;
  const silent = await piperServer(t, new Uint8Array(0), (res) => res.on("close", () => closed++));
  await t.rejects(new PiperTts({ baseUrl: silent, timeoutMs: 300 }).synthesize("Hello.", never), { name: "TtsError", message: `Piper at ${silent}/synthesize: no answer within 300 ms` });
  const stop = new AbortController();
  const asked = new PiperTts({ baseUrl: silent, timeoutMs: 10_000 }).synthesize("Hello.", stop.signal);
  await new Promise((done) => setTimeout(done, 200));
  stop.abort();
  await t.rejects(asked, { name: "AbortError" });
  for (let waited = 0; closed < 2 && waited < 5000; waited += 20) await new Promise((done) => setTimeout(done, 20));
  t.equal(closed, 2, "the worker dropped both requests: the timed-out one and the aborted one");
});

/** −60 dBFS: what the speech worker takes for silence at the start of a clause. */
const SILENT = 33;
const loud = (x: number) => x > SILENT || x < -SILENT;

/** `clause` is `whole` from its first sound on: what was left out was silence. */
function fromFirstSound(t: Test, clause: Int16Array, whole: Int16Array, what: string): void {
  const cut = whole.length - clause.length;
  t.same(clause, whole.subarray(cut), `${what}: the whole audio from its ${cut}th sample on`);
  t.notOk(whole.subarray(0, cut).some(loud), `${what}: the ${((cut / 16000) * 1000).toFixed(1)} ms left out are silence`);
  t.ok(loud(clause[0]), `${what}: the clause starts with its first sound`);
}

t.test("espeak-ng in the speech worker: the samples of its WAV resampled whole from the first sound on, also as it streams", async (t) => {
  const text = "The sun is out in Dusseldorf today. The temperature is twenty degrees, with a light wind.";
  const whole = readWav16k(execFileSync("espeak-ng", ["-v", "en-us", "-s", "165", "--stdout", text]));
  const tts = new EspeakTts({ voice: "en-us", speed: 165 });
  const speech = await tts.synthesize(text, never);
  fromFirstSound(t, speech.samples, whole, "espeak-ng");
  t.ok(whole.length - speech.samples.length >= 160, "espeak-ng's silence before \"The\" (13 ms) is not played");
  const pieces: Int16Array[] = [];
  const streamed = await tts.synthesize(text, never, (samples) => pieces.push(samples));
  t.same(concatSamples(pieces), speech.samples, "streamed, the pieces joined are the clause");
  t.equal(streamed.samples, null, "and the clause is not handed over a second time, joined");
  t.ok(pieces.slice(0, -1).every((p) => p.length % 320 === 0), `whole 20 ms frames until the last piece (${pieces.length} pieces)`);
  t.ok(streamed.firstByteMs > 0 && streamed.firstByteMs <= streamed.synthesisMs, "first byte before the whole");
});

t.test("Piper's whole WAV, asked for and decoded by the speech worker: its first frames come back before the rest is resampled, and the pieces are exactly the clause", async (t) => {
  const text = "It is sunny in Dusseldorf today. The temperature is twenty degrees, with a light wind from the west.";
  const wav = execFileSync("espeak-ng", ["-v", "en-us", "--stdout", text]); // 22050 Hz, as Piper's voices
  const pool = new SynthesisPool(1, (message) => new TtsError(message));
  t.teardown(() => pool.close());
  const job = piperJob(await piperServer(t, wav));
  const { samples } = await pool.run(job, never);
  fromFirstSound(t, samples, readWav16k(wav), "the WAV resampled whole");
  const pieces: Int16Array[] = [];
  const streamed = await pool.run(job, never, (piece) => pieces.push(piece));
  t.same(concatSamples(pieces), samples, "the pieces joined are the clause");
  t.equal(streamed.samples, null, "and the clause is not handed over a second time, joined");
  t.ok(pieces.length > 3, `sent in pieces as it is decoded (${pieces.length} for ${(samples.length / 16000).toFixed(1)} s), not one message at the end`);
  t.ok(pieces[0].length % 320 === 0 && pieces[0].length <= 3 * 320, `the first piece is the clause's first few frames (${pieces[0].length / 320}), on its way before the rest is decoded`);

  // Cancelled while the worker is still decoding it: the worker stops, and its next clause
  // (with the same Opus encoder back in its pool) comes out whole.
  const stop = new AbortController();
  let got = 0;
  const cancelled = pool.run({ ...job, opus: { complexity: 5 } }, stop.signal, () => {
    if (++got === 1) stop.abort();
  });
  await t.rejects(cancelled, { name: "AbortError" });
  const payloads: Uint8Array[] = [];
  await pool.run({ ...job, opus: { complexity: 5 } }, never, (_, opus) => opus && payloads.push(...unpack(opus)));
  t.equal(payloads.length, Math.ceil(samples.length / 320), "the next clause: a payload for every frame");
  t.ok(bestCorrelation(samples, decodeAll(payloads), 16000, { maxLagMs: 50 }).score > 0.9, "decoding to the whole clause");
});

t.test("a clause starts at its first sound: a WAV's leading silence is not played, its pauses and its end are; a silent WAV is no audio, not an error", async (t) => {
  const pool = new SynthesisPool(1, (message) => new TtsError(message));
  t.teardown(() => pool.close());
  const word = readWav16k(execFileSync("espeak-ng", ["-v", "en-us", "--stdout", "Hello."]));
  const speech = word.subarray(word.findIndex(loud));
  const silence = (ms: number) => new Int16Array((16000 * ms) / 1000);
  const hiss = Int16Array.from({ length: 16000 * 0.3 }, (_, i) => (i % 2 ? 20 : -20)); // −64 dBFS
  const padded = concatSamples([silence(300), hiss, speech, silence(200), speech, silence(100)]);
  const pieces: Int16Array[] = [];
  const job = async (samples: Int16Array) => piperJob(await piperServer(t, writeWav(samples, 16000)));
  await pool.run(await job(padded), never, (piece) => pieces.push(piece));
  t.same(concatSamples(pieces), concatSamples([speech, silence(200), speech, silence(100)]), "600 ms of silence and hiss below −60 dBFS left out; the pause between the words and the silence after them kept");
  t.ok(toFrames(pieces[0]).slice(0, 1).every((frame) => frame.some((x) => x > 328 || x < -328)), "the first frame sent is audible (−40 dBFS)");
  const quiet = await pool.run(await job(silence(500)), never);
  t.equal(quiet.samples.length, 0, "a WAV of silence: no audio, and the job ends without an error");
});

/** A piece's packed payloads, one per frame (copies: the piece is a view of the IPC read buffer). */
function unpack(packed: PackedPayloads): Uint8Array[] {
  return Array.from(packed.ends, (_, i) => payloadAt(packed, i).slice());
}

/** Decodes Opus payloads (16 kHz mono) into one stretch of samples. */
function decodeAll(payloads: Uint8Array[]): Int16Array {
  const decoder = new Decoder({ channels: 1, sample_rate: 16000 });
  return concatSamples(payloads.map((p) => new Int16Array(decoder.decode(p).slice().buffer)));
}

t.test("for an Opus call the speech worker also encodes the clause: one payload per 20 ms frame, decoding to the clause (espeak-ng and Piper's WAV)", async (t) => {
  const text = "It is sunny in Dusseldorf today. The temperature is twenty degrees.";
  const pool = new SynthesisPool(1, (message) => new TtsError(message));
  t.teardown(() => pool.close());
  const wav = execFileSync("espeak-ng", ["-v", "en-us", "--stdout", text]);
  const jobs = {
    "espeak-ng": { engine: "espeak-ng", voice: "en-us", speed: 165, text, wavError: "espeak-ng wrote no usable WAV", opus: { complexity: 5 } },
    "Piper's WAV": { ...piperJob(await piperServer(t, wav)), opus: { complexity: 5 } },
  } as const;
  for (const [name, job] of Object.entries(jobs)) {
    const pieces: Array<{ samples: Int16Array; opus?: Uint8Array[] }> = [];
    await pool.run(job, never, (piece, opus) => pieces.push({ samples: piece, opus: opus && unpack(opus) }));
    const samples = concatSamples(pieces.map((p) => p.samples));
    t.ok(
      pieces.every((p) => p.opus?.length === Math.ceil(p.samples.length / FRAME_SAMPLES)),
      `${name}: every piece carries one payload per frame (${pieces.length} pieces, ${toFrames(samples).length} frames)`,
    );
    const decoded = decodeAll(pieces.flatMap((p) => p.opus ?? []));
    t.equal(decoded.length, toFrames(samples).length * FRAME_SAMPLES, `${name}: the payloads are the whole clause, the last frame padded`);
    const match = bestCorrelation(samples, decoded, 16000, { maxLagMs: 200 });
    t.ok(match.score > 0.9, `${name}: the payloads decode to the clause (${match.score.toFixed(3)} at ${match.lagMs} ms)`);
  }
  const plain: Array<PackedPayloads | undefined> = [];
  await pool.run({ ...jobs["espeak-ng"], opus: undefined }, never, (_, opus) => plain.push(opus));
  t.ok(plain.length > 0 && plain.every((opus) => opus === undefined), "a G.711 call's clause comes without payloads");
});

t.test("the speech worker encodes with the agent's Opus settings: its payloads are byte for byte what the agent's own encoder makes of the clause (AGENT_OPUS_COMPLEXITY)", async (t) => {
  const text = "Tomorrow will be cloudier, with rain later in the day.";
  const pool = new SynthesisPool(1, (message) => new TtsError(message));
  t.teardown(() => pool.close());
  const job = { engine: "espeak-ng", voice: "en-us", speed: 165, text, wavError: "espeak-ng wrote no usable WAV" } as const;
  const byComplexity = new Map<number, Uint8Array[]>();
  for (const complexity of [5, 1]) {
    const payloads: Uint8Array[] = [];
    const pieces: Int16Array[] = [];
    await pool.run({ ...job, opus: { complexity } }, never, (piece, opus) => (pieces.push(piece), payloads.push(...(opus ? unpack(opus) : []))));
    const samples = concatSamples(pieces);
    // The agent's own encoder with the same settings, over the same frames (the last one zero-padded, as the speaker frames it).
    const encoder = takeEncoder({ complexity });
    t.teardown(() => releaseEncoder(encoder));
    const own = toFrames(samples).map((frame) => encoder.encode(new Uint8Array(frame.buffer, frame.byteOffset, frame.byteLength)).slice());
    t.same(payloads.map((p) => Buffer.from(p).toString("hex")), own.map((p) => Buffer.from(p).toString("hex")), `complexity ${complexity}: the worker's ${payloads.length} payloads are the agent encoder's`);
    byComplexity.set(complexity, payloads);
  }
  const differing = byComplexity.get(5)!.filter((p, i) => Buffer.compare(p, byComplexity.get(1)![i]) !== 0).length;
  t.ok(differing > byComplexity.get(5)!.length / 2, `the setting reaches the worker: ${differing} of ${byComplexity.get(5)!.length} payloads differ between complexity 5 and 1`);
});

t.test("an Opus call's reply goes out as the speech worker encoded it, none of its frames encoded on the event loop; a G.711 call's speaker asks for no payloads", async (t) => {
  const text = "The weather in Berlin is cloudy.";
  const originalEncode = Encoder.prototype.encode;
  let loopEncodes = 0;
  Encoder.prototype.encode = function (this: Encoder, ...args: Parameters<Encoder["encode"]>) {
    loopEncodes++;
    return originalEncode.apply(this, args);
  };
  t.teardown(() => void (Encoder.prototype.encode = originalEncode));
  const tts = new EspeakTts({ voice: "en-us", speed: 165 });
  const asked: boolean[] = [];
  const spy = { name: tts.name, synthesize: ((...args: Parameters<EspeakTts["synthesize"]>) => (asked.push(args[3] === true), tts.synthesize(...args))) as TtsEngine["synthesize"] };
  for (const opus of [true, false]) {
    const speaker = new Speaker(spy, processClock, () => {}, opus);
    await speaker.say(text, 0, never);
    const codec = new OpusCodec();
    t.teardown(() => codec.close());
    const frames: Int16Array[] = [];
    const payloads: Uint8Array[] = [];
    loopEncodes = 0;
    for (let frame = speaker.nextFrame(); frame; frame = speaker.nextFrame()) {
      frames.push(frame);
      payloads.push(codec.encode(frame).slice());
    }
    t.ok(frames.length > 50, `${opus ? "Opus" : "G.711"} call: ${frames.length} frames of speech`);
    if (opus) t.equal(loopEncodes, 0, "Opus call: none of the reply's frames was encoded on the event loop");
    else t.equal(loopEncodes, frames.length, "without payloads every frame is encoded on the event loop");
    const match = bestCorrelation(concatSamples(frames), decodeAll(payloads), 16000, { maxLagMs: 200 });
    t.ok(match.score > 0.9, `the payloads sent decode to the reply (${match.score.toFixed(3)})`);
  }
  t.same(asked, [true, false], "the Opus call's speaker asked the engine for payloads, the other did not");
});

t.test("speech workers: a bad WAV is named; a worker that stops fails its jobs, and the next job gets a new one", async (t) => {
  const pool = new SynthesisPool(1, (message) => new TtsError(message));
  const proxy = await piperServer(t, new TextEncoder().encode("<html>502 Bad Gateway</html>"));
  await t.rejects(pool.run(piperJob(proxy), never), { name: "TtsError", message: `Piper at ${proxy} sent no usable WAV: not a RIFF/WAVE file` });
  const long = { engine: "espeak-ng", voice: "en-us", speed: 160, text: "A long sentence that takes a while. ".repeat(20), wavError: "espeak-ng wrote no usable WAV" } as const;
  const pending = pool.run(long, never);
  await pool.close();
  await t.rejects(pending, { name: "TtsError", message: "speech worker ended (SIGTERM)" });
  const again = await pool.run({ ...long, text: "Hello." }, never);
  t.ok(again.samples.length > 8000, "a new worker speaks");
  await pool.close();
});
