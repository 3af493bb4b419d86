/**
 * The running agent's engine check (engine-health.ts) against the strict doubles: a failing
 * engine is logged loudly, exported as a metric, and its profile's turns take the apology path
 * at once; the next check that passes brings the engine back.
 */
import t, { type Test } from "tap";
import { pino } from "pino";
import { Writable } from "node:stream";
import { EngineHealth, gatedChat, gatedStt } from "../../media-agent/src/engine-health.js";
import { registry } from "../../media-agent/src/metrics.js";
import { LlmError } from "../../media-agent/src/pipeline/llm-client.js";
import { parseVoiceProfiles } from "../../media-agent/src/pipeline/voice-profiles.js";
import type { ChatModel, SpeechToText } from "../../media-agent/src/pipeline/engines.js";
import { startOllamaDouble } from "../../doubles/ollama-double.js";
import { startSttDouble } from "../../doubles/stt-double.js";
import { checkEngines } from "../../media-agent/src/engine-check.js";
import { SynthesisPool } from "../../media-agent/src/pipeline/synthesis-pool.js";
import { startSpeechWorkers, TtsError } from "../../media-agent/src/pipeline/tts.js";
import { createServer } from "node:http";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { MediaAgent } from "../../media-agent/src/agent.js";
import { parseAgentConfig } from "../../media-agent/src/config.js";
import { freePort, freePortRange } from "../../build/ports.js";
import { tempDir } from "../support/temp-dir.js";

function capture() {
  const lines: Array<{ level: number; msg: string }> = [];
  const log = pino({ level: "info" }, new Writable({ write: (chunk, _enc, done) => (lines.push(JSON.parse(String(chunk))), done()) }));
  return { log, lines };
}

async function gauge(profile: string, engine: string): Promise<number | undefined> {
  const metric = await registry.getSingleMetric("wa_agent_engine_check_ok")?.get();
  return metric?.values.find((v) => v.labels.profile === profile && v.labels.engine === engine)?.value;
}

async function profilesFor(t: Test, ollamaVersion: string) {
  const ollama = await startOllamaDouble(t, { script: [], version: ollamaVersion, models: { "llama3.2:3b": { tools: true } } });
  const stt = await startSttDouble(t, { phrases: [] });
  const profiles = parseVoiceProfiles(JSON.stringify({
    sales: {
      greeting: "Hello.", systemPrompt: "Test.", language: "en",
      stt: { url: stt.url }, llm: { url: ollama.url, model: "llama3.2:3b" }, tts: { engine: "espeak-ng" }, tools: ["get_time"],
    },
  }), "test");
  return { ollama, stt, profiles };
}

t.test("a failing engine: logged loudly, metric 0, its turns refused at once; passing again: back", async (t) => {
  const { ollama, stt, profiles } = await profilesFor(t, "0.12.6");
  const { log, lines } = capture();
  const health = new EngineHealth(profiles, log, 0);
  ollama.setDown(true);
  await health.start();
  t.match(health.failure("sales", "llm"), /GET \/api\/version answered 503/);
  t.equal(health.failure("sales", "stt"), null, "the others pass");
  t.ok(lines.some((l) => l.level === 50 && /^ENGINE CHECK FAILED: llm of profile sales: .*; its calls get the apology until it passes$/.test(l.msg)), "an error line names the engine, the profile and the cause");
  t.equal(await gauge("sales", "llm"), 0);
  t.equal(await gauge("sales", "stt"), 1);
  t.equal(stt.requests.length, 0, "the running agent's check sends no audio: no round trips");

  let asked = 0;
  const inner: ChatModel = { chat: () => (asked++, (async function* () {})()) };
  const chat = gatedChat(inner, () => health.failure("sales", "llm"));
  const refused = await (async () => {
    for await (const _ of chat.chat([], [], new AbortController().signal)) void _;
  })().catch((e: unknown) => e);
  t.ok(refused instanceof LlmError, "the turn gets an LLM error at once: the responder says the apology");
  t.match((refused as Error).message, /the LLM failed its engine check: GET \/api\/version answered 503/);
  t.equal(asked, 0, "nothing was sent to the engine");

  ollama.setDown(false);
  await health.check();
  t.equal(health.failure("sales", "llm"), null);
  t.equal(await gauge("sales", "llm"), 1);
  t.ok(lines.some((l) => l.msg === "engine check passes again: llm of profile sales"));
  for await (const _ of chat.chat([], [], new AbortController().signal)) void _;
  t.equal(asked, 1, "turns go to the engine again");
});

