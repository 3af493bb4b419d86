/**
 * The conversation's behaviours as a caller meets them, end to end (test/support/voice-call.ts:
 * baresip → the Meta-edge peer → Kamailio → rtpengine → the agent, engine doubles speaking the
 * real protocols): a caller who says nothing, a slow LLM, keys, a backchannel over the agent, a
 * tool that fails, a TTS that fails. What is checked is what baresip heard and when, what it was sent (a BYE), and
 * what reached the engines. The same behaviours in fake time, with every edge case, are
 * test/unit/agent-voice-stages.test.ts.
 */
import t from "tap";
import { sleep } from "../../build/kamailio.js";
import { freePort } from "../../build/ports.js";
import { callerTrack } from "../../build/speech.js";
import { readTrace } from "../../media-agent/src/pipeline/turn-trace.js";
import { startOllamaDouble } from "../../doubles/ollama-double.js";
import { startPiperDouble } from "../../doubles/piper-double.js";
import { PiperTts } from "../../media-agent/src/pipeline/tts.js";
import { startSttDouble } from "../../doubles/stt-double.js";
import { startWeatherDouble } from "../../doubles/weather-double.js";
import { tempDir } from "../support/temp-dir.js";
import { callerRecordings, find, firstSoundMs, GREETING, hangUpAfter, lastSoundMs, say, startVoiceCall } from "../support/voice-call.js";

// Five calls, each with its own agent and doubles, on a loaded 2-core machine.
t.setTimeout(240_000);

const QUESTION = "What is the weather in Dusseldorf?";
const GOODBYE = "Thank you for calling the weather line. Goodbye!";

t.test("a caller who says nothing: the reprompt 2 s after the greeting, the goodbye 2 s after it, then a BYE", async (t) => {
  const dir = tempDir(t, "wa-behaviour-");
  const REPROMPT = "Are you still there? Ask me about the weather.";
  const track = callerTrack(dir, [{ silenceS: 30 }]);
  const stt = await startSttDouble(t, { phrases: [] });
  const ollama = await startOllamaDouble(t, { script: [] });
  const weather = await startWeatherDouble(t);
  const { s, record, traceDir } = await startVoiceCall(t, dir, {
    callerWav: track.wav,
    engines: { stt, ollama, weather },
    extra: { idle: { repromptAfterMs: 2000, maxReprompts: 1, reprompt: REPROMPT }, goodbye: GOODBYE },
  });
  const ended = await s.nextEnded();
  t.match(ended.endReason, /^local BYE: caller silent after 1 reprompts: goodbye/, "the agent ended the call");
  await s.baresip.waitForEvent("CALL_CLOSED");

  const { heard } = callerRecordings(s);
  const [greeting, reprompt, goodbye] = [await say(GREETING), await say(REPROMPT), await say(GOODBYE)];
  const g = find(greeting, heard);
  const r = find(reprompt, heard);
  const b = find(goodbye, heard);
  t.comment(`heard: greeting at ${g.atMs} ms (${g.score.toFixed(2)}), reprompt at ${r.atMs} (${r.score.toFixed(2)}), goodbye at ${b.atMs} (${b.score.toFixed(2)})`);
  t.ok(g.score > 0.6 && r.score > 0.6 && b.score > 0.6, "the caller heard the greeting, the reprompt and the goodbye");
  const greetingEnd = lastSoundMs(heard, g.atMs, g.atMs + greeting.length / 16 + 200);
  const repromptStart = firstSoundMs(heard, greetingEnd + 100, r.atMs + 1000);
  const repromptEnd = lastSoundMs(heard, r.atMs, r.atMs + reprompt.length / 16 + 200);
  const goodbyeStart = firstSoundMs(heard, repromptEnd + 100, b.atMs + 1000);
  t.comment(`silence before the reprompt ${repromptStart - greetingEnd} ms, before the goodbye ${goodbyeStart - repromptEnd} ms`);
  // 2 s from the end of the agent's voice (not of its clause's trailing silence: espeak-ng ends each with ~0.33 s), then the TTS's first audio.
  for (const [what, gap] of [["reprompt", repromptStart - greetingEnd], ["goodbye", goodbyeStart - repromptEnd]] as const) {
    t.ok(gap >= 1950 && gap <= 2250, `the ${what} after ${gap} ms of silence`);
  }
  const lastHeard = lastSoundMs(heard, b.atMs, heard.length / 16);
  const goodbyeEnd = b.atMs + lastSoundMs(goodbye, 0, goodbye.length / 16);
  t.ok(lastHeard >= goodbyeEnd - 60, `the goodbye was played to its end (${goodbyeEnd} ms) before the BYE (last sound at ${lastHeard} ms)`);
  t.same([stt.requests.length, ollama.requests.length], [0, 0], "silence never reached the STT or the LLM");
  t.same(readTrace(traceDir, record.callId).map((r) => r.idle ?? null), [null, "reprompt 1", "goodbye"]);
});

