/**
 * The voice pipeline's conversation behaviours in fake time: its stages (turn detector,
 * recogniser, responder, speaker, trace observer) on engine doubles and a fake clock, with no
 * network, audio tools or waiting. The caller's frames go in every 20 ms of fake time and the
 * agent's frames come out as the media session would take them; what the test checks is what a
 * caller hears (which clause, when), what the agent does to the call (BYE, transfer) and the
 * turn records.
 */
import t from "tap";
import { z } from "zod";
import type { TransferResult } from "../../media-agent/src/audio/call-audio.js";
import { FRAME_SAMPLES, type PcmFrame } from "../../media-agent/src/audio/frames.js";
import { OpusCodec, packPayloads } from "../../media-agent/src/codecs/opus.js";
import type { OnAudio } from "../../media-agent/src/pipeline/synthesis-pool.js";
import type { PipelineEvent } from "../../media-agent/src/pipeline/events.js";
import type { ChatModel, TtsEngine } from "../../media-agent/src/pipeline/engines.js";
import { PreparedLines } from "../../media-agent/src/pipeline/prepared-lines.js";
import { Responder } from "../../media-agent/src/pipeline/responder.js";
import { Speaker } from "../../media-agent/src/pipeline/speaker.js";
import type { Tool } from "../../media-agent/src/pipeline/tools.js";
import { readTrace, type TraceRecord } from "../../media-agent/src/pipeline/turn-trace.js";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { readWav } from "../../media-agent/src/audio/wav.js";
import { VoicePipeline } from "../../media-agent/src/pipeline/voice-pipeline.js";
import { parseVoiceProfiles, voiceProfile } from "../../media-agent/src/pipeline/voice-profiles.js";
import type { Teardown } from "../../build/teardown.js";
import { tempDir } from "../support/temp-dir.js";
import { callerFrames, FakeClock, LlmDouble, settle, SttDouble, TtsDouble, vadDouble, type CallerPart, type LlmRound, type Utterance } from "../support/voice-fakes.js";

/** 30 words: 3 s of the TTS double's audio (100 ms a word), after its 2 frames of leading silence. */
const GREETING = "Hello, this is the weather line. You can ask me about the weather in any city in Germany, today or tomorrow, and I will tell you what to expect there.";

interface Conversation {
  clock: FakeClock;
  stt: SttDouble;
  llm: LlmDouble;
  tts: TtsDouble;
  pipeline: VoicePipeline;
  /** Per 20 ms tick: the clause whose frame the agent sent, "" for a silent packet, null for none. */
  out: Array<string | null>;
  hangUps: Array<{ reason: string; atMs: number }>;
  transfers: Array<{ target: string; atMs: number }>;
  trace(): TraceRecord[];
  /** The trace directory (records and WAVs). */
  dir: string;
}

function conversation(
  t: Teardown,
  opts: {
    utterances?: Utterance[];
    script?: LlmRound[];
    profile?: Record<string, unknown>;
    tools?: Tool[];
    transfer?: (c: Conversation) => Promise<TransferResult>;
    /** The caller as Meta named them (default a number). */
    remoteNumber?: string;
    /** Lines the agent keeps in memory (prepared-lines.ts), prepared as the call starts. */
    prepared?: string[];
  } = {},
): Conversation {
  const dir = tempDir(t, "wa-stages-");
  const clock = new FakeClock();
  const spec = parseVoiceProfiles(
    JSON.stringify({
      line: {
        greeting: GREETING,
        systemPrompt: "Weather line.",
        language: "en",
        stt: { url: "http://stt.invalid" },
        llm: { url: "http://llm.invalid", model: "llama3.2:3b" },
        tts: { engine: "espeak-ng" },
        ...opts.profile,
      },
    }),
    "test",
  ).line;
  const stt = new SttDouble(clock, opts.utterances ?? []);
  const llm = new LlmDouble(clock, opts.script ?? []);
  const tts = new TtsDouble(clock);
  const base = voiceProfile(spec, dir);
  const speech = opts.prepared ? new PreparedLines(tts, opts.prepared) : tts;
  if (speech instanceof PreparedLines) void speech.prepare(new AbortController().signal);
  const profile = { ...base, stt, llm, tts: speech, tools: [...base.tools, ...(opts.tools ?? [])] };
  const c: Conversation = {
    clock,
    stt,
    llm,
    tts,
    out: [],
    hangUps: [],
    transfers: [],
    trace: () => readTrace(dir, "call-1"),
    dir,
    pipeline: undefined as unknown as VoicePipeline,
  };
  c.pipeline = new VoicePipeline(
    { callId: "call-1", direction: "inbound", profile: "line", businessNumber: "+4921100000", remoteNumber: opts.remoteNumber ?? "+4917600000", codec: "opus" },
    {
      hangUp: (reason) => c.hangUps.push({ reason, atMs: clock.now() }),
      transfer: async (target) => {
        c.transfers.push({ target, atMs: clock.now() });
        return opts.transfer ? opts.transfer(c) : { ok: false, reason: "486 Busy Here" };
      },
    },
    profile,
    { vad: vadDouble, clock },
  );
  return c;
}

