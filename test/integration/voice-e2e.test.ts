/**
 * A conversation end to end: baresip (the WhatsApp user, TLS + SRTP) → the Meta-edge peer →
 * Kamailio → rtpengine → the agent's voice pipeline, with engine doubles that speak the real
 * protocols: speech-to-text that recognises the audio it receives, an Ollama-compatible LLM
 * scripted to call get_weather, an Open-Meteo-compatible weather API, and espeak-ng speaking
 * (test/support/voice-call.ts). The conversation's other behaviours as a caller meets them
 * (silence, filler, keys, backchannels, a failing tool) are voice-behaviours.test.ts.
 */
import t from "tap";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { sleep } from "../../build/kamailio.js";
import { listCalls } from "../../build/rtpengine-ng.js";
import { callerTrack, speak, wav16k } from "../../build/speech.js";
import { startBaresip } from "../../build/baresip.js";
import { freePort, freePortRange } from "../../build/ports.js";
import { bestCorrelation } from "../../media-agent/src/audio/compare.js";
import { PiperTts } from "../../media-agent/src/pipeline/tts.js";
import { readTrace } from "../../media-agent/src/pipeline/turn-trace.js";
import type { CallRecord } from "../../media-agent/src/calls/call.js";
import { registry } from "../../media-agent/src/metrics.js";
import { startApi } from "../../media-agent/src/api/http.js";
import { REPO_ROOT } from "../../build/bundle.js";
import { openBrowser } from "../support/browser.js";
import { startPiperDouble } from "../../doubles/piper-double.js";
import { startOllamaDouble } from "../../doubles/ollama-double.js";
import { startSttDouble } from "../../doubles/stt-double.js";
import { tempDir } from "../support/temp-dir.js";
import { GREETING, hangUpAfter, lastSoundMs, say, startVoiceCall } from "../support/voice-call.js";
import { startWeatherDouble } from "../../doubles/weather-double.js";

// Six calls, each with its own agent (and its speech workers) and engine doubles: over tap's
// 120 s default per file on a loaded 2-core machine.
t.setTimeout(240_000);

const QUESTION = "What is the weather in Dusseldorf?";
const ANSWER = "In Düsseldorf it is fourteen degrees with light rain.";

