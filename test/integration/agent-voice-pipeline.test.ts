/**
 * The voice pipeline alone on its real engines, on a 20 ms clock in real time (no SIP, no RTP):
 * caller frames of real speech in (espeak-ng), agent frames out, with libfvad, the HTTP engine
 * doubles (recognising STT, scripted Ollama) and espeak-ng. What depends on real audio and real
 * engines: barge-in on real speech (a backchannel lets the reply go on, a question stops it
 * within one frame and the LLM gets only the words heard), clause order and streaming by audio
 * correlation, the early STT on a real pause. Every other conversation behaviour is tested in
 * fake time (test/unit/agent-voice-stages.test.ts).
 */
import t from "tap";
import { concatSamples, FRAME_SAMPLES, type PcmFrame } from "../../media-agent/src/audio/frames.js";
import { toFrames } from "../../media-agent/src/audio/wav.js";
import { EspeakTts, type TtsEngine } from "../../media-agent/src/pipeline/tts.js";
import type { OnAudio } from "../../media-agent/src/pipeline/synthesis-pool.js";
import { bestCorrelation } from "../../media-agent/src/audio/compare.js";
import { WebRtcVad } from "../../media-agent/src/pipeline/vad.js";
import { readTrace, type TraceRecord } from "../../media-agent/src/pipeline/turn-trace.js";
import { VoicePipeline } from "../../media-agent/src/pipeline/voice-pipeline.js";
import { parseVoiceProfiles, voiceProfile } from "../../media-agent/src/pipeline/voice-profiles.js";
import { startOllamaDouble } from "../../doubles/ollama-double.js";
import { startSttDouble } from "../../doubles/stt-double.js";
import { tempDir } from "../support/temp-dir.js";
import type { Teardown } from "../../build/teardown.js";

// Real time with espeak-ng: the file takes about a minute and a half.
t.setTimeout(240_000);

const GREETING = "Hello, this is the weather line. You can ask me about the weather in any city in Germany, today or tomorrow.";
const never = new AbortController().signal;
const speech = async (text: string) => (await new EspeakTts({ voice: "en-us", speed: 165 }).synthesize(text, never)).samples;
const silence = (ms: number) => new Int16Array((ms / 20) * FRAME_SAMPLES);


interface Run {
  /** Per agent frame slot: whether audio went out. */
  out: boolean[];
  /** Everything the agent said, silence included. */
  said: Int16Array;
  trace: TraceRecord[];
}

/** Plays the caller's audio into a pipeline frame by frame, 20 ms apart, collecting what it says. */
async function converse(
  t: Teardown,
  caller: Int16Array,
  stt: string,
  ollama: string,
  tailMs: number,
  opts: {
    profile?: Record<string, unknown>;
    tts?: (engine: TtsEngine) => TtsEngine;
  } = {},
): Promise<Run> {
  const dir = tempDir(t, "wa-pipeline-");
  const spec = parseVoiceProfiles(
    JSON.stringify({
      weather: {
        greeting: GREETING,
        systemPrompt: "Weather line.",
        language: "en",
        stt: { url: stt },
        llm: { url: ollama, model: "llama3.2:3b" },
        tts: { engine: "espeak-ng", speed: 165 },
        ...opts.profile,
      },
    }),
    "test",
  ).weather;
  const pipeline: VoicePipeline = new VoicePipeline(
    { callId: "call-1", direction: "inbound", profile: "weather", businessNumber: "+4921100000", remoteNumber: "+4917600000", codec: "opus" },
    {
      hangUp: () => undefined,
      transfer: async () => ({ ok: false, reason: "not in this test" }),
    },
    (() => {
      const profile = voiceProfile(spec, dir);
      return opts.tts ? { ...profile, tts: opts.tts(profile.tts) } : profile;
    })(),
    { vad: await WebRtcVad.create(3) },
  );
  const frames = toFrames(concatSamples([caller, silence(tailMs)]));
  const out: boolean[] = [];
  const said: PcmFrame[] = [];
  const started = performance.now();
  for (let i = 0; i < frames.length; i++) {
    pipeline.onCallerFrame(frames[i] as PcmFrame);
    const frame = pipeline.nextAgentFrame();
    out.push(frame !== null);
    said.push(frame ?? new Int16Array(FRAME_SAMPLES));
    const wait = started + (i + 1) * 20 - performance.now();
    await new Promise((done) => setTimeout(done, Math.max(0, wait)));
  }
  await pipeline.close();
  const trace = readTrace(dir, "call-1");
  return { out, said: concatSamples(said), trace };
}