/** The caller's parts, one 20 ms frame per tick, then the agent's frame of that tick; `keys` by ms. */
async function play(c: Conversation, parts: CallerPart[], keys: Record<number, string> = {}): Promise<void> {
  for (const frame of callerFrames(parts)) {
    await c.clock.advance(20);
    c.pipeline.onCallerFrame(frame as PcmFrame);
    const key = keys[c.clock.now()];
    if (key) c.pipeline.onDtmf(key);
    c.out.push(c.tts.textOf(c.pipeline.nextAgentFrame()));
    await settle();
  }
}

async function end(c: Conversation): Promise<TraceRecord[]> {
  await c.pipeline.close();
  return c.trace();
}

/** What the caller heard: runs of one clause's audible frames, with their times (ms, tick ends). */
function heard(c: Conversation): Array<{ text: string; fromMs: number; toMs: number }> {
  const runs: Array<{ text: string; fromMs: number; toMs: number }> = [];
  c.out.forEach((text, i) => {
    if (!text) return;
    const last = runs[runs.length - 1];
    if (last && last.text === text && last.toMs === i * 20) last.toMs = (i + 1) * 20;
    else runs.push({ text, fromMs: (i + 1) * 20, toMs: (i + 1) * 20 });
  });
  return runs;
}

const framesOf = (c: Conversation, text: string) => c.out.filter((x) => x === text).length;

t.test("a silent caller: two reprompts 8 s apart once the agent is quiet, then the goodbye and, once it was played, the BYE", async (t) => {
  const c = conversation(t);
  await play(c, [{ silenceMs: 40_000 }]);
  const said = heard(c);
  t.same(said.map((x) => x.text), [GREETING, "Are you still there? How can I help you?", "Are you still there? How can I help you?", "Thank you for calling. Goodbye!"]);
  for (let i = 1; i < said.length; i++) {
    const gap = said[i].fromMs - said[i - 1].toMs;
    // 8 s of waiting, then the TTS double's first audio (60 ms) and the clause's leading silence (40 ms).
    t.ok(gap >= 8000 && gap <= 8140, `${said[i].text} after ${gap} ms of silence`);
  }
  t.equal(c.hangUps.length, 1);
  t.match(c.hangUps[0], { reason: "caller silent after 2 reprompts: goodbye" });
  t.ok(c.hangUps[0].atMs >= said[3].toMs && c.hangUps[0].atMs <= said[3].toMs + 40, `BYE at ${c.hangUps[0].atMs} ms, the goodbye ended at ${said[3].toMs} ms`);
  t.same(c.llm.requests, [], "silence never reaches the LLM");
  const trace = await end(c);
  t.same(trace.map((r) => r.idle ?? null), [null, "reprompt 1", "reprompt 2", "goodbye"]);
});

t.test("the silence counts from the end of the agent's voice, not from the end of its clause's trailing silence", async (t) => {
  const c = conversation(t, { profile: { idle: { repromptAfterMs: 2000, maxReprompts: 1 } } });
  c.tts.trailingFrames = 15; // 300 ms of silence after the words of each clause from now on (the greeting is already synthesised)
  await play(c, [{ silenceMs: 12_000 }]);
  const said = heard(c);
  t.same(said.map((x) => x.text), [GREETING, "Are you still there? How can I help you?", "Thank you for calling. Goodbye!"]);
  for (let i = 1; i < said.length; i++) {
    const gap = said[i].fromMs - said[i - 1].toMs;
    // 2 s from the last word, then the TTS double's first audio (60 ms) and the clause's leading silence (40 ms).
    t.ok(gap >= 2000 && gap <= 2140, `${said[i].text} after ${gap} ms of silence`);
  }
});

t.test("a caller who answers a reprompt is reprompted afresh later; speaking during the goodbye keeps the call", async (t) => {
  const c = conversation(t, {
    utterances: [{ text: " What is the weather in Bonn?" }, { text: " Wait, I am here." }],
    script: [{ text: "Sunny." }, { text: "Good. What can I do for you?" }],
    profile: { idle: { repromptAfterMs: 2000, maxReprompts: 1 }, goodbye: "Thank you for calling the weather line. Have a good day, goodbye!" },
  });
  // Greeting until 3.1 s, reprompt at 5.2 s; the caller's question at 7 s, the reply "Sunny." until
  // 8.7 s; the reprompt at 10.8 s, the goodbye at 13.8–15 s; the caller speaks up 300 ms into it.
  await play(c, [{ silenceMs: 7000 }, { say: 0, ms: 1000 }, { silenceMs: 6100 }, { say: 1, ms: 800 }, { silenceMs: 3000 }]);
  t.same(heard(c).map((x) => x.text).slice(-2), ["Good.", "What can I do for you?"], "the caller who spoke up is answered");
  const trace = await end(c);
  t.same(
    trace.map((r) => r.idle ?? r.stt?.text ?? (r.turn === 0 ? "greeting" : "?")),
    ["greeting", "reprompt 1", " What is the weather in Bonn?", "reprompt 1", "goodbye", " Wait, I am here."],
  );
  t.same(c.hangUps, [], "the caller spoke during the goodbye: no BYE");
  t.match(trace[4], { bargeIn: { outcome: "reply stopped" } });
});

