/**
 * The latency benchmark's conversation and its engines. The engine doubles speak the engines'
 * real protocols and answer after the documented delays of real engines
 * (shared/docs/voice-agent.md, "Latency budget"), drawn per request from a seeded generator:
 *   - speech-to-text (doubles/stt-double.ts, recognises the prompts by their audio): 100–300 ms;
 *   - the LLM (doubles/ollama-double.ts, Ollama's streaming protocol): the first clause
 *     complete 100–250 ms after the request (first token, then a word every 20 ms); a tool call
 *     likewise 100–250 ms;
 *   - TTS (test/support/piper-double.ts, Piper's HTTP API, espeak-ng inside): the WAV 100–200 ms
 *     after the request;
 *   - the weather API (doubles/weather-double.ts): loopback speed.
 *
 * The engines run in a process of their own (`spawnLatencyEngines`): TTS starts an espeak-ng per
 * clause, and spawning blocks a Node event loop for milliseconds at a time, which in the caller's
 * process would delay its packets and the times it takes.
 */
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { startOllamaDouble, type ChatMessages, type ScriptedReply } from "../../doubles/ollama-double.js";
import { startSttDouble } from "../../doubles/stt-double.js";
import { startWeatherDouble } from "../../doubles/weather-double.js";
import { readWav16k } from "../../media-agent/src/audio/wav.js";
import { SentenceChunker } from "../../media-agent/src/pipeline/chunker.js";
import { normaliseText } from "../../media-agent/src/pipeline/transcript-filter.js";
import { seededRandom } from "../../test/support/malformed-corpus.js";
import { startPiperDouble } from "../../doubles/piper-double.js";

/** The documented engine delays (ms), drawn uniformly per request. */
export const ENGINE_DELAYS = { sttMs: [100, 300], llmFirstClauseMs: [100, 250], ttsMs: [100, 200], llmWordMs: 20 } as const;

/**
 * How the doubles take their time (LATENCY_BENCH_ENGINES): "drawn" (the default), uniformly over
 * each documented range per request; "median", every request at its range's middle, the
 * documented median. At the medians a turn waits for the engines a fixed sum, so what the stack
 * adds shows turn by turn, where in a drawn run the draws move the p50 by ±35 ms.
 */
export type EngineTiming = "drawn" | "median";

export function engineTiming(value: string | undefined): EngineTiming {
  if (value === undefined || value === "" || value === "drawn") return "drawn";
  if (value === "median") return "median";
  throw new Error(`LATENCY_BENCH_ENGINES=${value}: "drawn" (the default) or "median"`);
}

type Range = readonly [number, number];

/** The engine delays a turn of this kind waits for, one after the other. */
export function enginesOf(kind: TurnKind): Range[] {
  const { sttMs, llmFirstClauseMs, ttsMs } = ENGINE_DELAYS;
  return kind === "one tool round" ? [sttMs, llmFirstClauseMs, llmFirstClauseMs, ttsMs] : [sttMs, llmFirstClauseMs, ttsMs];
}

/** What the engines of a kind of turn take at their documented medians, one after the other. */
export const enginesAtMedian = (kind: TurnKind) => enginesOf(kind).reduce((sum, [lo, hi]) => sum + (lo + hi) / 2, 0);

/** The engines' sum for a kind of turn, drawn: its distribution function, at 0.1 ms. */
const drawnSums = new Map<TurnKind, (ms: number) => number>();
function drawnSumCdf(kind: TurnKind): (ms: number) => number {
  const known = drawnSums.get(kind);
  if (known) return known;
  const step = 0.1;
  let pmf = [1];
  for (const [lo, hi] of enginesOf(kind)) {
    const width = Math.round((hi - lo) / step);
    const next = new Array<number>(pmf.length + width).fill(0);
    for (let i = 0; i < pmf.length; i++) if (pmf[i]) for (let j = 0; j < width; j++) next[i + j] += pmf[i] / width;
    pmf = next;
  }
  const base = enginesOf(kind).reduce((sum, [lo]) => sum + lo, 0);
  const cdf = new Float64Array(pmf.length);
  pmf.reduce((acc, p, i) => (cdf[i] = acc + p), 0);
  const at = (ms: number) => {
    const i = Math.floor((ms - base) / step);
    return i < 0 ? 0 : i >= cdf.length ? 1 : cdf[i];
  };
  drawnSums.set(kind, at);
  return at;
}

/**
 * The p50 a drawn run would find over endlessly many turns, from turns measured at the medians:
 * each such turn's own share (its latency less enginesAtMedian) added to the engines' sum as
 * drawn (independent draws, uniform over each range), and the median of that mixture solved
 * for. A drawn run's p50 estimates the same from its 30 turns' draws; this needs only the
 * stack's shares, which vary by a few ms where the draws vary by a hundred.
 */