/** The question after the greeting, then silence. */
function callerAudio(dir: string): { wav: string; question16k: Int16Array } {
  const track = callerTrack(dir, [{ silenceS: 3.5 }, QUESTION, { silenceS: 12 }]);
  return { wav: track.wav, question16k: track.lines.get(QUESTION)! };
}

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
  const { s, record, traceDir } = await startVoiceCall(t, dir, { callerWav: caller.wav, engines: { stt, ollama, weather } });
  await hangUpAfter(s, 12_000);

  t.same(ollama.warmUps, ["llama3.2:3b"], "the model was loaded when the agent started");
  // The turn's request is the last; any before it went at a short pause between the question's words (turns.sttAfterMs) and was dropped when the caller went on.
  const turnRequest = stt.requests[stt.requests.length - 1];
  t.match(turnRequest, { model: "Systran/faster-whisper-small", language: "en", responseFormat: "verbose_json", matched: ` ${QUESTION}` }, "the whole question went to speech-to-text");
  t.ok(stt.requests.slice(0, -1).every((r) => r.matched === null && r.audioMs < turnRequest.audioMs), `before it only parts of the question (${stt.requests.length - 1})`);
  t.comment(`STT double recognised the caller's turn with score ${turnRequest.score.toFixed(3)}`);
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

  const trace = readTrace(traceDir, record.callId);
  const turn = trace.find((r) => r.stt);
  if (!turn?.stt) return t.fail("the turn has no trace record");
  t.equal(turn.stt.text.trim(), QUESTION);
  t.same(turn.toolResults.map((r) => [r.name, r.ok]), [["get_weather", true]]);
  t.ok((turn.llm[0].firstTokenMs ?? -1) >= 0 && turn.tts.length > 0 && turn.firstPacketOutMs !== undefined, "LLM, TTS and first-packet times are recorded");
  t.same(await listCalls(s.w.us.rtpengine.ng), []);

  // The agent's metrics (its /metrics; the agent runs in this process) counted the call and its turn.
  const metrics = await registry.metrics();
  t.match(metrics, /wa_agent_calls_total\{direction="inbound",profile="weather",codec="opus",status="ended",end_reason="remote BYE"\} [1-9]/);
  for (const stage of ["turn_decided", "stt", "llm_first_token", "tts_first_audio", "first_audible"]) {
    t.match(metrics, new RegExp(`wa_agent_turn_stage_seconds_count\\{stage="${stage}"\\} [1-9]`), `${stage} observed`);
  }
  t.match(metrics, /wa_agent_transcripts_total\{verdict="use"\} [1-9]/);
  t.match(metrics, /wa_agent_rtp_packets_total\{kind="received"\} [1-9]/);
  t.match(metrics, /wa_agent_rtp_jitter_seconds_count [1-9]/, "the call's interarrival jitter");
  t.match(metrics, /wa_agent_frame_lateness_seconds_count [1-9]/, "the frame timer's lateness (pacing error)");

  // The call viewer, in Debian's chromium: the timeline shows the turns and the tool call, a
  // turn's audio plays, and a screenshot is kept (test-artifacts/call-viewer.png).
  const api = await startApi(s.agent, { host: "127.0.0.1", port: await freePort() });
  t.teardown(() => api.close());
  const page = await (await openBrowser(t)).newPage();
  const pageErrors: string[] = [];
  page.on("pageerror", (err) => pageErrors.push(err.message));
  page.on("console", (m) => m.type() === "error" && pageErrors.push(m.text()));
  const base = `http://127.0.0.1:${(api.address() as { port: number }).port}`;
  await page.goto(`${base}/calls`);
  await page.click(`a[href="/calls/${encodeURIComponent(record.callId)}"]`);
  await page.waitForSelector("#timeline");
  t.ok((await page.$$(".turn")).length >= 2, "the greeting and the caller's turn are listed");
  t.ok((await page.$$('[data-lane="Caller speech"] rect')).length >= 1, "the caller's speech is on the timeline");
  t.ok((await page.$$('[data-lane="Tools"] circle')).length >= 1, "the tool call is on the timeline");
  t.ok((await page.$$('[data-lane="LLM"] rect')).length >= 2, "both LLM rounds are on the timeline");
  t.match(await page.textContent("body"), /Tool get_weather\(\{"city":"Düsseldorf"\}\)/, "which tool ran, with which arguments");
  t.match(await page.textContent("body"), /Heard: “What is the weather in Dusseldorf\?” — use/, "what the agent heard");
  t.match(await page.textContent(".turn:nth-of-type(2) .stages"), /turn decided \d+ ms · STT \d+ ms · LLM round 1: first token \d+ ms.* · first audible agent audio \d+ ms/, "how long each stage took");
  t.match(await page.$eval('[data-lane="SIP"]', (g) => g.innerHTML), /BYE from the caller: remote BYE/);
  t.ok((await page.$$("audio.agent")).length >= 2, "what the agent said has players too (the greeting, the answer)");
  for (const who of ["caller", "agent"]) {
    // (The page's own types: this tsconfig has no DOM library.)
    const played = await page.$eval(`audio.${who}`, (a) => {
      const audio = a as unknown as { play(): Promise<void>; pause(): void; duration: number };
      return audio.play().then(() => (audio.pause(), audio.duration));
    });
    t.ok(played > 0.5, `a turn's ${who} audio plays (${played.toFixed(2)} s)`);
  }
  mkdirSync(join(REPO_ROOT, "test-artifacts"), { recursive: true });
  await page.screenshot({ path: join(REPO_ROOT, "test-artifacts", "call-viewer.png"), fullPage: true });
  t.same(pageErrors, [], "the page ran without errors");
});

