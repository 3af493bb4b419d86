/**
 * The engine check: for each voice profile, every engine it uses, asked the way the real servers
 * answer (speaches for speech-to-text, Ollama, Piper's HTTP server or espeak-ng, Open-Meteo), and
 * one small round trip through each with its time. Run when the agent starts and every
 * AGENT_ENGINE_CHECK_S (engine-health.ts), and on demand: `npm run check:engines -- --config
 * site.env` (check-engines.ts) prints the table and exits non-zero on any ✗.
 *
 * A ✗ is what would fail a call with the real server: an engine that does not answer, an Ollama
 * older than MIN_OLLAMA_VERSION, a model that is not pulled or not installed, a model without
 * tool support for a profile with tools, a Piper voice the server does not have.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { Ollama } from "ollama";
import { failureCause } from "./pipeline/engine-http.js";
import { llmError } from "./pipeline/llm-client.js";
import { transcribe } from "./pipeline/stt-client.js";
import { PiperTts } from "./pipeline/tts.js";
import { readWav16k, writeWav } from "./audio/wav.js";
import type { VoiceProfileSpec } from "./pipeline/voice-profiles.js";

const execFileP = promisify(execFile);

/**
 * Ollama from 0.8.0 on streams text and tool calls separately while tools are offered; 0.3–0.4
 * stream tool calls as plain text (the agent would speak the JSON), 0.5–0.7 hold every word
 * back until the answer is done (the first-token timeout fires).
 */
export const MIN_OLLAMA_VERSION = "0.8.0";
/** What the check says and transcribes. */
export const CHECK_PHRASE = "This is an engine check.";

export type EngineKind = "stt" | "llm" | "tts" | "weather";

export interface EngineCheck {
  profile: string;
  engine: EngineKind;
  url: string;
  /** The server's version where it tells one. */
  version: string | null;
  /** The model or voice checked. */
  subject: string;
  ok: boolean;
  /** Why not, or what was seen. */
  reason: string;
  /** The round trip's time (synthesis, transcription, chat, lookup), ms. */
  latencyMs: number | null;
}

export interface CheckOptions {
  /** Install a missing speech-to-text model through speaches' API (POST /v1/models/{id}). */
  installStt?: boolean;
  /**
   * Also a synthesis, its transcription and a chat round trip, timed (default). The running
   * agent checks without them: versions, models, capabilities and voices only, so its periodic
   * check costs the engines nothing and takes no call's place on a GPU.
   */
  roundTrips?: boolean;
  /**
   * What `espeak-ng --version` prints (default: run here). The running agent has a speech
   * worker run it (SynthesisPool.espeakVersion says why).
   */
  espeakVersion?: (timeoutMs: number) => Promise<string>;
  /** Per request. */
  timeoutMs?: number;
}

type Row = Omit<EngineCheck, "profile" | "engine" | "url" | "subject">;

/** Compares dotted versions ("0.12.3" ≥ "0.8.0"); pre-release tails are ignored. */
export function versionAtLeast(version: string, min: string): boolean {
  const a = version.replace(/^v/, "").split(/[.-]/).map((p) => parseInt(p, 10));
  const b = min.split(".").map((p) => parseInt(p, 10));
  for (let i = 0; i < b.length; i++) {
    const x = Number.isFinite(a[i]) ? a[i] : 0;
    if (x !== b[i]) return x > b[i];
  }
  return true;
}

async function getJson(url: string, timeoutMs: number, init: RequestInit = {}): Promise<{ status: number; body: unknown; text: string }> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  let body: unknown = null;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON: the text says what it is */
  }
  return { status: res.status, body, text };
}

function serverMessage(r: { body: unknown; text: string }): string {
  const b = r.body as { error?: unknown; detail?: unknown; message?: unknown } | null;
  const m = b && (b.error ?? b.detail ?? b.message);
  return m ? (typeof m === "string" ? m : JSON.stringify(m)) : r.text.trim().slice(0, 300);
}