t.test("'Yes, yes.' over the greeting pauses it, then the greeting goes on to the end; nothing reaches the LLM", async (t) => {
  const yes = await speech("Yes, yes.");
  const greetingFrames = toFrames(await speech(GREETING)).length;
  const stt = await startSttDouble(t, { phrases: [{ text: " Yes, yes.", samples16k: yes }] });
  const ollama = await startOllamaDouble(t, { script: [] });
  const run = await converse(t, concatSamples([silence(2000), yes]), stt.url, ollama.url, 9000);
  const spoken = run.out.filter(Boolean).length;
  t.equal(spoken, greetingFrames, `every frame of the greeting went out (${spoken} of ${greetingFrames})`);
  const firstGap = run.out.indexOf(false, run.out.indexOf(true));
  const resumedAt = run.out.indexOf(true, firstGap);
  t.ok(resumedAt - firstGap > 20, `the greeting paused for ${(resumedAt - firstGap) * 20} ms while the caller's words were checked`);
  t.same(ollama.requests, [], "a backchannel is not a turn for the LLM");
  const greeting = run.trace.find((r) => r.turn === 0)!;
  t.match(greeting.bargeIn, { outcome: "reply went on: backchannel 'Yes, yes.'" });
  t.equal(greeting.spoken, GREETING);
  t.match(run.trace.find((r) => r.turn === 1), { resumedReply: "backchannel 'Yes, yes.'", stt: { text: " Yes, yes." } });
});

t.test("a question over the greeting stops it within one frame; the LLM gets the heard part and the question", async (t) => {
  const question = await speech("What about the weather in Berlin?");
  const stt = await startSttDouble(t, { phrases: [{ text: " What about the weather in Berlin?", samples16k: question }] });
  const ollama = await startOllamaDouble(t, { script: [{ text: "Berlin is cloudy." }] });
  const onsetFrame = 2000 / 20;
  const run = await converse(t, concatSamples([silence(2000), question]), stt.url, ollama.url, 4000);
  const lastGreetingFrame = run.out.lastIndexOf(true, onsetFrame + 50);
  const stopFrames = lastGreetingFrame - onsetFrame + 1;
  t.comment(`agent audio stopped ${stopFrames * 20} ms after the caller's speech began (barge-in threshold 200 ms, VAD onset included)`);
  t.ok(stopFrames * 20 <= 200 + 100, "stopped right after the 200 ms barge-in threshold");
  t.equal(ollama.requests.length, 1);
  const messages = (ollama.requests[0] as { messages: Array<{ role: string; content: string }> }).messages;
  const assistant = messages[messages.length - 2];
  t.equal(assistant.role, "assistant");
  t.ok(assistant.content.length < GREETING.length && assistant.content.endsWith("…") && GREETING.startsWith(assistant.content.split(" ")[0]), `the truncated greeting: '${assistant.content}'`);
  t.same(messages[messages.length - 1], { role: "user", content: "What about the weather in Berlin?" });
  const greeting = run.trace.find((r) => r.turn === 0)!;
  t.match(greeting, { bargeIn: { outcome: "reply stopped", heard: assistant.content }, spoken: assistant.content });
  t.comment(`trace: last agent packet ${greeting.bargeIn?.stopMs} ms after the onset`);
});

t.test("clauses synthesised in parallel play in the order they were written, even when a later one is ready first", async (t) => {
  const SLOW = "The first sentence is long and takes the engine a while.";
  const FAST = "Then a short one.";
  const question = await speech("Tell me something.");
  const stt = await startSttDouble(t, { phrases: [{ text: " Tell me something.", samples16k: question }] });
  const ollama = await startOllamaDouble(t, { script: [{ text: `${SLOW} ${FAST}` }] });
  const run = await converse(t, concatSamples([silence(300), question]), stt.url, ollama.url, 9000, {
    profile: { greeting: "Hi." },
    tts: (engine) => ({
      name: engine.name,
      async synthesize(text, signal) {
        const speech = await engine.synthesize(text, signal);
        if (text === SLOW) await new Promise((done) => setTimeout(done, 800));
        return speech;
      },
    }),
  });
  const slow = bestCorrelation(await speech(SLOW), run.said, 16000, { maxLagMs: 15_000 });
  const fast = bestCorrelation(await speech(FAST), run.said, 16000, { maxLagMs: 15_000 });
  t.ok(slow.score > 0.8 && fast.score > 0.8, `both clauses were said (${slow.score.toFixed(2)}, ${fast.score.toFixed(2)})`);
  t.ok(fast.lagMs > slow.lagMs + 2000, `the short clause came after the long one (${slow.lagMs} ms, then ${fast.lagMs} ms)`);
});

