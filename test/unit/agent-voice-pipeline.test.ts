/**
 * The voice pipeline alone, on a 20 ms clock in real time (no SIP, no RTP): caller frames in,
 * agent frames out, with the engine doubles (recognising STT, scripted Ollama) and espeak-ng.
 * Barge-in with a backchannel lets the reply go on; a real interruption stops it within one
 * frame and the LLM gets only the words that were heard.
 */
import t from "tap";
import type { TransferResult } from "../../media-agent/src/audio/call-audio.js";
import { concatSamples, FRAME_SAMPLES, type PcmFrame } from "../../media-agent/src/audio/frames.js";
import { toFrames } from "../../media-agent/src/audio/wav.js";
import { EspeakTts, type TtsEngine } from "../../media-agent/src/pipeline/tts.js";
import { bestCorrelation } from "../../media-agent/src/audio/compare.js";
import { WebRtcVad } from "../../media-agent/src/pipeline/vad.js";
import { readTrace, type TraceRecord } from "../../media-agent/src/pipeline/turn-trace.js";
import { VoicePipeline } from "../../media-agent/src/pipeline/voice-pipeline.js";
import { parseVoiceProfiles, voiceProfile } from "../../media-agent/src/pipeline/voice-profiles.js";
import { startOllamaDouble } from "../../build/doubles/ollama-double.js";
import { startSttDouble } from "../../build/doubles/stt-double.js";
import { tempDir } from "../support/temp-dir.js";
import type { Teardown } from "../../build/teardown.js";