async function timed<T>(work: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  const value = await work();
  return { value, ms: Math.round(performance.now() - started) };
}

const espeakVersionHere = async (timeoutMs: number) => (await execFileP("espeak-ng", ["--version"], { timeout: timeoutMs })).stdout;

/** Text to speech; its audio (16 kHz) feeds the speech-to-text round trip. */
async function checkTts(
  spec: VoiceProfileSpec,
  timeoutMs: number,
  roundTrips: boolean,
  espeakVersion: (timeoutMs: number) => Promise<string>,
): Promise<{ row: Row; subject: string; url: string; audio16k: Int16Array | null }> {
  if (spec.tts.engine === "espeak-ng") {
    const { voice, speed } = spec.tts;
    try {
      const version = (await espeakVersion(timeoutMs)).match(/espeak ng text-to-speech: (\S+)/i)?.[1] ?? null;
      if (!roundTrips) return { subject: voice, url: "(built in)", audio16k: null, row: { version, ok: true, reason: "installed", latencyMs: null } };
      const { value, ms } = await timed(() => execFileP("espeak-ng", ["-v", voice, "-s", String(speed), "--stdout", CHECK_PHRASE], { encoding: "buffer", timeout: timeoutMs, maxBuffer: 16 << 20 }));
      // espeak-ng says so on stderr (and writes no audio) when it has no such voice.
      const stderr = value.stderr.toString("utf8").trim();
      if (stderr) return { subject: voice, url: "(built in)", audio16k: null, row: { version, ok: false, reason: `espeak-ng: ${stderr}`, latencyMs: ms } };
      const audio = readWav16k(value.stdout);
      return { subject: voice, url: "(built in)", audio16k: audio, row: { version, ok: true, reason: `${Math.round((audio.length / 16000) * 1000)} ms of speech`, latencyMs: ms } };
    } catch (err) {
      return { subject: voice, url: "(built in)", audio16k: null, row: { version: null, ok: false, reason: `espeak-ng: ${failureCause(err, timeoutMs)}`, latencyMs: null } };
    }
  }
  const { url, voice } = spec.tts;
  // rhasspy/piper ("raw-text") speaks with the voice it was started with: there is none to check.
  const subject = voice ?? "(the server's default voice)";
  let note = "";
  try {
    const voices = await getJson(`${url}/voices`, timeoutMs);
    if (voices.status === 200 && voices.body && typeof voices.body === "object") {
      const names = Object.keys(voices.body as object);
      if (voice && !names.includes(voice)) {
        return { subject, url, audio16k: null, row: { version: null, ok: false, reason: `voice ${voice} is not on the server (it has ${names.join(", ") || "none"}); it would speak with its default voice instead`, latencyMs: null } };
      }
    } else if (voices.status === 404) {
      note = "; the server lists no voices (GET /voices: 404), so the voice could not be checked";
    } else if (voices.status !== 200) {
      // Loading, overloaded or behind a failing proxy, as for the STT's model list.
      return { subject, url, audio16k: null, row: { version: null, ok: false, reason: `GET /voices answered ${voices.status}: ${serverMessage(voices)}`, latencyMs: null } };
    }
  } catch (err) {
    return { subject, url, audio16k: null, row: { version: null, ok: false, reason: failureCause(err, timeoutMs), latencyMs: null } };
  }
  if (!roundTrips) return { subject, url, audio16k: null, row: { version: null, ok: true, reason: `answers${note}`, latencyMs: null } };
  try {
    const tts = new PiperTts({ baseUrl: url, api: spec.tts.api, voice, timeoutMs });
    const { value, ms } = await timed(() => tts.synthesize(CHECK_PHRASE, AbortSignal.timeout(timeoutMs)));
    return { subject, url, audio16k: value.samples, row: { version: null, ok: true, reason: `${Math.round(value.samples.length / 16)} ms of speech${note}`, latencyMs: ms } };
  } catch (err) {
    return { subject, url, audio16k: null, row: { version: null, ok: false, reason: (err as Error).message, latencyMs: null } };
  }
}