t.test("an Ollama too old for tool streaming fails the check; speech to text is gated the same way", async (t) => {
  const { profiles } = await profilesFor(t, "0.6.2");
  const health = new EngineHealth(profiles, capture().log, 0);
  await health.start();
  t.match(health.failure("sales", "llm"), /Ollama 0\.6\.2 is older than 0\.8\.0/);
  let asked = 0;
  const inner: SpeechToText = { transcribe: async () => (asked++, { text: "", language: "en", duration: 0, segments: [], requestMs: 0 }) };
  await t.rejects(gatedStt(inner, () => "model x is not installed").transcribe(new Uint8Array(), new AbortController().signal), /speech-to-text failed its engine check: model x is not installed/);
  await gatedStt(inner, () => null).transcribe(new Uint8Array(), new AbortController().signal);
  t.equal(asked, 1);
});

t.test("espeak-ng is checked by a speech worker, not by a process started from the agent's own: its version is reported; missing, it fails naming the cause", async (t) => {
  const { profiles } = await profilesFor(t, "0.12.6");
  const health = new EngineHealth(profiles, capture().log, 0);
  // The agent's speech workers find espeak-ng; this process, from now on, would not (workers
  // keep the environment they were started with).
  await startSpeechWorkers();
  const path = process.env.PATH;
  process.env.PATH = "/nonexistent";
  await health.start().finally(() => (process.env.PATH = path));
  t.match(health.rows().find((r) => r.engine === "tts"), { ok: true, url: "(built in)", subject: "en-us", version: /^\d+\.\d+/ }, "espeak-ng's version, as a speech worker's run of it printed it");

  // A worker whose PATH has no espeak-ng.
  process.env.PATH = "/nonexistent";
  const pool = new SynthesisPool(1, (message) => new TtsError(message));
  t.teardown(() => pool.close());
  await pool.warmUp().finally(() => (process.env.PATH = path));
  const rows = await checkEngines(profiles, { roundTrips: false, espeakVersion: (ms) => pool.espeakVersion(ms), timeoutMs: 3000 });
  t.match(rows.find((r) => r.engine === "tts"), { ok: false, version: null, reason: /^espeak-ng: .*spawn espeak-ng ENOENT/ });
});

t.test("the agent takes calls only once its first engine check has run: an engine slow to fail it is reported before the agent listens", async (t) => {
  // Every request answered 503 after 400 ms: the check fails, late.
  const slow = createServer((_req, res) => void setTimeout(() => res.writeHead(503).end("loading"), 400));
  await new Promise<void>((done) => slow.listen(0, "127.0.0.1", done));
  t.teardown(() => new Promise<void>((done) => (slow.closeAllConnections(), slow.close(() => done()))));
  const url = `http://127.0.0.1:${(slow.address() as { port: number }).port}`;
  const dir = tempDir(t, "wa-first-check-");
  const profiles = join(dir, "voice.json");
  writeFileSync(profiles, JSON.stringify({ sales: { greeting: "Hi.", systemPrompt: "x", language: "en", stt: { url }, llm: { url, model: "m" }, tts: { engine: "espeak-ng" } } }));
  const ports = await freePortRange(4);
  const parsed = parseAgentConfig({
    AGENT_SIP: `127.0.0.1:${await freePort()}`,
    AGENT_KAMAILIO: `127.0.0.1:${await freePort()}`,
    AGENT_RTP_PORTS: `${ports.min}-${ports.max}`,
    AGENT_API: `127.0.0.1:${await freePort()}`,
    AGENT_VOICE_PROFILES: profiles,
    AGENT_DEFAULT_PROFILE: "sales",
    AGENT_ENGINE_CHECK_S: "0",
  });
  if (!parsed.ok) throw new Error(parsed.errors.join("; "));
  const { log, lines } = capture();
  const agent = await MediaAgent.start(parsed.config, log);
  t.teardown(() => agent.stop());
  const messages = lines.map((l) => l.msg);
  const listening = messages.indexOf("media agent listening");
  const failed = messages.findIndex((m) => m.startsWith("ENGINE CHECK FAILED: stt of profile sales"));
  t.ok(failed >= 0 && failed < listening, "the failed check is logged before the agent listens for calls");
  t.ok(messages.some((m) => m.startsWith("ENGINE CHECK FAILED: llm of profile sales")));
  const health = await agent.health();
  t.same(health.checks.filter((c) => !c.ok).map((c) => c.engine).sort(), ["llm", "stt"], "/healthz names both from the first moment");
});

