/** Voice activity (libfvad) and turn detection on real espeak-ng speech with pauses and noise. */
import t from "tap";
import { execFileSync } from "node:child_process";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { readWav16k, toFrames } from "../../media-agent/src/audio/wav.js";
import { concatSamples } from "../../media-agent/src/audio/frames.js";
import { TurnDetector, WebRtcVad, type TurnEvent } from "../../media-agent/src/pipeline/vad.js";

function espeak(text: string): Int16Array {
  return readWav16k(execFileSync("espeak-ng", ["-v", "en-us", "--stdout", text]));
}


const silence = (s: number) => new Int16Array(Math.round(16000 * s));
let seed = 3;
const noise = (s: number, amplitude: number) => Int16Array.from({ length: Math.round(16000 * s) }, () => Math.round((((seed = (seed * 69069 + 1) >>> 0) / 2 ** 32) - 0.5) * amplitude));

async function turns(audio: Int16Array, opts = {}): Promise<TurnEvent[]> {
  const detector = new TurnDetector(await WebRtcVad.create(3), opts);
  return toFrames(audio).map((f) => detector.push(f)).filter((e): e is TurnEvent => e !== null);
}

t.test("two sentences with a long pause are two turns; a short pause inside one is not a turn end", async (t) => {
  const first = espeak("What is the weather in Dusseldorf?");
  const audio = concatSamples([silence(0.5), first, silence(1.2), espeak("And tomorrow, please."), silence(1)]);
  const events = (await turns(audio)).filter((e) => e.type !== "pause");
  t.same(events.map((e) => e.type), ["speech-start", "turn", "speech-start", "turn"]);
  const turn = events[1] as Extract<TurnEvent, { type: "turn" }>;
  t.ok(Math.abs(turn.startFrame * 20 - 500) <= 120, `first turn starts at ${turn.startFrame * 20} ms (speech at 500 ms)`);
  t.ok(turn.audio.length >= first.length, "the turn's audio holds the whole sentence, pre-roll included");
  t.ok(turn.speechMs > 1000, `${turn.speechMs} ms of speech`);
});

t.test("hangover: a caller's 600 ms pause mid-sentence ends the turn only when the hangover is shorter", async (t) => {
  const audio = concatSamples([silence(0.3), espeak("I would like"), silence(0.6), espeak("to order a taxi."), silence(1.5)]);
  t.equal((await turns(audio, { hangoverMs: 1000 })).filter((e) => e.type === "turn").length, 1, "1000 ms hangover: one turn");
  t.equal((await turns(audio, { hangoverMs: 300 })).filter((e) => e.type === "turn").length, 2, "300 ms hangover: cut in two");
});

t.test("a pause of sttAfterMs hands over the turn so far; the turn that ends in that silence has the same speech", async (t) => {
  const audio = concatSamples([silence(0.3), espeak("I would like"), silence(0.2), espeak("to order a taxi."), silence(1)]);
  const events = await turns(audio, { hangoverMs: 600, sttAfterMs: 200 });
  const kinds = events.map((e) => e.type);
  t.same(kinds.filter((k) => k !== "pause"), ["speech-start", "turn"], "the pause inside the sentence does not end the turn (hangover 600 ms)");
  const pauses = events.filter((e): e is Extract<TurnEvent, { type: "pause" }> => e.type === "pause");
  t.ok(pauses.length >= 2, `a pause after 'I would like' and one at the end (${pauses.length})`);
  t.equal(kinds[kinds.length - 2], "pause", "the turn's end follows a pause");
  const last = pauses[pauses.length - 1];
  const turn = events[events.length - 1] as Extract<TurnEvent, { type: "turn" }>;
  t.equal(last.speechMs, turn.speechMs, "no speech between the last pause and the turn's end");
  t.same(turn.audio.subarray(0, last.audio.length), last.audio, "the pause's audio is the turn's, without the rest of the hangover");
  // The pause is counted from the word's end (libfvad's overhang of quiet frames included), the hangover from libfvad's silence.
  t.ok(turn.silenceMs > 600 && turn.silenceMs <= 600 + 100, `the speech ended ${turn.silenceMs} ms before the turn's end: the hangover and libfvad's overhang`);
  t.equal(turn.audio.length - last.audio.length, ((turn.silenceMs - 200) / 20) * 320, "the turn adds only the rest of the silence after the pause");
  t.same((await turns(audio, { hangoverMs: 600, sttAfterMs: 600 })).filter((e) => e.type === "pause"), [], "no early STT at sttAfterMs ≥ hangoverMs");
});