t.test("a slow LLM: the filler leaves the agent 1.5 s after the caller stopped speaking, then the answer", async (t) => {
  const dir = tempDir(t, "wa-behaviour-");
  const FILLER = "One moment please.";
  const ANSWER = "In Düsseldorf it is fourteen degrees with light rain.";
  const track = callerTrack(dir, [{ silenceS: 3.5 }, QUESTION, { silenceS: 10 }]);
  const stt = await startSttDouble(t, { phrases: [{ text: ` ${QUESTION}`, samples16k: track.lines.get(QUESTION)! }] });
  const ollama = await startOllamaDouble(t, { script: [{ text: ANSWER, firstTokenDelayMs: 3000 }] });
  const weather = await startWeatherDouble(t);
  const { s, record, traceDir } = await startVoiceCall(t, dir, {
    callerWav: track.wav,
    engines: { stt, ollama, weather },
    extra: { filler: FILLER, fillerAfterMs: 1500, llm: { url: ollama.url, model: "llama3.2:3b", timeoutMs: 8000 } },
  });
  await hangUpAfter(s, 12_000);

  const { heard, sent } = callerRecordings(s);
  const question = track.lines.get(QUESTION)!;
  const q = find(question, sent);
  const questionEnd = lastSoundMs(sent, q.atMs, q.atMs + question.length / 16);
  const fillerStart = firstSoundMs(heard, questionEnd, questionEnd + 5000);
  const f = find(await say(FILLER), heard);
  const a = find(await say(ANSWER), heard);
  t.comment(`the caller stopped at ${questionEnd} ms; heard the filler from ${fillerStart} ms (${fillerStart - questionEnd} ms later; match at ${f.atMs}, ${f.score.toFixed(2)}), the answer at ${a.atMs} ms (${a.score.toFixed(2)})`);
  t.ok(f.score > 0.6 && Math.abs(f.atMs - fillerStart) < 300, "the first thing heard after the question is the filler");
  t.ok(a.score > 0.6 && a.atMs > f.atMs, "then the answer");
  // The agent's part: the filler, prepared at its start, leaves on the first 20 ms tick after
  // fillerAfterMs (it did a synthesis later, 50–60 ms with espeak-ng, when it was synthesised then).
  const turn = readTrace(traceDir, record.callId).find((r) => r.stt);
  t.match(turn?.tts[0], { text: FILLER, firstByteMs: 0 }, "the filler was in memory");
  t.ok(Math.abs(turn!.tts[0].requestMs - 1500) <= 5, `it was asked for ${turn?.tts[0].requestMs} ms after the end of speech`);
  t.ok(turn!.firstAudibleOutMs! <= 1520, `its first packet left the agent ${turn?.firstAudibleOutMs} ms after the end of speech`);
  // The caller's part: both ways through rtpengine and the edge, and baresip's own jitter buffer
  // (3–10 frames, adapting): ~120 ms here on an idle machine, more under load.
  t.ok(fillerStart - questionEnd >= 1400 && fillerStart - questionEnd <= 1800, `the caller heard it ${fillerStart - questionEnd} ms after they stopped`);
});