t.test("a clause plays from its first synthesised frames on, not once the engine has finished it", async (t) => {
  const question = await speech("What is the weather in Bonn?");
  const ANSWER = "In Bonn it is sunny and warm, with a light breeze from the west all afternoon.";
  const stt = await startSttDouble(t, { phrases: [{ text: " What is the weather in Bonn?", samples16k: question }] });
  const ollama = await startOllamaDouble(t, { script: [{ text: ANSWER }] });
  const finished: Record<string, number> = {};
  const run = await converse(t, concatSamples([silence(500), question]), stt.url, ollama.url, 6000, {
    profile: { greeting: "Hi." },
    // An engine that streams: 10 frames every 100 ms (half real time), the clause done at the end.
    tts: (engine) => ({
      name: engine.name,
      async synthesize(text: string, signal: AbortSignal, onAudio?: OnAudio) {
        const started = performance.now();
        const whole = await engine.synthesize(text, signal);
        for (let at = 0; at < whole.samples.length; at += 10 * FRAME_SAMPLES) {
          onAudio?.(whole.samples.slice(at, at + 10 * FRAME_SAMPLES));
          await new Promise((done) => setTimeout(done, 100));
        }
        finished[text] = performance.now();
        return { ...whole, synthesisMs: performance.now() - started };
      },
    }),
  });
  const turn = run.trace.find((r) => r.stt)!;
  const clause = turn.tts[0];
  t.ok(clause.synthesisMs! > 800, `the engine took ${clause.synthesisMs} ms for the first clause ('${clause.text}')`);
  t.ok(turn.firstPacketOutMs! < clause.requestMs + 300, `its first packet left ${turn.firstPacketOutMs! - clause.requestMs} ms after the request`);
  t.ok(turn.firstAudibleOutMs! >= turn.firstPacketOutMs!, `first audible packet at ${turn.firstAudibleOutMs} ms (first packet ${turn.firstPacketOutMs} ms)`);
  const heard = bestCorrelation(await speech(ANSWER), run.said, 16000, { maxLagMs: 15_000 });
  t.ok(heard.score > 0.8, `the whole clause was said, underruns and all (${heard.score.toFixed(2)})`);
});

t.test("the STT starts at the caller's short pause: a finished sentence ends the turn then, an unfinished one when the hangover has passed", async (t) => {
  const question = await speech("What is the weather in Bonn?");
  const stt = await startSttDouble(t, { phrases: [{ text: " What is the weather in Bonn?", samples16k: question }], delayMs: 150 });
  const ollama = await startOllamaDouble(t, { script: [{ text: "Sunny." }] });
  const run = await converse(t, concatSamples([silence(1500), question]), stt.url, ollama.url, 3000, {
    profile: { greeting: "Hi.", turns: { hangoverMs: 400, sttAfterMs: 200 } },
  });
  const turn = run.trace.find((r) => r.stt)!;
  t.equal(turn.stt!.text, " What is the weather in Bonn?");
  t.equal(stt.requests.length, 1, "one STT request for the turn");
  t.ok(turn.turnDecidedMs! >= 300 && turn.turnDecidedMs! < 400, `a finished question ends the turn when its transcript is back (${turn.turnDecidedMs} ms of silence), before the 400 ms hangover`);
  t.ok(turn.llm[0].requestMs < 400, `LLM asked ${turn.llm[0].requestMs} ms after the caller's last speech (STT 150 ms from the 200 ms pause)`);

  // A transcript that does not end like a sentence waits for the hangover.
  const unfinished = await startSttDouble(t, { phrases: [{ text: " What is the weather in", samples16k: question }], delayMs: 150 });
  const ollama3 = await startOllamaDouble(t, { script: [{ text: "Where?" }] });
  const waited = await converse(t, concatSamples([silence(1500), question]), unfinished.url, ollama3.url, 3000, {
    profile: { greeting: "Hi.", turns: { hangoverMs: 400, sttAfterMs: 200 } },
  });
  const turn3 = waited.trace.find((r) => r.stt)!;
  // The hangover counts libfvad's silence, which begins after its overhang (60–100 ms) past the word's end.
  t.ok(turn3.turnDecidedMs! >= 400 + 60 && turn3.turnDecidedMs! <= 400 + 100, `an unfinished sentence: the hangover decides (${turn3.turnDecidedMs} ms after the last word)`);
  t.ok(turn3.llm[0].requestMs < turn3.turnDecidedMs! + 60, `and the transcript is already there then (LLM at ${turn3.llm[0].requestMs} ms)`);

  const late = await startSttDouble(t, { phrases: [{ text: " What is the weather in Bonn?", samples16k: question }], delayMs: 150 });
  const ollama2 = await startOllamaDouble(t, { script: [{ text: "Sunny." }] });
  const without = await converse(t, concatSamples([silence(1500), question]), late.url, ollama2.url, 3000, {
    profile: { greeting: "Hi.", turns: { hangoverMs: 400, sttAfterMs: 400 } },
  });
  const turn2 = without.trace.find((r) => r.stt)!;
  t.ok(turn2.llm[0].requestMs >= 400 + 150, `without the early request: ${turn2.llm[0].requestMs} ms`);
});