t.test("a slow LLM: the filler is heard 1.5 s after the caller stopped speaking, then the answer", async (t) => {
  const c = conversation(t, { utterances: [{ text: " What is the weather in Bonn?" }], script: [{ text: "Sunny and warm.", firstTokenDelayMs: 2500 }] });
  await play(c, [{ silenceMs: 5000 }, { say: 0, ms: 1200 }, { silenceMs: 5000 }]);
  const speechEndMs = 6200;
  const said = heard(c);
  t.same(said.slice(1).map((x) => x.text), ["One moment.", "Sunny and warm."]);
  t.ok(said[1].fromMs - speechEndMs <= 1500 + 120, `filler heard ${said[1].fromMs - speechEndMs} ms after the caller stopped (asked for at 1500 ms)`);
  const turn = (await end(c)).find((r) => r.stt)!;
  t.equal(turn.tts[0].requestMs, 1500, "the filler was asked for 1500 ms after the end of speech, not after the LLM request");
});

t.test("latency: the first clause is heard while the rest of the reply is still being generated and synthesised", async (t) => {
  const c = conversation(t, {
    utterances: [{ text: " What is the weather in Bonn?" }],
    script: [{ text: "In Bonn it is sunny. It stays warm all afternoon, with a light breeze from the west.", firstTokenDelayMs: 300, wordDelayMs: 40 }],
  });
  await play(c, [{ silenceMs: 5000 }, { say: 0, ms: 1200 }, { silenceMs: 6000 }]);
  const turn = (await end(c)).find((r) => r.stt)!;
  // 20 ms pause (turns.sttAfterMs) → STT 150 ms → the turn ends early (a finished sentence) → LLM 300 ms + 4 words → TTS first audio 60 ms, 40 ms of leading silence.
  // The transcript comes back between two frames, 170 ms after the speech: the trace says 170, not
  // the 160 of the 8 whole frames of silence that had arrived by then.
  t.equal(turn.turnDecidedMs, 170, "the turn ended when the early transcript was back, before the 400 ms hangover");
  t.equal(turn.llm[0].requestMs, 170);
  t.ok(turn.firstAudibleOutMs! <= 170 + 300 + 4 * 40 + 60 + 40 + 20, `first audible packet ${turn.firstAudibleOutMs} ms after the end of speech`);
  t.ok(turn.firstAudibleOutMs! < turn.llm[0].requestMs + turn.llm[0].doneMs!, "heard before the LLM had finished");
  t.equal(turn.firstAudibleOutMs! - turn.firstPacketOutMs!, 40, "the clause's leading silence is not counted as audible");
  t.same(turn.events.slice(0, 5).map((e) => e.event).sort(), ["LLM request", "STT answer", "STT request", "caller speech ended", "turn decided"]);
});

t.test("an unfinished sentence waits for the hangover; the early transcript is used then", async (t) => {
  const c = conversation(t, { utterances: [{ text: " What is the weather in" }], script: [{ text: "Where?" }] });
  await play(c, [{ silenceMs: 5000 }, { say: 0, ms: 1200 }, { silenceMs: 3000 }]);
  const turn = (await end(c)).find((r) => r.stt)!;
  t.equal(turn.turnDecidedMs, 400);
  t.equal(turn.llm[0].requestMs, 400, "no second STT request: the pause's transcript is the turn's");
  t.equal(c.stt.requests.length, 1);
});

t.test("a short pause inside a sentence: its early STT request is dropped as soon as the caller goes on", async (t) => {
  const c = conversation(t, { utterances: [{ text: " What is the weather in Bonn?" }], script: [{ text: "Sunny." }] });
  // 100 ms of pause: past the 20 ms that starts the STT, well before its 150 ms answer and the hangover.
  await play(c, [{ silenceMs: 5000 }, { say: 0, ms: 600 }, { silenceMs: 100 }, { say: 0, ms: 600 }, { silenceMs: 3000 }]);
  t.equal(c.stt.requests.length, 2, "one request at the short pause, one at the end");
  t.equal(c.stt.aborted, 1, "the first dropped when the caller went on, not left to finish");
  const turns = (await end(c)).filter((r) => r.stt);
  t.equal(turns.length, 1, "one turn");
});

t.test("'Yes, yes.' over the greeting pauses it within the barge-in threshold, then it goes on; nothing reaches the LLM", async (t) => {
  const c = conversation(t, { utterances: [{ text: " Yes, yes." }] });
  await play(c, [{ silenceMs: 1000 }, { say: 0, ms: 400 }, { silenceMs: 5000 }]);
  const said = heard(c);
  t.equal(framesOf(c, GREETING), 150, "every audible frame of the greeting was played");
  t.equal(said.length, 2, "in two parts");
  t.ok(said[0].toMs - 1000 <= 200 + 20, `paused ${said[0].toMs - 1000} ms after the caller began`);
  t.same(c.llm.requests, []);
  const trace = await end(c);
  t.match(trace[0], { bargeIn: { outcome: "reply went on: backchannel 'Yes, yes.'" }, spoken: GREETING });
  t.match(trace[1], { resumedReply: "backchannel 'Yes, yes.'" });
});