async function checkStt(spec: VoiceProfileSpec, audio16k: Int16Array | null, opts: Required<CheckOptions>): Promise<Row> {
  const { url, model } = spec.stt;
  let note = "";
  try {
    const models = await getJson(`${url}/v1/models`, opts.timeoutMs);
    if (models.status === 200) {
      const ids = ((models.body as { data?: Array<{ id?: string }> } | null)?.data ?? []).map((m) => m.id);
      if (!ids.includes(model)) {
        if (!opts.installStt) {
          return { version: null, ok: false, reason: `model ${model} is not installed on the server (install it: POST ${url}/v1/models/${model}, or run the check with --install-stt)`, latencyMs: null };
        }
        const installed = await getJson(`${url}/v1/models/${encodeURIComponent(model)}`, 10 * 60_000, { method: "POST" });
        if (installed.status >= 300) return { version: null, ok: false, reason: `installing ${model} failed: ${installed.status} ${serverMessage(installed)}`, latencyMs: null };
        note = `; installed ${model} now`;
      }
    } else if (models.status === 404) {
      note = "; the server lists no models (GET /v1/models: 404, not speaches), so the model could not be checked";
    } else {
      // A server that is loading, overloaded or behind a failing proxy: it would fail a call too.
      return { version: null, ok: false, reason: `GET /v1/models answered ${models.status}: ${serverMessage(models)}`, latencyMs: null };
    }
  } catch (err) {
    return { version: null, ok: false, reason: failureCause(err, opts.timeoutMs), latencyMs: null };
  }
  if (!opts.roundTrips) return { version: null, ok: true, reason: `model installed${note}`, latencyMs: null };
  if (!audio16k) return { version: null, ok: false, reason: `no speech to transcribe (the TTS check failed)${note}`, latencyMs: null };
  try {
    // The first request may load the model: allow for it, and report the time it took.
    const { value, ms } = await timed(() => transcribe(writeWav(audio16k, 16000), { baseUrl: url, model, language: spec.language, timeoutMs: Math.max(opts.timeoutMs, spec.stt.timeoutMs) }));
    const late = ms > spec.stt.timeoutMs ? `; slower than the profile's stt.timeoutMs (${spec.stt.timeoutMs}): a call would have timed out` : "";
    return { version: null, ok: ms <= spec.stt.timeoutMs, reason: `heard "${value.text.trim()}"${note}${late}`, latencyMs: ms };
  } catch (err) {
    return { version: null, ok: false, reason: (err as Error).message, latencyMs: null };
  }
}

async function checkLlm(spec: VoiceProfileSpec, timeoutMs: number, roundTrips: boolean): Promise<Row> {
  const { url, model } = spec.llm;
  let version: string | null = null;
  try {
    const v = await getJson(`${url}/api/version`, timeoutMs);
    version = (v.body as { version?: string } | null)?.version ?? null;
    if (v.status !== 200 || !version) return { version, ok: false, reason: `GET /api/version answered ${v.status}: not an Ollama server? ${serverMessage(v)}`, latencyMs: null };
    if (!versionAtLeast(version, MIN_OLLAMA_VERSION)) {
      return { version, ok: false, reason: `Ollama ${version} is older than ${MIN_OLLAMA_VERSION}: with tools offered it would send tool calls as text or hold every word back until done`, latencyMs: null };
    }
    const show = await getJson(`${url}/api/show`, timeoutMs, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model }) });
    if (show.status === 404) return { version, ok: false, reason: `model ${model} is not on the server (ollama pull ${model}): ${serverMessage(show)}`, latencyMs: null };
    if (show.status !== 200) return { version, ok: false, reason: `POST /api/show answered ${show.status}: ${serverMessage(show)}`, latencyMs: null };
    const capabilities = (show.body as { capabilities?: string[] } | null)?.capabilities;
    if (spec.tools.length && capabilities && !capabilities.includes("tools")) {
      return { version, ok: false, reason: `model ${model} does not support tools (its capabilities: ${capabilities.join(", ")}), and the profile offers ${spec.tools.join(", ")}`, latencyMs: null };
    }
  } catch (err) {
    return { version, ok: false, reason: failureCause(err, timeoutMs), latencyMs: null };
  }
  if (!roundTrips) return { version, ok: true, reason: "model present", latencyMs: null };
  try {
    const client = new Ollama({ host: url, fetch: (input, init) => fetch(input, { ...init, signal: AbortSignal.timeout(Math.max(timeoutMs, 60_000)) }) });
    const { value, ms } = await timed(() =>
      client.chat({ model, messages: [{ role: "user", content: "Reply with the single word OK." }], stream: false, think: false, keep_alive: spec.llm.keepAlive, options: { num_predict: 8, temperature: 0 } }),
    );
    return { version, ok: true, reason: `answered "${value.message.content.trim().slice(0, 60)}"`, latencyMs: ms };
  } catch (err) {
    return { version, ok: false, reason: (llmError(err, `${url}/api/chat`) as Error).message, latencyMs: null };
  }
}

