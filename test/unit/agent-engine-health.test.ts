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