t.test("the LLM is down: the caller hears an apology, the call goes on", async (t) => {
  const dir = tempDir(t, "wa-voice-");
  const caller = callerAudio(dir);
  const stt = await startSttDouble(t, { phrases: [{ text: ` ${QUESTION}`, samples16k: caller.question16k }] });
  const weather = await startWeatherDouble(t);
  const ollama = await startOllamaDouble(t, { script: [] });
  ollama.setDown(true);
  const APOLOGY = "Sorry, the assistant is not available right now.";
  const { s } = await startVoiceCall(t, dir, { callerWav: caller.wav, engines: { stt, ollama, weather }, extra: { apology: APOLOGY } });
  await sleep(10_000);
  t.same(s.baresip.eventTypes().filter((e) => e === "CALL_CLOSED"), [], "the call is still up");
  await hangUpAfter(s, 0);
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
  const GOODBYE = "Thank you for calling the weather line. Goodbye!";
  const { s } = await startVoiceCall(t, dir, { callerWav: caller.wav, engines: { stt, ollama, weather }, extra: { goodbye: GOODBYE } });
  const record = await s.nextEnded();
  t.match(record.endReason, /^local BYE: end_call: caller said goodbye/);
  await s.baresip.waitForEvent("CALL_CLOSED");
  const goodbye = bestCorrelation(await say(GOODBYE), wav16k(s.baresip.dumps().dec[0]), 16000, { maxLagMs: 15_000 });
  t.comment(`goodbye heard at ${goodbye.lagMs} ms (score ${goodbye.score.toFixed(3)})`);
  t.ok(goodbye.score > 0.6, "the goodbye was heard before the BYE");
  t.same(await listCalls(s.w.us.rtpengine.ng), []);
});

t.test("barge-in during a long answer: the agent's audio stops at once, the next LLM request carries only what was heard", async (t) => {
  const dir = tempDir(t, "wa-voice-");
  const INTERRUPTION = "Stop please. What about Berlin?";
  const LONG = "In Düsseldorf it is fourteen degrees with light rain. Tomorrow the rain moves east and the sun comes out in the afternoon. " +
    "On Thursday it gets colder, with frost in the night and a strong wind from the north. The weekend stays dry but cloudy everywhere.";
  const BERLIN = "In Berlin it is nine degrees and cloudy.";
  const track = callerTrack(dir, [{ silenceS: 3.5 }, QUESTION, { silenceS: 5 }, INTERRUPTION, { silenceS: 9 }]);
  const stt = await startSttDouble(t, {
    phrases: [QUESTION, INTERRUPTION].map((text) => ({ text: ` ${text}`, samples16k: track.lines.get(text)! })),
  });
  const weather = await startWeatherDouble(t);
  const ollama = await startOllamaDouble(t, { script: [{ text: LONG }, { text: BERLIN }] });
  const { s, record, traceDir } = await startVoiceCall(t, dir, { callerWav: track.wav, engines: { stt, ollama, weather } });
  await hangUpAfter(s, 19_000);

  t.equal(ollama.requests.length, 2, "the question and the interruption each went to the LLM");
  const messages = (ollama.requests[1] as { messages: Array<{ role: string; content: string }> }).messages;
  const cut = messages[messages.length - 2];
  t.equal(cut.role, "assistant");
  t.ok(cut.content.endsWith("…") && cut.content.length < LONG.length / 2 && LONG.startsWith(cut.content.split(" ").slice(0, 3).join(" ")), `the reply as far as it was heard: '${cut.content}'`);
  t.same(messages[messages.length - 1], { role: "user", content: INTERRUPTION });

  const trace = readTrace(traceDir, record.callId);
  const interrupted = trace.find((r) => r.bargeIn);
  t.match(interrupted, { bargeIn: { outcome: "reply stopped", heard: cut.content }, spoken: cut.content });

  // The same moment as baresip lived it: its microphone (enc) and what it heard (dec) start together.
  const sent = wav16k(s.baresip.dumps().enc[0]);
  const heard = wav16k(s.baresip.dumps().dec[0]);
  const onset = bestCorrelation(track.lines.get(INTERRUPTION)!, sent, 16000, { maxLagMs: 20_000 });
  const stoppedAt = lastSoundMs(heard, onset.lagMs, onset.lagMs + 1500);
  t.comment(`barge-in: caller speech began at ${onset.lagMs} ms; agent audio at baresip ended ${stoppedAt - onset.lagMs} ms later; ` +
    `agent side (trace): last packet ${interrupted?.bargeIn?.stopMs} ms after the onset the VAD saw, detection at the 200 ms threshold`);
  // A drained buffer would have played the rest of the answer (several seconds): the sentences after the cut are not heard.
  t.ok(stoppedAt - onset.lagMs < 1500, "the agent's audio stopped instead of draining its buffer");
  const weekend = bestCorrelation(await say("The weekend stays dry but cloudy everywhere."), heard, 16000, { maxLagMs: 25_000 });
  t.ok(weekend.score < 0.6, `the end of the long answer was never played (best match ${weekend.score.toFixed(3)})`);
  const berlin = bestCorrelation(await say(BERLIN), heard, 16000, { maxLagMs: 25_000 });
  t.ok(berlin.score > 0.6 && berlin.lagMs > onset.lagMs, `the answer to the interruption was heard (score ${berlin.score.toFixed(3)})`);
});