async function checkWeather(spec: VoiceProfileSpec, timeoutMs: number): Promise<Row> {
  try {
    const { value, ms } = await timed(() => getJson(`${spec.weather.geocodingUrl}/v1/search?name=Berlin&count=1&format=json`, timeoutMs));
    if (value.status !== 200) return { version: null, ok: false, reason: `geocoding answered ${value.status}: ${serverMessage(value)}`, latencyMs: ms };
    return { version: null, ok: true, reason: "geocoding answers", latencyMs: ms };
  } catch (err) {
    return { version: null, ok: false, reason: failureCause(err, timeoutMs), latencyMs: null };
  }
}

/** Every engine of one profile. */
export async function checkProfile(profile: string, spec: VoiceProfileSpec, options: CheckOptions = {}): Promise<EngineCheck[]> {
  const opts: Required<CheckOptions> = {
    installStt: options.installStt ?? false,
    roundTrips: options.roundTrips ?? true,
    espeakVersion: options.espeakVersion ?? espeakVersionHere,
    timeoutMs: options.timeoutMs ?? 5000,
  };
  const tts = await checkTts(spec, opts.timeoutMs, opts.roundTrips, opts.espeakVersion);
  const [stt, llm] = await Promise.all([checkStt(spec, tts.audio16k, opts), checkLlm(spec, opts.timeoutMs, opts.roundTrips)]);
  const rows: EngineCheck[] = [
    { profile, engine: "stt", url: spec.stt.url, subject: spec.stt.model, ...stt },
    { profile, engine: "llm", url: spec.llm.url, subject: spec.llm.model, ...llm },
    { profile, engine: "tts", url: tts.url, subject: tts.subject, ...tts.row },
  ];
  if (spec.tools.includes("get_weather") && opts.roundTrips) {
    rows.push({ profile, engine: "weather", url: spec.weather.geocodingUrl, subject: "Open-Meteo", ...(await checkWeather(spec, opts.timeoutMs)) });
  }
  return rows;
}

export async function checkEngines(profiles: Record<string, VoiceProfileSpec>, options: CheckOptions = {}): Promise<EngineCheck[]> {
  const rows: EngineCheck[] = [];
  for (const [name, spec] of Object.entries(profiles)) rows.push(...(await checkProfile(name, spec, options)));
  return rows;
}

/** The table `npm run check:engines` prints. */
export function engineTable(rows: EngineCheck[]): string {
  const header = ["profile", "engine", "URL", "version", "model/voice", "ok", "latency", "reason"];
  const lines = rows.map((r) => [r.profile, r.engine, r.url, r.version ?? "–", r.subject, r.ok ? "✓" : "✗", r.latencyMs === null ? "–" : `${r.latencyMs} ms`, r.reason]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmt = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join("  ").trimEnd();
  return [fmt(header), fmt(widths.map((w) => "-".repeat(w))), ...lines.map(fmt)].join("\n");
}