t.test("noise over the reply (no words recognised) lets it go on", async (t) => {
  const c = conversation(t, { utterances: [{ text: "" }] });
  await play(c, [{ silenceMs: 1000 }, { say: 0, ms: 300 }, { silenceMs: 5000 }]);
  const trace = await end(c);
  t.match(trace[0], { bargeIn: { outcome: "reply went on: no speech" } });
  t.equal(framesOf(c, GREETING), 150);
});

t.test("a question over the greeting stops it 200 ms after the onset; the LLM gets the heard part and the question", async (t) => {
  const c = conversation(t, { utterances: [{ text: " What about Berlin?" }], script: [{ text: "Berlin is cloudy." }] });
  await play(c, [{ silenceMs: 1000 }, { say: 0, ms: 1000 }, { silenceMs: 3000 }]);
  const said = heard(c);
  t.equal(said[0].text, GREETING);
  t.equal(said[0].toMs, 1180, "the last greeting frame went out in the tick before the barge-in was decided, 200 ms into the caller's speech");
  t.same(said.slice(1).map((x) => x.text), ["Berlin is cloudy."], "the rest of the greeting is never played");
  const messages = c.llm.requests[0].messages;
  t.same(messages.at(-1), { role: "user", content: "What about Berlin?" });
  t.equal(messages.at(-2)!.role, "assistant");
  const HEARD = "Hello, this is the weather line. You can ask me about…";
  t.equal(messages.at(-2)!.content, HEARD, "only the heard words of the greeting (1.1 s of 3 s: 11 of 30 words)");
  const trace = await end(c);
  t.match(trace[0], { bargeIn: { outcome: "reply stopped", stopMs: 180, heard: HEARD }, spoken: HEARD });
  // What the agent said, as played: the greeting up to the cut (its frames hold the clause's number).
  await settle();
  const played = readWav(readFileSync(join(c.dir, trace[0].agentAudio!))).samples;
  t.equal(played.length / 320, framesOf(c, GREETING) + 2, "the turn's agent audio is what went out: 2 silent frames, then the greeting up to the cut");
  t.equal(c.tts.textOf(played.subarray(played.length - 320) as PcmFrame), GREETING);
  t.match(trace[1], { stt: { text: " What about Berlin?" }, spoken: "Berlin is cloudy." });
});

t.test("a mapped key stops the greeting from the next frame and ends the call with the goodbye; an unmapped key is only traced", async (t) => {
  const c = conversation(t, { profile: { dtmf: { "9": "end-call" } } });
  await play(c, [{ silenceMs: 6000 }], { 500: "5", 700: "9" });
  const said = heard(c);
  t.same(said.map((x) => x.text), [GREETING, "Thank you for calling. Goodbye!"]);
  t.equal(said[0].toMs, 680, "the greeting's last frame went out before the key");
  t.equal(c.hangUps.length, 1);
  t.match(c.hangUps[0], { reason: "DTMF 9: goodbye" });
  t.ok(c.hangUps[0].atMs >= said[1].toMs, "BYE once the goodbye was played");
  const trace = await end(c);
  t.match(trace[0], { bargeIn: { outcome: "reply stopped by DTMF 9", stopMs: 0 } });
  t.match(trace.find((r) => r.dtmf === "5"), { spoken: "" });
  t.match(trace.find((r) => r.dtmf === "9"), { spoken: "Thank you for calling. Goodbye!" });
});

t.test("end_call: the model's words, the goodbye, then the BYE once the goodbye was played", async (t) => {
  const c = conversation(t, {
    utterances: [{ text: " That is all, thank you very much." }],
    script: [{ text: "You are welcome.", toolCalls: [{ function: { name: "end_call", arguments: { reason: "caller is done" } } }] }],
    profile: { tools: ["end_call"] },
  });
  await play(c, [{ silenceMs: 5000 }, { say: 0, ms: 1500 }, { silenceMs: 4000 }]);
  const said = heard(c);
  t.same(said.slice(1).map((x) => x.text), ["You are welcome.", "Thank you for calling. Goodbye!"]);
  t.equal(c.llm.requests.length, 1, "no LLM round after end_call");
  t.equal(c.hangUps.length, 1);
  t.match(c.hangUps[0].reason, /^end_call: caller is done$/);
  t.ok(c.hangUps[0].atMs >= said[2].toMs, "BYE after the goodbye");
});

t.test("an LLM that fails, and an STT that fails: the caller hears the apology, the trace names the cause", async (t) => {
  const c = conversation(t, { utterances: [{ text: " Hello?" }, { text: " Hello again?" }], script: [{ error: "LLM at http://llm.invalid/api/chat answered 500: model crashed" }] });
  await play(c, [{ silenceMs: 5000 }, { say: 0, ms: 800 }, { silenceMs: 5000 }]);
  c.stt.fail = "speech-to-text at http://stt.invalid answered 503: busy";
  await play(c, [{ say: 1, ms: 800 }, { silenceMs: 5000 }]);
  const apology = "Sorry, I have a technical problem right now. Please try again in a moment.";
  t.same(heard(c).slice(1).map((x) => x.text), [apology, apology]);
  const trace = await end(c);
  t.match(trace[1], { llm: [{ error: /answered 500: model crashed/ }], spoken: apology });
  t.match(trace[2], { stt: { verdict: "error", error: /answered 503: busy/ }, spoken: apology });
  t.equal(c.llm.requests.length, 1, "an STT failure does not reach the LLM");
});