t.test("keys: an unmapped one is only traced; the mapped one brings the goodbye and a BYE, without the LLM", async (t) => {
  const dir = tempDir(t, "wa-behaviour-");
  const track = callerTrack(dir, [{ silenceS: 20 }]);
  const stt = await startSttDouble(t, { phrases: [] });
  const ollama = await startOllamaDouble(t, { script: [] });
  const weather = await startWeatherDouble(t);
  const { s, record, traceDir } = await startVoiceCall(t, dir, { callerWav: track.wav, engines: { stt, ollama, weather }, extra: { dtmf: { "9": "end-call" }, goodbye: GOODBYE } });
  await sleep(3500); // the greeting is over
  const ended = s.nextEnded();
  s.baresip.command("sndcode", "5");
  await sleep(1500);
  s.baresip.command("sndcode", "9");
  t.match((await ended).endReason, /^local BYE: DTMF 9: goodbye/, "the agent ended the call after key 9");
  await s.baresip.waitForEvent("CALL_CLOSED");
  const { heard } = callerRecordings(s);
  const b = find(await say(GOODBYE), heard);
  t.ok(b.score > 0.6, `the caller heard the goodbye (${b.score.toFixed(2)})`);
  t.same(ollama.requests, [], "keys do not go through the LLM");
  const keys = readTrace(traceDir, record.callId).filter((r) => r.dtmf);
  t.same(keys.map((r) => [r.dtmf, r.spoken]), [["5", ""], ["9", GOODBYE]]);
});

t.test("a backchannel over the answer: the agent pauses, then goes on to the end of it; nothing more reaches the LLM", async (t) => {
  const dir = tempDir(t, "wa-behaviour-");
  const YES = "Yes, yes.";
  const LONG = "In Düsseldorf it is fourteen degrees with light rain. Tomorrow the rain moves east and the sun comes out in the afternoon. " +
    "On Thursday it gets colder, with frost in the night. The weekend stays dry but cloudy everywhere.";
  const track = callerTrack(dir, [{ silenceS: 3.5 }, QUESTION, { silenceS: 4 }, YES, { silenceS: 14 }]);
  const stt = await startSttDouble(t, { phrases: [QUESTION, YES].map((text) => ({ text: ` ${text}`, samples16k: track.lines.get(text)! })) });
  const ollama = await startOllamaDouble(t, { script: [{ text: LONG }] });
  const weather = await startWeatherDouble(t);
  const { s, record, traceDir } = await startVoiceCall(t, dir, { callerWav: track.wav, engines: { stt, ollama, weather } });
  await hangUpAfter(s, 24_000);

  t.equal(ollama.requests.length, 1, "only the question went to the LLM");
  const trace = readTrace(traceDir, record.callId);
  t.match(trace.find((r) => r.bargeIn), { bargeIn: { outcome: "reply went on: backchannel 'Yes, yes.'" } });
  const { heard, sent } = callerRecordings(s);
  const yes = find(track.lines.get(YES)!, sent);
  const end = find(await say("The weekend stays dry but cloudy everywhere."), heard);
  t.comment(`'${YES}' said at ${yes.atMs} ms; the answer's last sentence heard at ${end.atMs} ms (${end.score.toFixed(2)})`);
  t.ok(end.score > 0.6 && end.atMs > yes.atMs, "the answer went on to its end after the backchannel");
});

