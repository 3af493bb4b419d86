/**
 * `npm run check:engines` against the strict engine doubles in each of their modes, run as an
 * operator runs it (its own process, a voice profiles file): the table, and an exit status that
 * is non-zero exactly where a real server would fail a call.
 */
import t from "tap";
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { REPO_ROOT } from "../../build/bundle.js";
import { startOllamaDouble } from "../../doubles/ollama-double.js";
import { startPiperDouble, type PiperFlavour } from "../../doubles/piper-double.js";
import { startSttDouble } from "../../doubles/stt-double.js";
import { startWeatherDouble } from "../../doubles/weather-double.js";
import { tempDir } from "../support/temp-dir.js";
import type { Test } from "tap";

const execFileP = promisify(execFile);
const STT_MODEL = "Systran/faster-whisper-small";

interface Setup {
  ollama?: { version?: string; tools?: boolean; pulled?: boolean };
  stt?: { installed?: boolean };
  piper?: { flavour?: PiperFlavour; api?: string; voice?: string };
  args?: string[];
}

/** Doubles in the given modes, one profile using them, and the CLI's run. */
async function check(t: Test, setup: Setup = {}): Promise<{ code: number; out: string; sttInstalled: string[] }> {
  const dir = tempDir(t, "wa-engines-");
  const model = "llama3.2:3b";
  const ollama = await startOllamaDouble(t, {
    script: [],
    version: setup.ollama?.version,
    models: setup.ollama?.pulled === false ? {} : { [model]: { tools: setup.ollama?.tools ?? true } },
  });
  const stt = await startSttDouble(t, { phrases: [], models: setup.stt?.installed === false ? [] : [STT_MODEL], loadDelayMs: 200 });
  const piper = await startPiperDouble(t, { flavour: setup.piper?.flavour });
  const weather = await startWeatherDouble(t);
  const profiles = join(dir, "voice-profiles.json");
  writeFileSync(profiles, JSON.stringify({
    sales: {
      greeting: "Hello.",
      systemPrompt: "You are a test.",
      language: "en",
      stt: { url: stt.url, model: STT_MODEL },
      llm: { url: ollama.url, model },
      tts: { engine: "piper", url: piper.url, voice: setup.piper?.voice ?? "en_US-lessac-medium", ...(setup.piper?.api ? { api: setup.piper.api } : {}) },
      tools: ["get_weather", "end_call"],
      weather: { geocodingUrl: weather.url, forecastUrl: weather.url },
    },
  }));
  const run = await execFileP(process.execPath, ["--import", "tsx", join(REPO_ROOT, "media-agent/src/check-engines.ts"), "--profiles", profiles, ...(setup.args ?? [])], { cwd: REPO_ROOT, timeout: 60_000 })
    .then((r) => ({ code: 0, out: r.stdout + r.stderr }))
    .catch((e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout + e.stderr }));
  t.comment(run.out);
  return { ...run, sttInstalled: stt.installed };
}

/** The table's row for an engine: its cells. */
function row(out: string, engine: string): string[] {
  const line = out.split("\n").find((l) => new RegExp(`^sales\\s+${engine}\\s`).test(l));
  if (!line) throw new Error(`no ${engine} row in:\n${out}`);
  return line.split(/\s{2,}/);
}