t.test("a TTS that goes down: the caller hears the apology from memory instead of silence, and after a second failed reply in a row the BYE", async (t) => {
  const apology = "Sorry, I have a technical problem right now. Please try again in a moment.";
  const c = conversation(t, {
    prepared: [apology],
    utterances: [{ text: " What is the weather?" }, { text: " Hello?" }, { text: " Are you there?" }, { text: " Hello again?" }],
    script: [{ text: "It is sunny. Twenty degrees." }, { text: "Hello, I am here." }, { text: "Yes, I am." }, { text: "I am here." }],
  });
  await play(c, [{ silenceMs: 5000 }]);
  const down = "Piper at http://tts.invalid/synthesize: connect ECONNREFUSED";
  c.tts.fail = down;
  await play(c, [{ say: 0, ms: 800 }, { silenceMs: 4000 }]);
  t.same(heard(c).slice(1).map((x) => x.text), [apology], "a reply the TTS could not speak: the apology, played from memory, and nothing of the reply");
  t.same(c.hangUps, [], "and the call goes on");
  c.tts.fail = null;
  await play(c, [{ say: 1, ms: 800 }, { silenceMs: 4000 }]);
  c.tts.fail = down;
  await play(c, [{ say: 2, ms: 800 }, { silenceMs: 4000 }]);
  t.same(heard(c).slice(1).map((x) => x.text), [apology, "Hello, I am here.", apology]);
  t.same(c.hangUps, [], "a failed reply after one that was heard: the count starts afresh, the call goes on");
  await play(c, [{ say: 3, ms: 800 }, { silenceMs: 4000 }]);
  const said = heard(c);
  t.same(said.slice(1).map((x) => x.text), [apology, "Hello, I am here.", apology, apology], "a second failed reply in a row: the apology again");
  t.equal(c.hangUps.length, 1);
  t.equal(c.hangUps[0].reason, `TTS failed on 2 replies in a row: ${down}`);
  t.ok(c.hangUps[0].atMs >= said[4].toMs, `the BYE (${c.hangUps[0].atMs} ms) once the apology was played (${said[4].toMs} ms)`);
  const trace = await end(c);
  const apologies = trace.filter((r) => r.ttsFailed);
  t.equal(apologies.length, 3, "each apology is a turn of its own in the trace");
  t.match(apologies[0], { ttsFailed: down, spoken: apology });
  t.match(trace.find((r) => r.turn === apologies[0].turn - 1), { tts: [{ error: down }] }, "the failed reply's record has the TTS's error");
});

t.test("a TTS that went down, and a caller who presses the key for a person: the announcement from memory, and the transfer", async (t) => {
  const announcement = "Please hold, I am connecting you to a colleague.";
  const c = conversation(t, {
    prepared: [announcement],
    profile: { dtmf: { "0": "transfer" }, transfer: { target: "sip:desk@pbx.example.com", announcement } },
    transfer: async () => ({ ok: true }),
  });
  await play(c, [{ silenceMs: 5000 }]);
  c.tts.fail = "Piper at http://tts.invalid/synthesize: connect ECONNREFUSED";
  await play(c, [{ silenceMs: 200 }, { silenceMs: 6000 }], { 5220: "0" });
  t.same(heard(c).slice(1).map((x) => x.text), [announcement], "the announcement was heard, with the TTS down");
  t.match(c.transfers, [{ target: "sip:desk@pbx.example.com" }], "and the caller was put through");
  t.same(c.hangUps, []);
  await end(c);
});

t.test("a TTS down since the start, with no apology in memory: the call ends at once, the reason says why", async (t) => {
  const c = conversation(t, { utterances: [{ text: " What is the weather?" }], script: [{ text: "It is sunny." }] });
  await play(c, [{ silenceMs: 5000 }]);
  c.tts.fail = "Piper at http://tts.invalid/synthesize: no answer within 4000 ms";
  await play(c, [{ say: 0, ms: 800 }, { silenceMs: 2000 }]);
  t.same(heard(c).slice(1), [], "nothing could be said");
  t.equal(c.hangUps.length, 1);
  t.equal(c.hangUps[0].reason, "TTS failed: Piper at http://tts.invalid/synthesize: no answer within 4000 ms; the apology could not be played either");
  await end(c);
});