t.test("a noise burst with a hallucinated 'Thank you.' is dropped; unclear speech makes the agent (Piper voice) ask to repeat", async (t) => {
  const dir = tempDir(t, "wa-voice-");
  const MUMBLE = "I would like to ask you about something.";
  const ASK = "Sorry, I did not catch that. Could you say it again?";
  const track = callerTrack(dir, [{ silenceS: 3.5 }, { noiseS: 0.45 }, { silenceS: 2.5 }, MUMBLE, { silenceS: 8 }]);
  const stt = await startSttDouble(t, {
    // Real speech that Whisper is unsure of: confidences under the filter's thresholds.
    phrases: [{ text: ` ${MUMBLE}`, samples16k: track.lines.get(MUMBLE)!, segment: { avg_logprob: -1.45, no_speech_prob: 0.71 } }],
    hallucination: { text: " Thank you.", segment: { avg_logprob: -0.7, no_speech_prob: 0.42 } },
  });
  const weather = await startWeatherDouble(t);
  const ollama = await startOllamaDouble(t, { script: [] });
  const piper = await startPiperDouble(t);
  const { s, record, traceDir } = await startVoiceCall(t, dir, { callerWav: track.wav, engines: { stt, ollama, weather }, extra: { tts: { engine: "piper", url: piper.url, voice: "en_US-lessac-medium" }, askToRepeat: ASK } });
  await hangUpAfter(s, 14_000);

  // Two turns transcribed, the noise (not recognised) and the unclear sentence; between them only
  // the early requests at the short pauses inside the sentence (the caller went on: dropped).
  t.match(stt.requests[0], { matched: null }, "the noise first, not recognised");
  const last = stt.requests[stt.requests.length - 1];
  t.match(last, { matched: ` ${MUMBLE}` }, "the unclear sentence last, whole");
  t.ok(stt.requests.slice(1, -1).every((r) => r.matched === null && r.audioMs < last.audioMs), `in between only parts of the sentence (${stt.requests.length - 2})`);
  t.same(ollama.requests, [], "no dropped text reached the LLM");
  const trace = readTrace(traceDir, record.callId);
  const noise = trace.find((r) => r.stt?.text === " Thank you.");
  t.match(noise, { stt: { verdict: "ignore", dropped: [{ text: "Thank you.", reason: /known silence phrase/ }] }, spoken: "" });
  const unclear = trace.find((r) => r.stt?.verdict === "ask-to-repeat");
  t.match(unclear, { stt: { dropped: [{ reason: /no_speech_prob 0\.71 > 0\.6 with avg_logprob -1\.45/ }] }, spoken: ASK });
  const asked = piper.requests.map((r) => r.body.text);
  const prepared = ["One moment.", "Sorry, I have a technical problem right now. Please try again in a moment."];
  t.ok(piper.requests.every((r) => r.path === "/synthesize"), "Piper asked on /synthesize");
  t.same(asked.filter((text) => prepared.includes(text as string)), prepared, "Piper synthesised the filler and the apology once each, prepared at the agent's start");
  t.same(asked.filter((text) => !prepared.includes(text as string)), [GREETING, ASK], "and spoke the greeting and the request to repeat, nothing else");

  const heard = wav16k(s.baresip.dumps().dec[0]);
  const ask = bestCorrelation((await new PiperTts({ baseUrl: piper.url, timeoutMs: 5000 }).synthesize(ASK, new AbortController().signal)).samples, heard, 16000, { maxLagMs: 20_000 });
  t.comment(`the request to repeat (Piper) was heard at ${ask.lagMs} ms (score ${ask.score.toFixed(3)})`);
  t.ok(ask.score > 0.6, "the caller heard the agent ask to repeat");
});