t.test("a tool that fails: the model is told why, and the caller hears its answer", async (t) => {
  const dir = tempDir(t, "wa-behaviour-");
  const SORRY = "Sorry, I cannot get the weather right now. Please try again later.";
  const track = callerTrack(dir, [{ silenceS: 3.5 }, QUESTION, { silenceS: 10 }]);
  const stt = await startSttDouble(t, { phrases: [{ text: ` ${QUESTION}`, samples16k: track.lines.get(QUESTION)! }] });
  const ollama = await startOllamaDouble(t, { script: [{ toolCalls: [{ function: { name: "get_weather", arguments: { city: "Düsseldorf" } } }] }, { text: SORRY }] });
  // The weather API's address answers nothing: the connection is refused.
  const weather = { url: `http://127.0.0.1:${await freePort()}` };
  const { s, record, traceDir } = await startVoiceCall(t, dir, { callerWav: track.wav, engines: { stt, ollama, weather } });
  await hangUpAfter(s, 12_000);

  t.equal(ollama.requests.length, 2, "the tool call, then the answer");
  const messages = (ollama.requests[1] as { messages: Array<{ role: string; content: string; tool_name?: string }> }).messages;
  const result = messages.find((m) => m.role === "tool");
  t.match(result, { tool_name: "get_weather", content: /^get_weather failed: .+/ }, `the model was told: '${result?.content}'`);
  t.match(readTrace(traceDir, record.callId).find((r) => r.toolResults.length), { toolResults: [{ name: "get_weather", ok: false }], spoken: SORRY });
  const said = find(await say(SORRY), callerRecordings(s).heard);
  t.ok(said.score > 0.6, `the caller heard the model's answer (${said.score.toFixed(2)})`);
});

t.test("a TTS that fails on the replies: the caller hears the apology (kept in memory since the agent's start) each time, and after the second a BYE", async (t) => {
  const dir = tempDir(t, "wa-behaviour-");
  const SECOND = "Are you still there?";
  const APOLOGY = "Sorry, the weather line has a technical problem.";
  const REPLIES = ["It is sunny and warm in Dusseldorf.", "Yes, I am still here."];
  const track = callerTrack(dir, [{ silenceS: 3.5 }, QUESTION, { silenceS: 6 }, SECOND, { silenceS: 12 }]);
  const stt = await startSttDouble(t, {
    phrases: [QUESTION, SECOND].map((line) => ({ text: ` ${line}`, samples16k: track.lines.get(line)! })),
  });
  const ollama = await startOllamaDouble(t, { script: REPLIES.map((text) => ({ text })) });
  const weather = await startWeatherDouble(t);
  const piper = await startPiperDouble(t, { failFor: (text) => REPLIES.includes(text) });
  const { s, record, traceDir } = await startVoiceCall(t, dir, {
    callerWav: track.wav,
    engines: { stt, ollama, weather },
    extra: { apology: APOLOGY, tts: { engine: "piper", url: piper.url, voice: "en_US-lessac-medium" } },
  });
  const ended = await s.nextEnded();
  t.match(ended.endReason, /^local BYE: TTS failed on 2 replies in a row: Piper at http:\/\/127\.0\.0\.1:\d+\/synthesize answered 500: synthesis failed/, "the agent ended the call, saying why");
  await s.baresip.waitForEvent("CALL_CLOSED");
  const asked = piper.requests.map((r) => r.body.text);
  t.equal(asked.filter((text) => text === APOLOGY).length, 1, "Piper synthesised the apology once, at the agent's start");
  t.same(asked.filter((text) => REPLIES.includes(text as string)), REPLIES, "and was asked for both replies, which it failed");

  const { heard } = callerRecordings(s);
  const apology = (await new PiperTts({ baseUrl: piper.url, timeoutMs: 5000 }).synthesize(APOLOGY, new AbortController().signal)).samples;
  const first = find(apology, heard);
  const afterFirst = first.atMs + apology.length / 16;
  const second = find(apology, heard.subarray(afterFirst * 16));
  t.comment(`the apology heard at ${first.atMs} ms (${first.score.toFixed(2)}) and ${afterFirst + second.atMs} ms (${second.score.toFixed(2)})`);
  t.ok(first.score > 0.6 && second.score > 0.6, "the caller heard the apology after each question, instead of silence");
  const trace = readTrace(traceDir, record.callId);
  t.same(
    trace.filter((r) => r.ttsFailed).map((r) => r.spoken),
    [APOLOGY, APOLOGY],
    "the trace has each apology as a turn, with the TTS's error",
  );
});