t.test("a tool that fails: the model is told and its words about it are spoken", async (t) => {
  const failing: Tool = {
    spec: { type: "function", function: { name: "get_forecast", description: "forecast", parameters: { type: "object", properties: { city: { type: "string" } } } } },
    schema: z.object({ city: z.string() }),
    run: async () => {
      throw new Error("forecast service unreachable");
    },
  };
  const c = conversation(t, {
    utterances: [{ text: " Will it rain in Bonn tomorrow?" }],
    script: [{ toolCalls: [{ function: { name: "get_forecast", arguments: { city: "Bonn" } } }] }, { text: "Sorry, I cannot get the forecast right now." }],
    tools: [failing],
  });
  await play(c, [{ silenceMs: 5000 }, { say: 0, ms: 1200 }, { silenceMs: 3000 }]);
  t.same(heard(c).slice(1).map((x) => x.text), ["Sorry, I cannot get the forecast right now."]);
  t.match(c.llm.requests[1].messages.at(-1), { role: "tool", tool_name: "get_forecast", content: "get_forecast failed: forecast service unreachable" });
  const trace = await end(c);
  t.match(trace[1].toolResults, [{ name: "get_forecast", ok: false }]);
});

t.test("hallucinated text on short noise gets no reply; an unclear sentence is asked again, then the fallback and its action", async (t) => {
  const c = conversation(t, {
    utterances: [{ text: " Thank you." }, { text: " Blorp fnord.", segment: { avg_logprob: -1.6, no_speech_prob: 0.8 } }],
    profile: { maxRepeats: 2, fallbackAction: "end-call" },
  });
  await play(c, [{ silenceMs: 5000 }, { say: 0, ms: 300 }, { silenceMs: 3000 }]);
  t.equal(heard(c).length, 1, "nothing said for 'Thank you.' on 300 ms of noise");
  await play(c, [{ say: 1, ms: 1000 }, { silenceMs: 4000 }, { say: 1, ms: 1000 }, { silenceMs: 9000 }]);
  t.same(heard(c).slice(1).map((x) => x.text), [
    "Sorry, I did not catch that. Could you say it again?",
    "I am having trouble understanding. You can also write to us on WhatsApp.",
    "Thank you for calling. Goodbye!",
  ]);
  t.match(c.hangUps, [{ reason: "fallback: goodbye" }]);
  t.same(c.llm.requests, []);
  const trace = await end(c);
  t.match(trace[1], { stt: { verdict: "ignore", dropped: [{ reason: /known silence phrase/ }] }, spoken: "" });
});

t.test("transfer_call: the announcement is played in full before the phone rings; a failure goes back to the model with the ignored arguments", async (t) => {
  const c = conversation(t, {
    utterances: [{ text: " Can I talk to a person please?" }],
    script: [{ toolCalls: [{ function: { name: "transfer_call", arguments: { reason: "asked for a person", department: "sales" } } }] }, { text: "Sorry, nobody is free." }],
    profile: { tools: ["transfer_call"], transfer: { target: "sip:support@pbx.example.com", announcement: "Please hold the line." } },
    // The phone rings for 3 s: no filler meanwhile, the announcement was the turn's first words.
    transfer: async (conv) => (await conv.clock.sleep(3000), { ok: false, reason: "486 Busy Here" }),
  });
  await play(c, [{ silenceMs: 5000 }, { say: 0, ms: 1500 }, { silenceMs: 8000 }]);
  const said = heard(c);
  t.same(said.slice(1).map((x) => x.text), ["Please hold the line.", "Sorry, nobody is free."]);
  t.equal(c.transfers.length, 1);
  t.ok(c.transfers[0].atMs >= said[1].toMs, `the phone rang at ${c.transfers[0].atMs} ms, after the announcement ended (${said[1].toMs} ms)`);
  t.match(c.llm.requests[1].messages.at(-1), {
    role: "tool",
    content: /^The transfer failed \(486 Busy Here\).*'support' only; the argument 'department' was ignored/,
  });
});

t.test("a transfer that is answered closes the pipeline: nothing more is said or asked", async (t) => {
  const c = conversation(t, {
    utterances: [{ text: " A person please." }],
    script: [{ toolCalls: [{ function: { name: "transfer_call", arguments: {} } }] }, { text: "Never said." }],
    profile: { tools: ["transfer_call"], transfer: { target: "sip:support@pbx.example.com" } },
    transfer: async (conv) => {
      await conv.pipeline.close();
      return { ok: true };
    },
  });
  await play(c, [{ silenceMs: 5000 }, { say: 0, ms: 1200 }, { silenceMs: 6000 }]);
  t.equal(c.llm.requests.length, 1);
  t.notOk(c.tts.requests.includes("Never said."));
  t.same(c.out.slice(-100).filter(Boolean), [], "silence after the transfer");
});

t.test("a turn the caller's next turn supersedes is recorded as such; the records are in turn order", async (t) => {
  const c = conversation(t, {
    utterances: [{ text: " What is the weather in Bonn" }, { text: " No, in Berlin." }],
    script: [{ text: "Bonn is sunny.", firstTokenDelayMs: 3000 }, { text: "Berlin is cloudy." }],
  });
  await play(c, [{ silenceMs: 5000 }, { say: 0, ms: 1200 }, { silenceMs: 800 }, { say: 1, ms: 800 }, { silenceMs: 4000 }]);
  t.same(heard(c).slice(1).map((x) => x.text), ["Berlin is cloudy."]);
  const trace = await end(c);
  t.same(trace.map((r) => r.turn), [0, 1, 2]);
  t.match(trace[1], { superseded: true, spoken: "" });
  t.match(trace[2], { spoken: "Berlin is cloudy." });
  t.notOk(trace[2].superseded);
});

