/**
 * A conversation end to end: baresip (the WhatsApp user, TLS + SRTP) → the Meta-edge peer →
 * Kamailio → rtpengine → the agent's voice pipeline, with engine doubles that speak the real
 * protocols: speech-to-text that recognises the audio it receives, an Ollama-compatible LLM
 * scripted to call get_weather, an Open-Meteo-compatible weather API, and espeak-ng speaking.
 */
import t from "tap";
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { sleep } from "../../build/kamailio.js";
import { listCalls } from "../../build/rtpengine-ng.js";
import { speak, wav16k } from "../../build/speech.js";
import { bestCorrelation } from "../../media-agent/src/audio/compare.js";
import { EspeakTts } from "../../media-agent/src/pipeline/tts.js";
import { startOllamaDouble } from "../support/ollama-double.js";
import { businessUri, setUpMediaCall } from "../support/media-call.js";
import { startSttDouble } from "../support/stt-double.js";
import { tempDir } from "../support/temp-dir.js";
import { BUSINESS } from "../support/wa-interconnect.js";
import { startWeatherDouble } from "../support/weather-double.js";

const QUESTION = "What is the weather in Dusseldorf?";
const GREETING = "Hello, this is the weather line.";
const ANSWER = "In Düsseldorf it is fourteen degrees with light rain.";
const SPEED = 165;

/** baresip's microphone: silence while the greeting plays, the question, then silence. */
function callerAudio(dir: string): { wav: string; question16k: Int16Array } {
  const question = speak(QUESTION, join(dir, "question16k.wav"), 16000, 0, 1, 0);
  const wav = join(dir, "caller48k.wav");
  execFileSync("sox", [question, "-r", "48000", "-c", "2", "-b", "16", wav, "pad", "3.5", "12"]);
  return { wav, question16k: wav16k(question) };
}

function profileJson(stt: string, ollama: string, weather: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    weather: {
      greeting: GREETING,
      systemPrompt: "You are the weather line. Answer in one short sentence.",
      language: "en",
      stt: { url: stt, model: "Systran/faster-whisper-small" },
      llm: { url: ollama, model: "llama3.2:3b", timeoutMs: 2000 },
      tts: { engine: "espeak-ng", voice: "en-us", speed: SPEED },
      tools: ["get_weather", "end_call"],
      weather: { geocodingUrl: weather, forecastUrl: weather },
      ...extra,
    },
  });
}

const espeak = new EspeakTts({ voice: "en-us", speed: SPEED });
const say = async (text: string) => (await espeak.synthesize(text, new AbortController().signal)).samples;

t.test("greeting, a weather question answered through get_weather, the answer heard by the caller", async (t) => {
  const dir = tempDir(t, "wa-voice-");
  const caller = callerAudio(dir);
  const stt = await startSttDouble(t, { phrases: [{ text: ` ${QUESTION}`, samples16k: caller.question16k }] });
  const weather = await startWeatherDouble(t);
  const ollama = await startOllamaDouble(t, {
    script: [
      { toolCalls: [{ function: { name: "get_weather", arguments: { city: "Düsseldorf" } } }] },
      { text: ANSWER },
    ],
  });
  const profiles = join(dir, "voice-profiles.json");
  writeFileSync(profiles, profileJson(stt.url, ollama.url, weather.url));
  const traceDir = join(dir, "traces");
  const s = await setUpMediaCall(t, dir, {
    callerWav: caller.wav,
    env: { WA_NUMBERS: `${BUSINESS}=weather` },
    agentEnv: { AGENT_VOICE_PROFILES: profiles, AGENT_TRACE_DIR: traceDir },
  });
  const answered = s.nextAnswered();
  s.baresip.dial(businessUri(s.w));
  await s.baresip.waitForEvent("CALL_ESTABLISHED", 15_000);
  const record = await answered;
  await sleep(12_000);
  const ended = s.nextEnded();
  s.baresip.hangup();
  await ended;

  t.equal(stt.requests.length, 1, "one turn went to speech-to-text");
  t.match(stt.requests[0], { model: "Systran/faster-whisper-small", language: "en", responseFormat: "verbose_json", matched: ` ${QUESTION}` });
  t.comment(`STT double recognised the caller's turn with score ${stt.requests[0].score.toFixed(3)}`);
  t.ok(weather.requests.some((r) => /name=D%C3%BCsseldorf|name=Düsseldorf/.test(r)), `the weather API was asked for Düsseldorf: ${weather.requests.join(", ")}`);
  t.equal(ollama.requests.length, 2, "two LLM rounds: the tool call, then the answer");
  const second = ollama.requests[1] as { messages: Array<{ role: string; content: string; tool_name?: string }> };
  t.ok(second.messages.some((m) => m.role === "tool" && m.tool_name === "get_weather" && /Düsseldorf/.test(m.content)), "the tool result went back to the LLM");
  t.ok(second.messages.some((m) => m.role === "user" && m.content === QUESTION), "the transcript is the user's message");

  const heard = wav16k(s.baresip.dumps().dec[0]);
  // References made the way the agent speaks: the same engine, voice and speed.
  const greeting = await say(GREETING);
  const answer = await say(ANSWER);
  const greetingMatch = bestCorrelation(greeting, heard, 16000, { maxLagMs: 15_000 });
  const answerMatch = bestCorrelation(answer, heard, 16000, { maxLagMs: 15_000 });
  t.comment(`caller heard the greeting at ${greetingMatch.lagMs} ms (score ${greetingMatch.score.toFixed(3)}), the answer at ${answerMatch.lagMs} ms (score ${answerMatch.score.toFixed(3)})`);
  t.ok(greetingMatch.score > 0.6, "the greeting arrived at baresip");
  t.ok(answerMatch.score > 0.6, "the spoken answer arrived at baresip");
  t.ok(answerMatch.lagMs > greetingMatch.lagMs + 3000, "the answer came after the question");

  const trace = readFileSync(join(traceDir, `${record.callId.replace(/[^A-Za-z0-9._-]/g, "_")}.jsonl`), "utf8").trim().split("\n").map((l) => JSON.parse(l));
  const turn = trace.find((r) => r.stt);
  t.ok(turn, "the turn has a trace record");
  t.equal(turn.stt.text.trim(), QUESTION);
  t.same(turn.toolResults.map((r: { name: string; ok: boolean }) => [r.name, r.ok]), [["get_weather", true]]);
  t.ok(turn.llm[0].firstTokenMs >= 0 && turn.tts.length > 0 && turn.firstPacketOutMs !== undefined, "LLM, TTS and first-packet times are recorded");
  t.same(await listCalls(s.w.us.rtpengine.ng), []);
});