// Real time with espeak-ng: the file takes about 3 minutes (issue 10 asks for fake-time tests instead).
t.setTimeout(300_000);

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
    transfer?: (pipeline: VoicePipeline, target: string) => Promise<TransferResult>;
    tts?: (engine: TtsEngine) => TtsEngine;
    hangUp?: (reason: string) => void;
    /** Key presses by caller frame index. */
    dtmf?: Record<number, string>;
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
      hangUp: (reason) => opts.hangUp?.(reason),
      transfer: async (target) => (opts.transfer ? opts.transfer(pipeline, target) : { ok: false, reason: "not in this test" }),
    },
    (() => {
      const profile = voiceProfile(spec, dir);
      return opts.tts ? { ...profile, tts: opts.tts(profile.tts) } : profile;
    })(),
    await WebRtcVad.create(3),
  );
  const frames = toFrames(concatSamples([caller, silence(tailMs)]));
  const out: boolean[] = [];
  const said: PcmFrame[] = [];
  const started = performance.now();
  for (let i = 0; i < frames.length; i++) {
    pipeline.onCallerFrame(frames[i] as PcmFrame);
    if (opts.dtmf?.[i]) pipeline.onDtmf(opts.dtmf[i]);
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

t.test("transfer_call: the announcement is played, the person's phone called; a failed transfer goes back to the model", async (t) => {
  const question = await speech("Can I talk to a person please?");
  const stt = await startSttDouble(t, { phrases: [{ text: " Can I talk to a person please?", samples16k: question }] });
  const ollama = await startOllamaDouble(t, {
    script: [{ toolCalls: [{ function: { name: "transfer_call", arguments: { reason: "caller asked for a person" } } }] }, { text: "Sorry, nobody is free right now." }],
  });
  const ANNOUNCEMENT = "Please hold the line.";
  const announcementFrames = toFrames(await speech(ANNOUNCEMENT)).length;
  const called: string[] = [];
  const run = await converse(t, concatSamples([silence(500), question]), stt.url, ollama.url, 6000, {
    profile: { greeting: "Hi.", tools: ["transfer_call"], transfer: { target: "sip:support@pbx.example.com", ringTimeoutMs: 5000, announcement: ANNOUNCEMENT } },
    transfer: async (_pipeline, target) => {
      called.push(target);
      return { ok: false, reason: "486 Busy Here" };
    },
  });
  t.same(called, ["sip:support@pbx.example.com"], "the person's phone was called");
  t.equal(ollama.requests.length, 2, "the failure went back to the model");
  const messages = (ollama.requests[1] as { messages: Array<{ role: string; content: string; tool_name?: string }> }).messages;
  t.match(messages[messages.length - 1], { role: "tool", tool_name: "transfer_call", content: /^The transfer failed \(486 Busy Here\)/ });
  const turn = run.trace.find((r) => r.toolResults.length)!;
  t.match(turn.tts.map((x) => x.text), [ANNOUNCEMENT, "Sorry, nobody is free right now."]);
  t.ok(run.out.filter(Boolean).length >= announcementFrames, "the announcement was played");
});

t.test("transfer_call answered: the pipeline is closed by the agent and says nothing more", async (t) => {
  const question = await speech("Can I talk to a person please?");
  const stt = await startSttDouble(t, { phrases: [{ text: " Can I talk to a person please?", samples16k: question }] });
  const ollama = await startOllamaDouble(t, { script: [{ toolCalls: [{ function: { name: "transfer_call", arguments: {} } }] }, { text: "This must never be said." }] });
  const run = await converse(t, concatSamples([silence(500), question]), stt.url, ollama.url, 5000, {
    profile: { greeting: "Hi.", tools: ["transfer_call"], transfer: { target: "sip:support@pbx.example.com", announcement: "Please hold the line." } },
    transfer: async (pipeline) => {
      await pipeline.close(); // what the agent does once the person answers
      return { ok: true };
    },
  });
  t.equal(ollama.requests.length, 1, "no LLM round after the transfer");
  t.notOk(run.trace.some((r) => r.tts.some((x) => x.text === "This must never be said.")));
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

t.test("a mapped key during the greeting stops it and transfers; an unmapped key is only traced", async (t) => {
  const stt = await startSttDouble(t, { phrases: [] });
  const ollama = await startOllamaDouble(t, { script: [] });
  const calls: string[] = [];
  const run = await converse(t, silence(1500), stt.url, ollama.url, 4000, {
    profile: { dtmf: { "0": "transfer" }, transfer: { target: "sip:support@pbx.example.com", announcement: "Connecting you.", unavailable: "Nobody is free." } },
    dtmf: { 50: "5", 75: "0" },
    transfer: async (_p, target) => (calls.push(target), { ok: false, reason: "486 Busy Here" }),
  });
  t.same(calls, ["sip:support@pbx.example.com"], "0 transferred");
  const greeting = run.trace.find((r) => r.turn === 0)!;
  t.match(greeting.bargeIn, { outcome: "reply stopped by DTMF 0" });
  t.ok(greeting.bargeIn!.stopMs >= 0 && greeting.bargeIn!.stopMs <= 20, `stopped ${greeting.bargeIn!.stopMs} ms after the key press, never before it`);
  t.ok(greeting.spoken!.length < GREETING.length, `the greeting was cut: '${greeting.spoken}'`);
  t.match(run.trace.find((r) => r.dtmf === "5"), { spoken: "" }, "5 is not mapped: traced, nothing done");
  t.match(run.trace.find((r) => r.dtmf === "0"), { tts: [{ text: "Connecting you." }, { text: "Nobody is free." }], spoken: "Nobody is free." });
  t.same(ollama.requests, [], "no LLM involved");
});

t.test("after maxRepeats unclear turns the fallback is said, then its action (end the call)", async (t) => {
  const unclear = await speech("I would like to ask you about something.");
  const stt = await startSttDouble(t, { phrases: [{ text: " I would like to ask you about something.", samples16k: unclear, segment: { avg_logprob: -1.5, no_speech_prob: 0.8 } }] });
  const ollama = await startOllamaDouble(t, { script: [] });
  const hangUps: string[] = [];
  const run = await converse(t, concatSamples([silence(300), unclear]), stt.url, ollama.url, 7000, {
    profile: { greeting: "Hi.", maxRepeats: 1, fallback: "Please write to us on WhatsApp instead.", fallbackAction: "end-call", goodbye: "Goodbye." },
    hangUp: (reason) => hangUps.push(reason),
  });
  t.same(hangUps, ["fallback: goodbye"]);
  t.match(run.trace.find((r) => r.stt), { stt: { verdict: "ask-to-repeat" }, tts: [{ text: "Please write to us on WhatsApp instead." }, { text: "Goodbye." }] });
  t.same(ollama.requests, []);
});

t.test("a silent caller: a reprompt after idle.repromptAfterMs, then the goodbye and the hang-up", async (t) => {
  const stt = await startSttDouble(t, { phrases: [] });
  const ollama = await startOllamaDouble(t, { script: [] });
  const hangUps: Array<{ reason: string; atMs: number }> = [];
  const started = performance.now();
  const run = await converse(t, silence(500), stt.url, ollama.url, 9000, {
    profile: { greeting: "Hi.", idle: { repromptAfterMs: 2000, maxReprompts: 1, reprompt: "Are you still there?" }, goodbye: "Goodbye." },
    hangUp: (reason) => hangUps.push({ reason, atMs: performance.now() - started }),
  });
  const idle = run.trace.filter((r) => r.idle);
  t.same(idle.map((r) => [r.idle, r.spoken]), [["reprompt 1", "Are you still there?"], ["goodbye", "Goodbye."]]);
  // Speech runs: the greeting, the reprompt, the goodbye, each after 2 s of the agent's silence.
  const runs: Array<[number, number]> = [];
  run.out.forEach((on, i) => {
    if (on && (i === 0 || !run.out[i - 1])) runs.push([i, i]);
    if (on) runs[runs.length - 1][1] = i;
  });
  t.equal(runs.length, 3, `three things said (${JSON.stringify(runs)})`);
  for (let k = 1; k < runs.length; k++) {
    const gapMs = (runs[k][0] - runs[k - 1][1]) * 20;
    t.ok(gapMs >= 2000 && gapMs < 2400, `${k === 1 ? "reprompt" : "goodbye"} after ${gapMs} ms of silence`);
  }
  t.equal(hangUps.length, 1);
  t.match(hangUps[0]?.reason, /^caller silent after 1 reprompts: goodbye$/);
  t.ok(hangUps[0].atMs >= runs[2][1] * 20, "the hang-up comes once the goodbye has been played");
  t.same(ollama.requests, [], "silence never reaches the LLM");
});

t.test("a caller who answers the reprompt is reprompted afresh the next time", async (t) => {
  const question = await speech("What is the weather in Bonn?");
  const stt = await startSttDouble(t, { phrases: [{ text: " What is the weather in Bonn?", samples16k: question }] });
  const ollama = await startOllamaDouble(t, { script: [{ text: "Sunny." }] });
  const hangUps: string[] = [];
  const run = await converse(t, concatSamples([silence(4500), question]), stt.url, ollama.url, 4500, {
    profile: { greeting: "Hi.", idle: { repromptAfterMs: 2000, maxReprompts: 1, reprompt: "Are you still there?" }, goodbye: "Goodbye." },
    hangUp: (reason) => hangUps.push(reason),
  });
  t.same(run.trace.filter((r) => r.idle || r.stt).map((r) => r.idle ?? r.stt?.text), ["reprompt 1", " What is the weather in Bonn?", "reprompt 1"]);
  t.same(hangUps, [], "no goodbye: the caller spoke in between");
});

t.test("a slow LLM: the filler is asked for fillerAfterMs after the caller stopped speaking, not after the LLM request", async (t) => {
  const question = await speech("What is the weather in Bonn?");
  const stt = await startSttDouble(t, { phrases: [{ text: " What is the weather in Bonn?", samples16k: question }] });
  const ollama = await startOllamaDouble(t, { script: [{ text: "Sunny.", firstTokenDelayMs: 2500 }] });
  const run = await converse(t, concatSamples([silence(1500), question]), stt.url, ollama.url, 5000, {
    profile: { greeting: "Hi.", filler: "One moment.", fillerAfterMs: 1200 },
  });
  const turn = run.trace.find((r) => r.stt)!;
  const filler = turn.tts.find((x) => x.text === "One moment.");
  t.ok(filler, `the filler was said (${JSON.stringify(turn.tts.map((x) => x.text))})`);
  t.ok(filler!.requestMs >= 1190 && filler!.requestMs < 1300, `filler asked for ${filler!.requestMs} ms after the caller's last speech (LLM asked at ${turn.llm[0].requestMs} ms)`);
  t.same(turn.tts.map((x) => x.text), ["One moment.", "Sunny."]);
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
      async synthesize(text, signal, onAudio) {
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
  t.equal(turn3.turnDecidedMs, 400, "an unfinished sentence: the hangover decides");
  t.ok(turn3.llm[0].requestMs < 400 + 60, `and the transcript is already there then (LLM at ${turn3.llm[0].requestMs} ms)`);

  const late = await startSttDouble(t, { phrases: [{ text: " What is the weather in Bonn?", samples16k: question }], delayMs: 150 });
  const ollama2 = await startOllamaDouble(t, { script: [{ text: "Sunny." }] });
  const without = await converse(t, concatSamples([silence(1500), question]), late.url, ollama2.url, 3000, {
    profile: { greeting: "Hi.", turns: { hangoverMs: 400, sttAfterMs: 400 } },
  });
  const turn2 = without.trace.find((r) => r.stt)!;
  t.ok(turn2.llm[0].requestMs >= 400 + 150, `without the early request: ${turn2.llm[0].requestMs} ms`);
});

t.test("a turn the caller's next turn supersedes is recorded as such, and the records are in turn order", async (t) => {
  const first = await speech("What is the weather in Bonn?");
  const second = await speech("No, in Berlin.");
  const stt = await startSttDouble(t, { phrases: [{ text: " What is the weather in Bonn?", samples16k: first }, { text: " No, in Berlin.", samples16k: second }] });
  const ollama = await startOllamaDouble(t, { script: [{ text: "Bonn is sunny.", firstTokenDelayMs: 4000 }, { text: "Berlin is cloudy." }] });
  const run = await converse(t, concatSamples([silence(1500), first, silence(800), second]), stt.url, ollama.url, 4000, { profile: { greeting: "Hi." } });
  t.same(run.trace.map((r) => r.turn), [0, 1, 2], "one record per turn, in turn order");
  t.match(run.trace[1], { superseded: true, stt: { text: " What is the weather in Bonn?" }, spoken: "" });
  t.match(run.trace[2], { stt: { text: " No, in Berlin." }, spoken: "Berlin is cloudy." });
  t.notOk(run.trace[2].superseded);
});