t.test("speaker alone: clauses play in the order they were queued, a slow first one holds the next back; events instead of polling", async (t) => {
  const clock = new FakeClock();
  const tts = new TtsDouble(clock);
  tts.delays["A long first clause."] = 500;
  const events: PipelineEvent[] = [];
  const speaker = new Speaker(tts, clock, (e) => events.push(e));
  const signal = new AbortController().signal;
  void speaker.say("A long first clause.", 1, signal);
  void speaker.say("Short.", 1, signal);
  let idleAt = -1;
  void speaker.whenIdle().then(() => (idleAt = clock.now()));
  const out: Array<string | null> = [];
  for (let i = 0; i < 80; i++) {
    await clock.advance(20);
    out.push(tts.textOf(speaker.nextFrame()));
    await settle();
  }
  const order = out.filter((x): x is string => !!x).filter((x, i, all) => all.indexOf(x) === i);
  t.same(order, ["A long first clause.", "Short."]);
  t.ok(out.indexOf("A long first clause.") * 20 >= 600, "the first clause waited for its synthesis");
  const kinds = events.map((e) => e.type).filter((k) => k.startsWith("clause") || k === "playback-done");
  t.same(kinds.filter((k) => k === "playback-done"), ["playback-done"], "playback done is told once");
  t.equal(idleAt, (events.find((e) => e.type === "playback-done") as { at: number }).at, "whenIdle() resolves at playback done");
});

t.test("speaker alone: pieces handed over in a buffer the engine then reuses (a speech worker's IPC read buffer) play as they were, each frame with its Opus payload; a cut clause reports what was played", async (t) => {
  const clock = new FakeClock();
  // Two pieces of 3.5 and 2 frames, their samples 1, 2, 3 … and payload i the bytes [i, i + 1].
  const sizes = [3.5 * FRAME_SAMPLES, 2 * FRAME_SAMPLES];
  const scratch = new Int16Array(4 * FRAME_SAMPLES);
  const scratchBytes = new Uint8Array(64);
  let next = 1;
  let nextPayload = 0;
  const engine = {
    name: "reusing-engine",
    synthesize: (async (_text: string, _signal: AbortSignal, onAudio?: OnAudio) => {
      for (const size of sizes) {
        await clock.sleep(20);
        const samples = scratch.subarray(0, size);
        for (let i = 0; i < size; i++) samples[i] = next++;
        const frames = Math.ceil(size / FRAME_SAMPLES);
        const payloads = packPayloads(Array.from({ length: frames }, () => new Uint8Array([nextPayload, ++nextPayload])));
        scratchBytes.set(payloads.bytes);
        onAudio?.(samples, { bytes: scratchBytes.subarray(0, payloads.bytes.length), ends: payloads.ends });
        scratch.fill(-1); // the engine's next read overwrites the buffer
        scratchBytes.fill(255);
      }
      return { samples: null, firstByteMs: 20, synthesisMs: 40 };
    }) as TtsEngine["synthesize"],
  };
  const played: Int16Array[][] = [];
  const speaker = new Speaker(engine, clock, (e) => void (e.type === "clause-played" && played.push(e.audio)), true);
  const codec = new OpusCodec();
  t.teardown(() => codec.close());
  const turn = new AbortController();
  void speaker.say("Two pieces.", 1, turn.signal);
  await clock.advance(100);
  const frames: Int16Array[] = [];
  const payloads: number[][] = [];
  for (let frame = speaker.nextFrame(); frame; frame = speaker.nextFrame()) {
    frames.push(frame.slice());
    payloads.push([...codec.encode(frame)]);
    if (frames.length === 5) turn.abort(); // cut in the second piece, after its first frame
  }
  const expected = (from: number, count: number) => Array.from({ length: count }, (_, i) => from + i);
  t.same([...frames[0]], expected(1, FRAME_SAMPLES), "the first frame as the engine made it");
  t.same([...frames[3]], [...expected(3 * FRAME_SAMPLES + 1, FRAME_SAMPLES / 2), ...new Array(FRAME_SAMPLES / 2).fill(0)], "a piece's last part frame padded with silence");
  t.same([...frames[4]], expected(3.5 * FRAME_SAMPLES + 1, FRAME_SAMPLES), "the second piece's first frame");
  t.same(payloads, [[0, 1], [1, 2], [2, 3], [3, 4], [4, 5]], "each frame went out with its own payload, not one the engine wrote later");
  t.equal(played.length, 1);
  t.same(
    played[0].map((p) => p.length),
    [4 * FRAME_SAMPLES, FRAME_SAMPLES],
    "the cut clause's played audio: the whole first piece and the one frame of the second",
  );
  t.same([...played[0][1]], [...frames[4]]);
});