export function p50OverDrawnEngines(kind: TurnKind, shares: number[]): number {
  const engines = drawnSumCdf(kind);
  const below = (x: number) => shares.reduce((sum, share) => sum + engines(x - share), 0) / shares.length;
  let lo = Math.min(...shares);
  let hi = Math.max(...shares) + enginesOf(kind).reduce((sum, [, top]) => sum + top, 0);
  while (hi - lo > 0.05) {
    const mid = (lo + hi) / 2;
    if (below(mid) < 0.5) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

export type TurnKind = "no tools" | "one tool round" | "after barge-in";

export interface Line {
  prompt: string;
  kind: TurnKind;
  /** The LLM's answer (no tools). */
  reply?: string;
  /** The city get_weather is asked about. */
  city?: string;
  /** The caller interrupts this answer with the next line. */
  interrupted?: boolean;
}

const LONG_ANSWER =
  "Here is the outlook for the week. Monday stays dry and mild, with sunshine in the afternoon. " +
  "Tuesday brings clouds and some rain in the evening. Wednesday is windy, with showers and a cool breeze. " +
  "Thursday and Friday turn warmer again, and the weekend looks sunny everywhere.";

/** What the caller says, and what the LLM double makes of it. */
export const LINES = {
  hear: { prompt: "Can you hear me well?", kind: "no tools", reply: "Yes, I can hear you well. How can I help?" },
  who: { prompt: "Who am I talking to?", kind: "no tools", reply: "This is the weather line, a voice assistant." },
  what: { prompt: "What can you do for me?", kind: "no tools", reply: "I can tell you the weather, in any city you like." },
  thanks: { prompt: "That is very helpful, thank you.", kind: "no tools", reply: "You are welcome, ask me anything." },
  berlin: { prompt: "What is the weather in Berlin?", kind: "one tool round", city: "Berlin" },
  dusseldorf: { prompt: "What is the weather in Dusseldorf?", kind: "one tool round", city: "Dusseldorf" },
  week: { prompt: "Tell me about the whole week.", kind: "no tools", reply: LONG_ANSWER, interrupted: true },
  stop: { prompt: "Stop please, that is enough.", kind: "after barge-in", reply: "Of course, I will stop here." },
} satisfies Record<string, Line>;

export const ALL_LINES: Line[] = Object.values(LINES);

export const PROFILE = "latency";

type Engine = "stt" | "llm" | "tts";

/**
 * One seeded sequence per engine, so every run draws each engine the same delays in the same
 * order however the calls' requests interleave. What was drawn is reported with the figures:
 * a run whose draws sit above the documented medians has slower engines, not a slower stack.
 */
const sequences: Record<Engine, () => number> = { stt: seededRandom(1), llm: seededRandom(2), tts: seededRandom(3) };
const drawn: Record<Engine, number[]> = { stt: [], llm: [], tts: [] };
let timing: EngineTiming = "drawn";
function draw(engine: Engine, [lo, hi]: Range): number {
  const ms = timing === "median" ? (lo + hi) / 2 : lo + sequences[engine]() * (hi - lo);
  drawn[engine].push(ms);
  return ms;
}

/** What each engine was drawn so far: requests and mean delay (ms). */
export type DrawnDelays = Record<Engine, { requests: number; meanMs: number }>;
const drawnDelays = (): DrawnDelays =>
  Object.fromEntries(
    Object.entries(drawn).map(([engine, ms]) => [engine, { requests: ms.length, meanMs: Math.round(ms.reduce((a, b) => a + b, 0) / Math.max(1, ms.length)) }]),
  ) as DrawnDelays;

/** Streamed words until the agent's chunker hands its first piece to the TTS (the end-of-stream flush counts as one more). */
function wordsToFirstPiece(text: string): number {
  const chunker = new SentenceChunker();
  const words = text.match(/\S+\s*/g) ?? [];
  for (let i = 0; i < words.length; i++) if (chunker.push(words[i]).length) return i + 1;
  return words.length + 1;
}

/** The double's timing for a reply: its first piece complete, or its tool call sent, 100–250 ms after the request. */
function timed(reply: ScriptedReply): ScriptedReply {
  const target = draw("llm", ENGINE_DELAYS.llmFirstClauseMs);
  const before = reply.text ? (wordsToFirstPiece(reply.text) - 1) * ENGINE_DELAYS.llmWordMs : 0;
  return { ...reply, firstTokenDelayMs: Math.max(10, target - before), chunkDelayMs: ENGINE_DELAYS.llmWordMs };
}

/** The LLM double's rules: the caller's line → its answer or a get_weather call; a weather result → read out. */
export function llmReply(messages: ChatMessages): ScriptedReply {
  const last = messages[messages.length - 1];
  if (last?.role === "tool") {
    // "Berlin, Germany: 9.8 °C, overcast, wind 7.1 km/h."
    const m = /^([^,:]+)[^:]*: (-?[\d.]+) °C, ([^,]+)/.exec(last.content);
    return timed({ text: m ? `In ${m[1]} it is ${m[2]} degrees, ${m[3]}.` : "I could not get the weather." });
  }
  const said = normaliseText(last?.content ?? "");
  const line = ALL_LINES.find((l) => normaliseText(l.prompt) === said);
  if (line?.city) return timed({ toolCalls: [{ function: { name: "get_weather", arguments: { city: line.city } } }] });
  return timed({ text: line?.reply ?? "Sorry, I did not understand that." });
}

/** The prompt WAV of a line (16 kHz), written by the caller's side before the engines start. */
export const promptFile = (dir: string, line: Line) => join(dir, `prompt-${ALL_LINES.indexOf(line)}.wav`);

function voiceProfiles(engines: { stt: string; llm: string; tts: string; weather: string }): string {
  return JSON.stringify({
    [PROFILE]: {
      greeting: "Weather line, hello.",
      systemPrompt: "You are the weather line. Answer in one short sentence.",
      language: "en",
      stt: { url: engines.stt, model: "Systran/faster-whisper-small" },
      llm: { url: engines.llm, model: "llama3.2:3b" },
      tts: { engine: "piper", url: engines.tts, voice: "en_US-lessac-medium" },
      tools: ["get_weather"],
      weather: { geocodingUrl: engines.weather, forecastUrl: engines.weather },
    },
  });
}

/** In the engines' process: the doubles, and the voice profile file pointing at them. */
async function serveEngines(dir: string): Promise<{ file: string; report: () => EngineReport }> {
  const t = { teardown: () => undefined }; // the process ends with them
  const stt = await startSttDouble(t, {
    phrases: ALL_LINES.map((line) => ({ text: ` ${line.prompt}`, samples16k: readWav16k(readFileSync(promptFile(dir, line))) })),
    delayMs: () => draw("stt", ENGINE_DELAYS.sttMs),
  });
  const llm = await startOllamaDouble(t, { script: llmReply });
  const weather = await startWeatherDouble(t);
  const piper = await startPiperDouble(t, { delayMs: () => draw("tts", ENGINE_DELAYS.ttsMs) });
  const file = join(dir, "voice-profiles.json");
  writeFileSync(file, voiceProfiles({ stt: stt.url, llm: llm.url, tts: piper.url, weather: weather.url }));
  // A prompt is recognised only from its whole audio: the early requests at pauses inside it are not.
  const sttRequests = () => ({ total: stt.requests.length, recognised: stt.requests.filter((r) => r.matched !== null).length });
  return { file, report: () => ({ sttRequests: sttRequests(), drawn: drawnDelays() }) };
}

export interface EngineReport {
  /** What the STT double was asked: every request, and those that recognised a whole prompt. */
  sttRequests: { total: number; recognised: number };
  drawn: DrawnDelays;
}

export interface LatencyEngines {
  /** AGENT_VOICE_PROFILES for the agent. */
  profilesFile: string;
  pid: number;
  /** What the engines were asked so far, and the delays they drew. */
  report(): Promise<EngineReport>;
  stop(): Promise<void>;
}

/** Starts the engines' process on the prompts in `dir`; resolves once the voice profile file is written. */
export function spawnLatencyEngines(dir: string, timing: EngineTiming): Promise<LatencyEngines> {
  const child = spawn(process.execPath, ["--import", import.meta.resolve("tsx"), fileURLToPath(import.meta.url), dir, timing], { stdio: ["ignore", "pipe", "inherit"] });
  const stop = () =>
    new Promise<void>((done) => {
      if (child.exitCode !== null || child.signalCode !== null) return done();
      child.once("exit", () => done());
      child.kill("SIGTERM");
    });
  let out = "";
  const report = () =>
    new Promise<EngineReport>((done) => {
      const seen = out.length;
      const onData = () => {
        const line = /^report (.+)$/m.exec(out.slice(seen));
        if (!line) return;
        child.stdout!.off("data", onData);
        done(JSON.parse(line[1]) as EngineReport);
      };
      child.stdout!.on("data", onData);
      child.kill("SIGUSR2");
    });
  return new Promise((done, fail) => {
    child.stdout!.on("data", (c: Buffer) => {
      out += c.toString();
      const ready = /^ready (.+)$/m.exec(out);
      if (ready) done({ profilesFile: ready[1], pid: child.pid!, report, stop });
    });
    child.once("exit", (code) => fail(new Error(`the latency benchmark's engines exited (${code}) before they were ready`)));
  });
}

// Run as the engines' process: `tsx bench/lib/latency-engines.ts <dir with the prompts> <timing>`.
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  timing = engineTiming(process.argv[3]);
  const { file, report } = await serveEngines(process.argv[2]);
  process.on("SIGTERM", () => process.exit(0));
  process.on("SIGUSR2", () => console.log(`report ${JSON.stringify(report())}`));
  console.log(`ready ${file}`);
}
