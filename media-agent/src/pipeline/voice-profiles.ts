/**
 * Voice profiles (AGENT_VOICE_PROFILES: a JSON file): per business number's profile the
 * greeting, prompt, language, engines, tools and thresholds. Checked at start; every error
 * names the profile and the field.
 */
import { readFileSync } from "node:fs";
import { z } from "zod";
import { DEFAULT_BACKCHANNELS, DEFAULT_BARGE_IN } from "./barge-in.js";
import { OllamaChat, WhisperStt } from "./engines.js";
import { keepAliveProblem, type LlmConfig } from "./llm-client.js";
import { DEFAULT_THRESHOLDS } from "./transcript-filter.js";
import { DEFAULT_TURNS } from "./vad.js";
import { getTimeTool, getWeatherTool, endCallTool, transferCallTool, type Tool } from "./tools.js";
import { EspeakTts, PiperTts, type TtsEngine } from "./tts.js";
import type { VoiceProfile } from "./voice-pipeline.js";

const url = z.string().url();

const profileSchema = z.object({
  greeting: z.string().min(1),
  systemPrompt: z.string().min(1),
  language: z.string().regex(/^[a-z]{2}$/, "an ISO 639-1 code such as en"),
  stt: z.object({ url, model: z.string().default("Systran/faster-whisper-small"), timeoutMs: z.number().int().positive().default(4000) }),
  llm: z.object({
    url,
    model: z.string(),
    temperature: z.number().min(0).max(2).default(0.4),
    numPredict: z.number().int().positive().default(160),
    // Checked as Ollama reads it (a number: seconds; a string: a Go duration), not at the first call's 400.
    keepAlive: z
      .union([z.string(), z.number()])
      .superRefine((v, ctx) => {
        const problem = keepAliveProblem(v);
        if (problem) ctx.addIssue({ code: "custom", message: problem });
      })
      .default(-1),
    timeoutMs: z.number().int().positive().default(6000),
  }),
  tts: z.discriminatedUnion("engine", [
    z.object({ engine: z.literal("espeak-ng"), voice: z.string().default("en-us"), speed: z.number().int().min(80).max(400).default(165) }),
    z.object({
      engine: z.literal("piper"),
      url,
      // piper1-gpl: "synthesize"; an older piper1-gpl: "json-root"; rhasspy/piper: "raw-text" (piper-request.ts: PiperApi).
      api: z.enum(["synthesize", "json-root", "raw-text"]).default("synthesize"),
      voice: z.string().optional(),
      timeoutMs: z.number().int().positive().default(4000),
    }),
  ]),
  tools: z.array(z.enum(["get_weather", "get_time", "end_call", "transfer_call"])).default([]),
  weather: z.object({ geocodingUrl: url, forecastUrl: url, timeoutMs: z.number().int().positive().default(3000) }).default({
    geocodingUrl: "https://geocoding-api.open-meteo.com",
    forecastUrl: "https://api.open-meteo.com",
    timeoutMs: 3000,
  }),
  transfer: z
    .object({
      target: z.string().regex(/^sips?:[^\s@]+@[^\s]+$/, "a SIP URI such as sip:support@pbx.example.com"),
      ringTimeoutMs: z.number().int().positive().default(30_000),
      announcement: z.string().min(1).default("Please hold, I am connecting you to a colleague."),
      unavailable: z.string().min(1).default("Sorry, nobody can take your call right now. Please try again later."),
    })
    .optional(),
  timezone: z.string().default("UTC"),
  turns: z
    .object({
      hangoverMs: z.number().int().min(100).max(2000).default(DEFAULT_TURNS.hangoverMs),
      minSpeechMs: z.number().int().min(60).default(DEFAULT_TURNS.minSpeechMs),
      preRollMs: z.number().int().min(0).default(DEFAULT_TURNS.preRollMs),
      sttAfterMs: z.number().int().min(20).max(2000).multipleOf(20).default(DEFAULT_TURNS.sttAfterMs),
    })
    .prefault({}),
  bargeIn: z
    .object({
      minSpeechMs: z.number().int().min(60).default(DEFAULT_BARGE_IN.minSpeechMs),
      echoGuardMs: z.number().int().min(0).default(DEFAULT_BARGE_IN.echoGuardMs),
      backchannels: z.array(z.string().min(1)).default(DEFAULT_BACKCHANNELS),
    })
    .prefault({}),
  transcriptFilter: z
    .object({
      noSpeechProb: z.number().min(0).max(1).default(DEFAULT_THRESHOLDS.noSpeechProb),
      avgLogprob: z.number().max(0).default(DEFAULT_THRESHOLDS.avgLogprob),
      compressionRatio: z.number().positive().default(DEFAULT_THRESHOLDS.compressionRatio),
      realSpeechMs: z.number().int().min(0).default(DEFAULT_THRESHOLDS.realSpeechMs),
      maxWordsPerSecond: z.number().positive().default(DEFAULT_THRESHOLDS.maxWordsPerSecond),
    })
    .prefault({}),
  filler: z.string().default("One moment."),
  fillerAfterMs: z.number().int().positive().default(1500),
  askToRepeat: z.string().default("Sorry, I did not catch that. Could you say it again?"),
  maxRepeats: z.number().int().min(1).default(3),
  fallback: z.string().default("I am having trouble understanding. You can also write to us on WhatsApp."),
  fallbackAction: z.enum(["continue", "end-call", "transfer"]).default("continue"),
  dtmf: z.record(z.string().regex(/^[0-9*#]$/, "a key 0-9, * or #"), z.enum(["end-call", "transfer"])).default({}),
  apology: z.string().default("Sorry, I have a technical problem right now. Please try again in a moment."),
  goodbye: z.string().default("Thank you for calling. Goodbye!"),
  /** Caller silence once the agent has finished speaking: reprompts, then the goodbye and BYE. */
  idle: z
    .object({
      repromptAfterMs: z.number().int().min(1000).default(8000),
      maxReprompts: z.number().int().min(0).default(2),
      reprompt: z.string().min(1).default("Are you still there? How can I help you?"),
    })
    .prefault({}),
  maxToolRounds: z.number().int().min(0).max(5).default(2),
  toolTimeoutMs: z.number().int().positive().default(5000),
}).superRefine((p, ctx) => {
  if (p.bargeIn.minSpeechMs < p.turns.minSpeechMs) {
    // Shorter speech would pause the agent without ever making a turn that lets it go on.
    ctx.addIssue({ code: "custom", path: ["bargeIn", "minSpeechMs"], message: `must be at least turns.minSpeechMs (${p.turns.minSpeechMs})` });
  }
  const wantsTransfer = p.tools.includes("transfer_call") || p.fallbackAction === "transfer" || Object.values(p.dtmf).includes("transfer");
  if (wantsTransfer && !p.transfer) {
    ctx.addIssue({ code: "custom", path: ["transfer", "target"], message: "a transfer is configured (tools, fallbackAction or dtmf) but no transfer target is set" });
  }
});

export type VoiceProfileSpec = z.output<typeof profileSchema>;

export function parseVoiceProfiles(text: string, label: string): Record<string, VoiceProfileSpec> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`AGENT_VOICE_PROFILES: ${label} is not JSON: ${(err as Error).message}`);
  }
  const result = z.record(z.string(), profileSchema).safeParse(json);
  if (!result.success) {
    throw new Error(`AGENT_VOICE_PROFILES: ${label}: ${result.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  }
  return result.data;
}

export function loadVoiceProfiles(file: string): Record<string, VoiceProfileSpec> {
  return parseVoiceProfiles(readFileSync(file, "utf8"), file);
}

export function llmConfig(spec: VoiceProfileSpec): LlmConfig {
  const { url, model, keepAlive, temperature, numPredict, timeoutMs } = spec.llm;
  return { baseUrl: url, model, keepAlive, temperature, numPredict, timeoutMs };
}

/**
 * The system prompt for one call: `{caller}` becomes the WhatsApp user's id as Meta gave it (a
 * +E.164 number, or a business-scoped user id such as US.13491208655302741918, which is not a
 * phone number), `{callerKind}` says which of the two it is, `{business}` the business number.
 */
export function systemPromptFor(template: string, call: { remoteNumber: string; businessNumber: string }): string {
  const kind = /^\+\d+$/.test(call.remoteNumber) ? "phone number" : "WhatsApp business-scoped user id (not a phone number)";
  return template.replace(/\{caller\}/g, call.remoteNumber).replace(/\{callerKind\}/g, kind).replace(/\{business\}/g, call.businessNumber);
}

/** The profile's speech engine (stateless: the speech workers do the work). */
export function ttsEngine(spec: VoiceProfileSpec): TtsEngine {
  return spec.tts.engine === "piper"
    ? new PiperTts({ baseUrl: spec.tts.url, api: spec.tts.api, voice: spec.tts.voice, timeoutMs: spec.tts.timeoutMs })
    : new EspeakTts({ voice: spec.tts.voice, speed: spec.tts.speed });
}

/**
 * The lines the agent keeps in memory for a profile (prepared-lines.ts): the filler, whose moment
 * is set; the apology, which must be heard when the TTS fails; and, with a transfer target, the
 * transfer's announcement, so that a caller who asks for a person (a key, the model, the
 * fallback) still reaches one with the TTS down.
 */
export function preparedLinesOf(spec: VoiceProfileSpec): string[] {
  return [spec.filler, spec.apology, ...(spec.transfer ? [spec.transfer.announcement] : [])];
}

/** The running form of a profile for one call; `tts` when the caller keeps the profile's engine (the agent: its prepared filler). */
export function voiceProfile(spec: VoiceProfileSpec, traceDir: string, tts: TtsEngine = ttsEngine(spec)): VoiceProfile {
  const available: Record<string, () => Tool> = {
    get_weather: () => getWeatherTool(spec.weather),
    get_time: () => getTimeTool(spec.timezone),
    end_call: () => endCallTool(),
    // The schema refuses transfer_call without a transfer target.
    transfer_call: () => transferCallTool(spec.transfer!.ringTimeoutMs, spec.transfer!.target),
  };
  return {
    greeting: spec.greeting,
    systemPrompt: spec.systemPrompt,
    language: spec.language,
    stt: new WhisperStt({ baseUrl: spec.stt.url, model: spec.stt.model, language: spec.language, timeoutMs: spec.stt.timeoutMs }),
    llm: new OllamaChat(llmConfig(spec)),
    tts,
    tools: spec.tools.map((name) => available[name]()),
    turns: spec.turns,
    bargeIn: spec.bargeIn,
    transcriptFilter: spec.transcriptFilter,
    filler: spec.filler,
    fillerAfterMs: spec.fillerAfterMs,
    askToRepeat: spec.askToRepeat,
    maxRepeats: spec.maxRepeats,
    fallback: spec.fallback,
    fallbackAction: spec.fallbackAction,
    dtmf: spec.dtmf,
    apology: spec.apology,
    goodbye: spec.goodbye,
    idle: spec.idle,
    maxToolRounds: spec.maxToolRounds,
    toolTimeoutMs: spec.toolTimeoutMs,
    transfer: spec.transfer ?? null,
    traceDir,
  };
}