t.test("speech to text whose model list, or Piper whose voice list, answers 503 or 502 fails the check naming the answer; one with no list (404) passes with a note", async (t) => {
  const answers = { status: 503, body: JSON.stringify({ detail: "model is loading" }) };
  const server = createServer((_req, res) => res.writeHead(answers.status, { "Content-Type": "application/json" }).end(answers.body));
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  t.teardown(() => new Promise<void>((done) => (server.closeAllConnections(), server.close(() => done()))));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const { profiles } = await profilesFor(t, "0.12.6");
  profiles.sales.stt.url = url;
  const sttRow = async () => (await checkEngines(profiles, { roundTrips: false, espeakVersion: async () => "eSpeak NG text-to-speech: 1.51", timeoutMs: 2000 })).find((r) => r.engine === "stt");
  t.match(await sttRow(), { ok: false, reason: "GET /v1/models answered 503: model is loading" });
  answers.status = 404;
  answers.body = JSON.stringify({ detail: "Not Found" });
  t.match(await sttRow(), { ok: true, reason: /the server lists no models \(GET \/v1\/models: 404, not speaches\)/ });

  // Piper's voice list likewise.
  profiles.sales.tts = { engine: "piper", url, api: "synthesize", voice: "en_US-lessac-medium", timeoutMs: 2000 };
  const ttsRow = async () => (await checkEngines(profiles, { roundTrips: false, timeoutMs: 2000 })).find((r) => r.engine === "tts");
  answers.status = 502;
  answers.body = JSON.stringify({ error: "bad gateway" });
  t.match(await ttsRow(), { ok: false, reason: "GET /voices answered 502: bad gateway" });
  answers.status = 404;
  t.match(await ttsRow(), { ok: true, reason: /the server lists no voices \(GET \/voices: 404\)/ });
});

t.test("the first check is waited for only so long: an engine that never answers leaves the agent's start a warning, not a wait of 3 s per request", async (t) => {
  const silent = createServer(() => undefined);
  await new Promise<void>((done) => silent.listen(0, "127.0.0.1", done));
  t.teardown(() => new Promise<void>((done) => (silent.closeAllConnections(), silent.close(() => done()))));
  const { profiles } = await profilesFor(t, "0.12.6");
  profiles.sales.llm.url = `http://127.0.0.1:${(silent.address() as { port: number }).port}`;
  const { log, lines } = capture();
  const health = new EngineHealth(profiles, log, 0);
  const started = performance.now();
  await health.start(300);
  const waited = performance.now() - started;
  t.ok(waited >= 290 && waited < 2000, `start returned after the wait (${Math.round(waited)} ms), before the check's 3 s timeout`);
  t.ok(lines.some((l) => l.level === 40 && l.msg === "the first engine check has not finished after 300 ms: taking calls before its result, which follows in the log"));
  await health.check();
  t.match(health.failure("sales", "llm"), /no answer within 3000 ms/, "the result follows");
});