t.test("transfer_call: the caller is announced, a person's phone (a plain SIP phone behind WA_TRANSFER_PROXY) rings, and the two talk", async (t) => {
  const dir = tempDir(t, "wa-voice-");
  const ASK = "I would like to talk to a person.";
  const PROBLEM = "My internet is down since this morning.";
  const ANNA = "This is Anna from the support team. How can I help you?";
  const ANNOUNCEMENT = "Please hold, I am connecting you to a colleague.";
  const track = callerTrack(dir, [{ silenceS: 3.5 }, ASK, { silenceS: 9 }, PROBLEM, { silenceS: 8 }]);
  const stt = await startSttDouble(t, { phrases: [{ text: ` ${ASK}`, samples16k: track.lines.get(ASK)! }] });
  const weather = await startWeatherDouble(t);
  const ollama = await startOllamaDouble(t, { script: [{ toolCalls: [{ function: { name: "transfer_call", arguments: { reason: "the caller asked for a person" } } }] }] });

  // The person: a plain SIP phone on UDP with G.711, answering at once and saying hello.
  const annaPort = await freePort();
  const anna = await startBaresip(t, {
    dir: join(dir, "anna"),
    host: "127.0.0.1",
    sipPort: annaPort,
    rtpPorts: await freePortRange(10),
    user: "anna",
    role: { kind: "plain-phone" },
    sourceWav: speak(ANNA, join(dir, "anna8k.wav"), 8000, 0.5, 1, 14),
    codecs: ["PCMA/8000"],
    answerMode: "auto",
  });
  const target = `sip:anna@127.0.0.1:${annaPort}`;
  const { s, record, traceDir } = await startVoiceCall(t, dir, { callerWav: track.wav, engines: { stt, ollama, weather }, extra: { tools: ["transfer_call"], transfer: { target, announcement: ANNOUNCEMENT, ringTimeoutMs: 10_000 } }, env: { WA_TRANSFER_PROXY: `sip:127.0.0.1:${annaPort}` } });
  const ended: CallRecord[] = [];
  s.agent.on("ended", (r) => ended.push(r));
  await anna.waitForEvent("CALL_ESTABLISHED", 15_000);
  t.pass("Kamailio took the agent's transfer leg to the person's phone, which answered");
  await sleep(12_000);
  s.baresip.hangup();
  await anna.waitForEvent("CALL_CLOSED", 10_000);
  t.pass("the caller hung up: the person's call was ended too");
  t.same(ended.map((r) => r.profile).sort(), ["transfer", "weather"], "both of the agent's calls ended");
  t.equal(ollama.requests.length, 1, "after the transfer the LLM is not asked again");

  const callerHeard = wav16k(s.baresip.dumps().dec[0]);
  const announcement = bestCorrelation(await say(ANNOUNCEMENT), callerHeard, 16000, { maxLagMs: 25_000 });
  const annaSays = bestCorrelation(wav16k(join(dir, "anna8k.wav")), callerHeard, 16000, { maxLagMs: 25_000 });
  const annaHeard = bestCorrelation(track.lines.get(PROBLEM)!, wav16k(anna.dumps().dec[0]), 16000, { maxLagMs: 25_000 });
  t.comment(`caller heard the announcement at ${announcement.lagMs} ms (${announcement.score.toFixed(3)}) and Anna at ${annaSays.lagMs} ms (${annaSays.score.toFixed(3)}); Anna heard the caller (${annaHeard.score.toFixed(3)})`);
  t.ok(announcement.score > 0.6, "the caller heard the announcement");
  t.ok(annaSays.score > 0.6 && annaSays.lagMs > announcement.lagMs, "then the person's voice");
  t.ok(annaHeard.score > 0.6, "the person heard the caller");
  const turn = readTrace(traceDir, record.callId).find((r) => r.toolResults.length);
  t.match(turn?.toolResults, [{ name: "transfer_call", ok: true, content: "The caller is now connected to a person." }]);
  t.same(await listCalls(s.w.us.rtpengine.ng), [], "no rtpengine session left of either leg");
});