t.test("the LLM is down: the caller hears an apology, the call goes on", async (t) => {
  const dir = tempDir(t, "wa-voice-");
  const caller = callerAudio(dir);
  const stt = await startSttDouble(t, { phrases: [{ text: ` ${QUESTION}`, samples16k: caller.question16k }] });
  const weather = await startWeatherDouble(t);
  const ollama = await startOllamaDouble(t, { script: [] });
  ollama.setDown(true);
  const profiles = join(dir, "voice-profiles.json");
  const APOLOGY = "Sorry, the assistant is not available right now.";
  writeFileSync(profiles, profileJson(stt.url, ollama.url, weather.url, { apology: APOLOGY }));
  const s = await setUpMediaCall(t, dir, {
    callerWav: caller.wav,
    env: { WA_NUMBERS: `${BUSINESS}=weather` },
    agentEnv: { AGENT_VOICE_PROFILES: profiles, AGENT_TRACE_DIR: join(dir, "traces") },
  });
  s.baresip.dial(businessUri(s.w));
  await s.baresip.waitForEvent("CALL_ESTABLISHED", 15_000);
  await sleep(10_000);
  t.same(s.baresip.eventTypes().filter((e) => e === "CALL_CLOSED"), [], "the call is still up");
  const ended = s.nextEnded();
  s.baresip.hangup();
  await ended;
  const apology = bestCorrelation(await say(APOLOGY), wav16k(s.baresip.dumps().dec[0]), 16000, { maxLagMs: 15_000 });
  t.comment(`apology heard at ${apology.lagMs} ms (score ${apology.score.toFixed(3)})`);
  t.ok(apology.score > 0.6, "the caller heard the apology");
});

t.test("end_call: the agent says goodbye, then hangs up with a BYE", async (t) => {
  const dir = tempDir(t, "wa-voice-");
  const caller = callerAudio(dir);
  const stt = await startSttDouble(t, { phrases: [{ text: ` ${QUESTION}`, samples16k: caller.question16k }] });
  const weather = await startWeatherDouble(t);
  const ollama = await startOllamaDouble(t, { script: [{ toolCalls: [{ function: { name: "end_call", arguments: { reason: "caller said goodbye" } } }] }] });
  const profiles = join(dir, "voice-profiles.json");
  const GOODBYE = "Thank you for calling the weather line. Goodbye!";
  writeFileSync(profiles, profileJson(stt.url, ollama.url, weather.url, { goodbye: GOODBYE }));
  const s = await setUpMediaCall(t, dir, {
    callerWav: caller.wav,
    env: { WA_NUMBERS: `${BUSINESS}=weather` },
    agentEnv: { AGENT_VOICE_PROFILES: profiles, AGENT_TRACE_DIR: join(dir, "traces") },
  });
  const ended = s.nextEnded();
  s.baresip.dial(businessUri(s.w));
  await s.baresip.waitForEvent("CALL_ESTABLISHED", 15_000);
  const record = await ended;
  t.match(record.endReason, /^local BYE: end_call: caller said goodbye/);
  await s.baresip.waitForEvent("CALL_CLOSED");
  const goodbye = bestCorrelation(await say(GOODBYE), wav16k(s.baresip.dumps().dec[0]), 16000, { maxLagMs: 15_000 });
  t.comment(`goodbye heard at ${goodbye.lagMs} ms (score ${goodbye.score.toFixed(3)})`);
  t.ok(goodbye.score > 0.6, "the goodbye was heard before the BYE");
  t.same(await listCalls(s.w.us.rtpengine.ng), []);
});