t.test("speaker alone: the turn's interruption removes its queued clauses, others stay", async (t) => {
  const clock = new FakeClock();
  const tts = new TtsDouble(clock);
  const speaker = new Speaker(tts, clock, () => undefined);
  const old = new AbortController();
  void speaker.say("Old reply.", 1, old.signal);
  await clock.advance(200);
  t.ok(speaker.busy);
  old.abort();
  t.notOk(speaker.busy, "nothing queued once the turn was interrupted");
  void speaker.say("New reply.", 2, new AbortController().signal);
  const out: Array<string | null> = [];
  for (let i = 0; i < 40; i++) {
    await clock.advance(20);
    out.push(tts.textOf(speaker.nextFrame()));
  }
  t.notOk(out.includes("Old reply."));
  t.ok(out.includes("New reply."));
});

t.test("responder alone: an aborted turn stops the LLM stream and says nothing more", async (t) => {
  const clock = new FakeClock();
  const llm = new LlmDouble(clock, [{ text: "One. Two. Three. Four.", wordDelayMs: 200 }]);
  const responder = new Responder(llm, { tools: [], maxToolRounds: 2, toolTimeoutMs: 1000, filler: "Hm.", fillerAfterMs: 5000, apology: "Sorry.", goodbye: "Bye." }, clock, () => undefined);
  const abort = new AbortController();
  const said: string[] = [];
  const pending = responder.respond({
    turn: 1,
    speechEndAt: 0,
    history: [{ role: "user", content: "Count." }],
    signal: abort.signal,
    say: async (text) => void said.push(text),
    tools: { signal: abort.signal, now: () => clock.date(), endCall: () => undefined, transfer: async () => "" },
    endingReason: () => null,
    silence: () => true,
  });
  await clock.advance(350);
  abort.abort();
  await clock.advance(2000);
  const response = await pending;
  t.same(said, ["One.", "Two."]);
  t.match(response, { aborted: true, spoken: "One. Two." });
});

t.test("responder alone: a reply cut at llm.numPredict ends with its last complete clause; the unfinished words are not said", async (t) => {
  const respond = async (text: string, cut: boolean) => {
    const clock = new FakeClock();
    // Ollama's stream as chatStream gives it: words, then done (cut: done_reason "length").
    const llm: ChatModel = {
      async *chat() {
        for (const word of text.split(/(?<= )/)) yield { type: "text", text: word };
        yield { type: "done", stats: { totalMs: 0, loadMs: 0, evalCount: 160 }, cut };
      },
    };
    const events: PipelineEvent[] = [];
    const responder = new Responder(llm, { tools: [], maxToolRounds: 2, toolTimeoutMs: 1000, filler: "Hm.", fillerAfterMs: 5000, apology: "Sorry.", goodbye: "Bye." }, clock, (e) => events.push(e));
    const said: string[] = [];
    const signal = new AbortController().signal;
    const response = await responder.respond({
      turn: 1,
      speechEndAt: 0,
      history: [{ role: "user", content: "Weather?" }],
      signal,
      say: async (piece) => void said.push(piece),
      tools: { signal, now: () => clock.date(), endCall: () => undefined, transfer: async () => "" },
      endingReason: () => null,
      silence: () => true,
    });
    return { said, response, errors: events.flatMap((e) => (e.type === "llm-error" ? [e.error] : [])) };
  };

  const halfway = await respond("It is sunny in Berlin, fourteen degrees. Tomorrow it will be", true);
  t.same(halfway.said, ["It is sunny in Berlin,", "fourteen degrees."], "the complete clauses, not the unfinished tail");
  t.same(halfway.response, { spoken: "It is sunny in Berlin, fourteen degrees.", aborted: false });
  t.same(halfway.errors, ['reply cut at num_predict (Ollama done_reason "length"): raise llm.numPredict or ask for shorter replies; not said: "Tomorrow it will be"'], "the trace says it was cut, what was left out and the setting");

  const atFullStop = await respond("It is sunny in Berlin. Fourteen degrees.", true);
  t.same(atFullStop.said, ["It is sunny in Berlin.", "Fourteen degrees."], "cut right after a full stop: the last sentence is complete and said");
  t.match(atFullStop.errors, [/^reply cut at num_predict .*llm\.numPredict[^;]*$/]);

  const nothing = await respond("The weather in", true);
  t.same(nothing.said, ["Sorry."], "nothing complete: the apology, not silence");

  const ended = await respond("It is sunny in Berlin, and", false);
  t.same(ended.said, ["It is sunny in Berlin,", "and"], "a reply the model ended (done_reason stop) is said as it is");
  t.same(ended.errors, []);
});

t.test("the caller's identity reaches the LLM through the system prompt: a number, or a business-scoped user id said to be one", async (t) => {
  for (const [remote, kind] of [["+4917600000", "phone number"], ["DE.88231990012", "WhatsApp business-scoped user id (not a phone number)"]]) {
    const c = conversation(t, {
      utterances: [{ text: " Who am I?" }],
      script: [{ text: "You are calling from WhatsApp." }],
      profile: { systemPrompt: "Weather line of {business}. The caller is {caller} ({callerKind})." },
      remoteNumber: remote,
    });
    await play(c, [{ silenceMs: 5000 }, { say: 0, ms: 800 }, { silenceMs: 2000 }]);
    t.same(c.llm.requests[0].messages[0], { role: "system", content: `Weather line of +4921100000. The caller is ${remote} (${kind}).` });
    await end(c);
  }
});
