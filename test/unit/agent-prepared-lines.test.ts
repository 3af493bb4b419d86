/**
 * The profile's filler kept in memory (prepared-lines.ts): synthesised once, then handed over at
 * once in every call, as the engine made it (Opus payloads to Opus calls only); anything else
 * goes to the engine as before, and a line cut short or failed is not kept.
 */
import t from "tap";
import { packPayloads } from "../../media-agent/src/codecs/opus.js";
import { PreparedLines } from "../../media-agent/src/pipeline/prepared-lines.js";
import type { OnAudio } from "../../media-agent/src/pipeline/synthesis-pool.js";
import type { Speech, TtsEngine, WholeSpeech } from "../../media-agent/src/pipeline/tts.js";

const FILLER = "One moment.";

/** An engine that streams each text as two pieces (with one payload per 160 samples when asked for Opus); `fail` makes it reject. */
class CountingEngine implements TtsEngine {
  readonly name = "counting";
  readonly requests: Array<{ text: string; opus: boolean }> = [];
  fail: string | null = null;

  synthesize(text: string, signal: AbortSignal): Promise<WholeSpeech>;
  synthesize(text: string, signal: AbortSignal, onAudio?: OnAudio, opus?: boolean): Promise<Speech>;
  async synthesize(text: string, signal: AbortSignal, onAudio?: OnAudio, opus = false): Promise<Speech> {
    this.requests.push({ text, opus });
    await new Promise((done) => setTimeout(done, 5));
    if (this.fail) throw new Error(this.fail);
    for (const value of [1, 2]) {
      if (signal.aborted) throw signal.reason;
      const samples = new Int16Array(320).fill(value);
      onAudio?.(samples, opus ? packPayloads([new Uint8Array([value]), new Uint8Array([value, value])]) : undefined);
    }
    return { samples: onAudio ? null : new Int16Array(640), firstByteMs: 5, synthesisMs: 5 };
  }
}

/** What a speaker would get: each piece's first sample and its payloads' bytes. */
async function heard(lines: PreparedLines, text: string, opus: boolean, signal = new AbortController().signal) {
  const pieces: Array<{ first: number; payloads: number[] | null }> = [];
  const speech = await lines.synthesize(text, signal, (samples, payloads) => pieces.push({ first: samples[0], payloads: payloads ? [...payloads.bytes] : null }), opus);
  return { pieces, firstByteMs: speech.firstByteMs };
}

t.test("the filler is synthesised once and then handed over at once, its Opus payloads to Opus calls only", async (t) => {
  const engine = new CountingEngine();
  const lines = new PreparedLines(engine, [FILLER]);
  await lines.prepare(new AbortController().signal);
  t.same(engine.requests, [{ text: FILLER, opus: true }], "prepared with Opus payloads");
  t.same(await heard(lines, FILLER, true), { pieces: [{ first: 1, payloads: [1, 1, 1] }, { first: 2, payloads: [2, 2, 2] }], firstByteMs: 0 });
  t.same(await heard(lines, FILLER, false), { pieces: [{ first: 1, payloads: null }, { first: 2, payloads: null }], firstByteMs: 0 }, "a G.711 call gets the samples");
  t.equal(engine.requests.length, 1, "no more requests");
  await lines.prepare(new AbortController().signal);
  t.equal(engine.requests.length, 1, "preparing again asks for nothing");
});

t.test("other text goes to the engine every time; the filler is kept from its first whole synthesis", async (t) => {
  const engine = new CountingEngine();
  const lines = new PreparedLines(engine, [FILLER]);
  t.same((await heard(lines, "Sunny.", true)).firstByteMs, 5);
  t.same((await heard(lines, "Sunny.", true)).firstByteMs, 5);
  t.same((await heard(lines, FILLER, false)).pieces.map((p) => p.first), [1, 2], "the first filler comes from the engine");
  t.same(await heard(lines, FILLER, true), { pieces: [{ first: 1, payloads: null }, { first: 2, payloads: null }], firstByteMs: 0 }, "kept without payloads: the Opus call encodes it itself");
  t.same(engine.requests.map((r) => r.text), ["Sunny.", "Sunny.", FILLER]);
});

t.test("a filler cut short or failed is not kept: the next one is synthesised", async (t) => {
  const engine = new CountingEngine();
  const lines = new PreparedLines(engine, [FILLER]);
  engine.fail = "espeak-ng exited with 1";
  await t.rejects(lines.prepare(new AbortController().signal), /espeak-ng exited with 1/);
  t.notOk(lines.has(FILLER));
  engine.fail = null;
  const abort = new AbortController();
  const cut = lines.synthesize(FILLER, abort.signal, () => abort.abort(), true);
  await t.rejects(cut);
  t.notOk(lines.has(FILLER), "the aborted one is not kept");
  t.same((await heard(lines, FILLER, true)).firstByteMs, 5, "synthesised again");
  t.ok(lines.has(FILLER));
  t.equal(engine.requests.length, 3);
});
