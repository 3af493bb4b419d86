/**
 * A voice call end to end, as the caller has it: baresip (the WhatsApp user, TLS + SRTP) → the
 * Meta-edge peer → Kamailio → rtpengine → the agent's voice pipeline, with the "weather" voice
 * profile on engine doubles that speak the real protocols. What baresip sent and heard is in its
 * dumps; the helpers here find speech in them.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { sleep } from "../../build/kamailio.js";
import { wav16k } from "../../build/speech.js";
import { bestCorrelation } from "../../media-agent/src/audio/compare.js";
import type { CallRecord } from "../../media-agent/src/calls/call.js";
import { EspeakTts } from "../../media-agent/src/pipeline/tts.js";
import type { Teardown } from "../../build/teardown.js";
import { businessUri, setUpMediaCall, type MediaCallSetup } from "./media-call.js";
import { BUSINESS } from "./wa-interconnect.js";

export const GREETING = "Hello, this is the weather line.";
/** The profile's espeak-ng speed: the references below are made at it too. */
const SPEED = 165;

export interface VoiceEngines {
  stt: { url: string };
  ollama: { url: string };
  weather: { url: string };
}

/** AGENT_VOICE_PROFILES with the "weather" profile on the doubles; `extra` overrides or adds fields. */
function profileJson(engines: VoiceEngines, extra: Record<string, unknown>): string {
  return JSON.stringify({
    weather: {
      greeting: GREETING,
      systemPrompt: "You are the weather line. Answer in one short sentence.",
      language: "en",
      stt: { url: engines.stt.url, model: "Systran/faster-whisper-small" },
      llm: { url: engines.ollama.url, model: "llama3.2:3b", timeoutMs: 2000 },
      tts: { engine: "espeak-ng", voice: "en-us", speed: SPEED },
      tools: ["get_weather", "end_call"],
      weather: { geocodingUrl: engines.weather.url, forecastUrl: engines.weather.url },
      ...extra,
    },
  });
}

/** The stack with the weather profile (plus `extra`); baresip calls it, playing its track. */
export async function startVoiceCall(
  t: Teardown,
  dir: string,
  p: { callerWav: string; engines: VoiceEngines; extra?: Record<string, unknown>; env?: Record<string, string> },
): Promise<{ s: MediaCallSetup; record: CallRecord; traceDir: string }> {
  const profiles = join(dir, "voice-profiles.json");
  writeFileSync(profiles, profileJson(p.engines, p.extra ?? {}));
  const traceDir = join(dir, "traces");
  const s = await setUpMediaCall(t, dir, {
    callerWav: p.callerWav,
    env: { WA_NUMBERS: `${BUSINESS}=weather`, ...p.env },
    agentEnv: { AGENT_VOICE_PROFILES: profiles, AGENT_TRACE_DIR: traceDir },
  });
  const answered = s.nextAnswered();
  s.baresip.dial(businessUri(s.w));
  await s.baresip.waitForEvent("CALL_ESTABLISHED", 15_000);
  return { s, record: await answered, traceDir };
}

/** The caller talks (its track plays) for talkMs, then hangs up; resolves once the agent ended the call. */
export async function hangUpAfter(s: MediaCallSetup, talkMs: number): Promise<void> {
  await sleep(talkMs);
  const ended = s.nextEnded();
  s.baresip.hangup();
  await ended;
}

const espeak = new EspeakTts({ voice: "en-us", speed: SPEED });

/** A line as the profile's voice says it (16 kHz): the reference to find it in what the caller heard. */
export async function say(text: string): Promise<Int16Array> {
  return (await espeak.synthesize(text, new AbortController().signal)).samples;
}

/** What baresip heard (dec) and sent (enc), 16 kHz; the two recordings start together. */
export function callerRecordings(s: MediaCallSetup): { heard: Int16Array; sent: Int16Array } {
  const dumps = s.baresip.dumps();
  return { heard: wav16k(dumps.dec[0]), sent: wav16k(dumps.enc[0]) };
}

/** Where `line` is in `recording` (ms from its start) and how well it matches (> 0.6: it is there). */
export function find(line: Int16Array, recording: Int16Array, maxLagMs = 30_000): { atMs: number; score: number } {
  const { lagMs, score } = bestCorrelation(line, recording, 16000, { maxLagMs });
  return { atMs: lagMs, score };
}

/** Whether the 20 ms frame at `ms` of a 16 kHz recording is above the noise floor (RMS 300: about −41 dBFS). */
function soundAt(samples: Int16Array, ms: number): boolean {
  const frame = samples.subarray(ms * 16, (ms + 20) * 16);
  let energy = 0;
  for (const x of frame) energy += x * x;
  return frame.length > 0 && Math.sqrt(energy / frame.length) > 300;
}

/** Where audio stops in a recording: the end of the last 20 ms frame with sound in [fromMs, toMs). */
export function lastSoundMs(samples: Int16Array, fromMs: number, toMs: number): number {
  let last = fromMs;
  for (let ms = fromMs; ms < toMs; ms += 20) if (soundAt(samples, ms)) last = ms + 20;
  return last;
}

/** Where audio starts in a recording: the first 20 ms frame with sound in [fromMs, toMs), or toMs. */
export function firstSoundMs(samples: Int16Array, fromMs: number, toMs: number): number {
  for (let ms = fromMs; ms < toMs; ms += 20) if (soundAt(samples, ms)) return ms;
  return toMs;
}