t.test("healthy engines: every row ✓, versions and round-trip times shown, exit 0", async (t) => {
  const { code, out } = await check(t);
  t.equal(code, 0);
  t.match(out, /profile\s+engine\s+URL\s+version\s+model\/voice\s+ok\s+latency\s+reason/);
  t.match(row(out, "llm"), ["sales", "llm", /^http:\/\/127\.0\.0\.1:\d+$/, "0.12.6", "llama3.2:3b", "✓", /^\d+ ms$/, /^answered "/]);
  t.match(row(out, "stt"), ["sales", "stt", /^http/, "–", STT_MODEL, "✓", /^\d+ ms$/, /^heard "/]);
  t.match(row(out, "tts"), ["sales", "tts", /^http/, "–", "en_US-lessac-medium", "✓", /^\d+ ms$/, /ms of speech$/]);
  t.match(row(out, "weather"), ["sales", "weather", /^http/, "–", "Open-Meteo", "✓"]);
  t.match(out, /✓ all 4 checks passed/);
});

t.test("speech-to-text model not installed: ✗ with the way to install it; --install-stt installs it through speaches' API", async (t) => {
  const missing = await check(t, { stt: { installed: false } });
  t.equal(missing.code, 1);
  t.match(row(missing.out, "stt"), ["sales", "stt", /^http/, "–", STT_MODEL, "✗", "–", /model Systran\/faster-whisper-small is not installed on the server \(install it: POST http:\/\/127\.0\.0\.1:\d+\/v1\/models\/Systran\/faster-whisper-small, or run the check with --install-stt\)/]);
  t.match(missing.out, /✗ 1 of 4 checks failed: calls on sales would fail/);
  const installed = await check(t, { stt: { installed: false }, args: ["--install-stt"] });
  t.equal(installed.code, 0);
  t.match(row(installed.out, "stt"), ["sales", "stt", /^http/, "–", STT_MODEL, "✓", /^\d+ ms$/, /installed Systran\/faster-whisper-small now/]);
  t.same(installed.sttInstalled, [STT_MODEL]);
});

t.test("LLM model not pulled, or without tool support for a profile with tools: ✗ naming the model", async (t) => {
  const notPulled = await check(t, { ollama: { pulled: false } });
  t.equal(notPulled.code, 1);
  t.match(row(notPulled.out, "llm"), ["sales", "llm", /^http/, "0.12.6", "llama3.2:3b", "✗", "–", /model llama3\.2:3b is not on the server \(ollama pull llama3\.2:3b\): model 'llama3\.2:3b' not found/]);
  const noTools = await check(t, { ollama: { tools: false } });
  t.equal(noTools.code, 1);
  t.match(row(noTools.out, "llm"), ["sales", "llm", /^http/, "0.12.6", "llama3.2:3b", "✗", "–", /does not support tools \(its capabilities: completion\), and the profile offers get_weather, end_call/]);
});

t.test("an Ollama older than 0.8: ✗ with what would go wrong", async (t) => {
  const old = await check(t, { ollama: { version: "0.4.7" } });
  t.equal(old.code, 1);
  t.match(row(old.out, "llm"), ["sales", "llm", /^http/, "0.4.7", "llama3.2:3b", "✗", "–", /Ollama 0\.4\.7 is older than 0\.8\.0: with tools offered it would send tool calls as text or hold every word back until done/]);
});

t.test("Piper: rhasspy/piper's raw-text server is refused until the profile says so; an unknown voice is reported", async (t) => {
  const rhasspy = await check(t, { piper: { flavour: "rhasspy" } });
  t.equal(rhasspy.code, 1);
  t.match(row(rhasspy.out, "tts"), ["sales", "tts", /^http/, "–", "en_US-lessac-medium", "✗", "–", /has no POST \/synthesize \(404\): an older server\. Set the profile's tts\.api to "json-root" .* or "raw-text"/]);
  t.match(row(rhasspy.out, "stt"), [/./, /./, /./, /./, /./, "✗", "–", /no speech to transcribe \(the TTS check failed\)/]);
  const rawText = await check(t, { piper: { flavour: "rhasspy", api: "raw-text" } });
  t.equal(rawText.code, 0);
  t.match(row(rawText.out, "tts"), ["sales", "tts", /^http/, "–", "en_US-lessac-medium", "✓", /^\d+ ms$/, /the server lists no voices \(GET \/voices: 404\), so the voice could not be checked/]);
  const unknownVoice = await check(t, { piper: { voice: "en_GB-alba-medium" } });
  t.equal(unknownVoice.code, 1);
  t.match(row(unknownVoice.out, "tts"), [/./, /./, /./, /./, "en_GB-alba-medium", "✗", "–", /voice en_GB-alba-medium is not on the server \(it has en_US-lessac-medium, de_DE-thorsten-medium\); it would speak with its default voice instead/]);
});

t.test("bad settings: exit 2 with the key named", async (t) => {
  const run = await execFileP(process.execPath, ["--import", "tsx", join(REPO_ROOT, "media-agent/src/check-engines.ts"), "--profiles", "/nonexistent/profiles.json"], { cwd: REPO_ROOT })
    .catch((e: { code: number; stderr: string }) => e);
  t.equal((run as { code: number }).code, 2);
  t.match((run as { stderr: string }).stderr, /check:engines: .*\/nonexistent\/profiles\.json/);
});
