/**
 * Speech to text through a faster-whisper server (speaches), OpenAI-compatible:
 * `POST /v1/audio/transcriptions` with the turn as a WAV, the language always set, and
 * `verbose_json` so the transcript filter gets each segment's confidences.
 */
import { z } from "zod";
import { SAMPLE_RATE } from "../audio/frames.js";
import { writeWav } from "../audio/wav.js";
import type { SttSegment } from "./transcript-filter.js";

export interface SttConfig {
  baseUrl: string;
  model: string;
  language: string;
  prompt?: string;
  timeoutMs: number;
}

export interface SttResult {
  text: string;
  language: string;
  duration: number;
  segments: SttSegment[];
  /** Request to answer, ms. */
  requestMs: number;
}

export class SttError extends Error {
  override name = "SttError";
}

const verboseJson = z.object({
  text: z.string(),
  language: z.string().default(""),
  duration: z.number().default(0),
  segments: z
    .array(
      z.object({
        start: z.number(),
        end: z.number(),
        text: z.string(),
        avg_logprob: z.number(),
        compression_ratio: z.number(),
        no_speech_prob: z.number(),
      }),
    )
    .default([]),
});

export async function transcribe(pcm16k: Int16Array, cfg: SttConfig, signal?: AbortSignal): Promise<SttResult> {
  const url = `${cfg.baseUrl}/v1/audio/transcriptions`;
  const form = new FormData();
  form.set("file", new Blob([writeWav(pcm16k, SAMPLE_RATE)], { type: "audio/wav" }), "turn.wav");
  form.set("model", cfg.model);
  form.set("language", cfg.language);
  form.set("response_format", "verbose_json");
  form.set("temperature", "0");
  if (cfg.prompt) form.set("prompt", cfg.prompt);
  const started = performance.now();
  const signals = [AbortSignal.timeout(cfg.timeoutMs), ...(signal ? [signal] : [])];
  let res: Response;
  try {
    res = await fetch(url, { method: "POST", body: form, signal: AbortSignal.any(signals) });
  } catch (err) {
    if (signal?.aborted) throw err;
    if ((err as Error).name === "TimeoutError") throw new SttError(`speech-to-text at ${url}: no answer within ${cfg.timeoutMs} ms`);
    throw new SttError(`speech-to-text at ${url}: ${String((err as { cause?: unknown }).cause ?? err)}`);
  }
  const body = await res.text();
  if (!res.ok) throw new SttError(`speech-to-text at ${url} answered ${res.status}: ${body.slice(0, 200)}`);
  let parsed;
  try {
    parsed = verboseJson.parse(JSON.parse(body));
  } catch (err) {
    throw new SttError(`speech-to-text at ${url} sent no verbose_json: ${(err as Error).message.slice(0, 200)}`);
  }
  return { ...parsed, requestMs: performance.now() - started };
}