t.test("the early STT's pause starts at a word's end, inside libfvad's overhang; over noise as loud as the voice it waits for libfvad's silence", async (t) => {
  const sentence = espeak("What is the weather in Bonn?");
  // The frame after the last word (espeak-ng ends its WAV with some silence of its own).
  let lastSound = sentence.length - 1;
  while (Math.abs(sentence[lastSound]) <= 300) lastSound--;
  const end = Math.ceil((0.3 * 16000 + lastSound) / 320);
  const pauseFrame = async (tail: Int16Array) => {
    const detector = new TurnDetector(await WebRtcVad.create(3), { hangoverMs: 600, sttAfterMs: 40 });
    const frames = toFrames(concatSamples([silence(0.3), sentence, tail]));
    // The last pause: there are shorter ones between the words.
    return frames.map((f) => detector.push(f)?.type).lastIndexOf("pause");
  };
  const clean = await pauseFrame(silence(1));
  t.ok(clean >= end && clean - end <= 3, `clean line: the pause ${(clean - end) * 20} ms after the last word (40 ms asked)`);
  const noisy = await pauseFrame(concatSamples([noise(0.3, 12000), silence(1)]));
  t.ok(noisy - end >= 15, `loud noise after the words: no early pause during it (${(noisy - end) * 20} ms after the last word)`);
});

t.test("an early end asked for while libfvad still hears the word's end waits for its silence; speech meanwhile cancels it", async (t) => {
  // A VAD that, like libfvad in its overhang, calls any sound speech; the level says what is quiet.
  const vad = { isSpeech: (f: Int16Array) => f.some((x) => x !== 0) };
  const frame = (amplitude: number) => new Int16Array(320).fill(amplitude);
  const start = (detector: TurnDetector) => {
    for (let i = 0; i < 15; i++) detector.push(frame(8000)); // 300 ms of speech: a turn
    const events = [1, 2, 3].map(() => detector.push(frame(20))); // −64 dBFS: a word's end
    t.equal(events.filter((e) => e?.type === "pause").length, 1, "the pause for the STT comes in the quiet frames");
  };
  const ending = new TurnDetector(vad, { hangoverMs: 400, sttAfterMs: 40 });
  start(ending);
  t.equal(ending.endTurnNow(), null, "not while the VAD still says speech");
  t.equal(ending.push(frame(20)), null, "nor on another quiet frame it calls speech");
  const turn = ending.push(frame(0));
  t.match(turn, { type: "turn", silenceMs: 100 }, "the turn ends on the first silent frame, counted from the word's end");

  const goingOn = new TurnDetector(vad, { hangoverMs: 400, sttAfterMs: 40 });
  start(goingOn);
  t.equal(goingOn.endTurnNow(), null);
  goingOn.push(frame(8000)); // the caller goes on
  const after = [1, 2, 3].map(() => goingOn.push(frame(0)));
  t.notOk(after.some((e) => e?.type === "turn"), "speech after the request cancels the early end: the hangover decides");
});

t.test("clicks and background noise are not turns", async (t) => {
  const click = Int16Array.from({ length: 800 }, (_, i) => (i % 40 < 20 ? 12000 : -12000));
  t.same(await turns(concatSamples([silence(0.5), click, silence(1), noise(2, 300), silence(0.5)])), [], "a 50 ms click and quiet hiss");
});

t.test("the turn's audio is the caller's frames as pushed, from copies: no frame handed over is kept alive", async (t) => {
  // Every listening call's frames were kept 400 ms (the pre-roll) and a turn's for its length:
  // old-generation garbage for the mark-compacts, pauses of the event loop that paces every call.
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  const vad = { isSpeech: (f: Int16Array) => f[0] !== 0 };
  const detector = new TurnDetector(vad, { hangoverMs: 400, minSpeechMs: 200, preRollMs: 200, sttAfterMs: 20 });
  const refs: Array<WeakRef<Int16Array>> = [];
  // Frame i holds i + 1 (speech) or 0 (silence); the caller's side reuses each frame's memory
  // once it is pushed. In a function of its own, so that no frame stays on the test's stack.
  const events = ((): TurnEvent[] => {
    const out: TurnEvent[] = [];
    const plan = [...Array(30).fill(false), ...Array(40).fill(true), ...Array(25).fill(false)] as boolean[];
    plan.forEach((speech, i) => {
      const frame = new Int16Array(320).fill(speech ? i + 1 : 0);
      refs.push(new WeakRef(frame));
      const event = detector.push(frame);
      frame.fill(-7);
      if (event) out.push(event);
    });
    return out;
  })();
  const pause = events.find((e) => e.type === "pause");
  const turn = events.find((e) => e.type === "turn");
  if (!pause || pause.type !== "pause" || !turn || turn.type !== "turn") return t.fail(`a pause and a turn: ${JSON.stringify(events.map((e) => e.type))}`);
  const values = (audio: Int16Array) => Array.from({ length: audio.length / 320 }, (_, k) => audio[k * 320]);
  const voiced = Array.from({ length: 40 }, (_, k) => 31 + k);
  t.same(values(pause.audio), [...Array(10).fill(0), ...voiced, 0], "the pause's audio: 200 ms of pre-roll, the speech, the first quiet frame");
  t.same(values(turn.audio).slice(0, 51), values(pause.audio), "the turn's audio begins with the same frames");
  t.notOk(turn.audio.includes(-7), "nothing of the reused memory");
  await new Promise((done) => setImmediate(done)); // WeakRefs hold their targets until the job ends
  gc();
  t.same(refs.filter((r) => r.deref() !== undefined).length, 0, "no frame handed over is kept alive");
});
