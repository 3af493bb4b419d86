/**
 * Speech to text through a faster-whisper server (speaches), OpenAI-compatible:
 * `POST /v1/audio/transcriptions` with the turn as a WAV, the language always set, and
 * `verbose_json` so the transcript filter gets each segment's confidences. The multipart body
 * is one buffer built here: undici's FormData streams a Blob through web streams, which cost
 * the event loop ~1–2 ms per turn — turns of many calls can start in the same tick. It goes
 * through node:http for the same reason (`post`, engine-http.ts).
 */
import { randomBytes } from "node:crypto";
import { z } from "zod";
import { ownLoopTurn } from "../loop-turns.js";
import { boundedRequest, sendEngineRequest } from "./engine-http.js";
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

/** multipart/form-data (RFC 7578): the text fields, then the file. */
export function multipartBody(fields: Record<string, string>, file: { name: string; filename: string; type: string; data: Uint8Array }): { body: Buffer; contentType: string } {
  const boundary = `----wa-agent-${randomBytes(12).toString("hex")}`;
  const parts: Buffer[] = [];
  for (const [name, value] of Object.entries(fields)) {
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`));
  }
  parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${file.name}"; filename="${file.filename}"\r\nContent-Type: ${file.type}\r\n\r\n`));
  parts.push(Buffer.from(file.data.buffer, file.data.byteOffset, file.data.byteLength), Buffer.from(`\r\n--${boundary}--\r\n`));
  return { body: Buffer.concat(parts), contentType: `multipart/form-data; boundary=${boundary}` };
}

/** `wav`: the turn's audio as a WAV file (16 kHz mono). */
export async function transcribe(wav: Uint8Array, cfg: SttConfig, signal: AbortSignal = NEVER): Promise<SttResult> {
  const url = `${cfg.baseUrl}/v1/audio/transcriptions`;
  const fields: Record<string, string> = { model: cfg.model, language: cfg.language, response_format: "verbose_json", temperature: "0" };
  if (cfg.prompt) fields.prompt = cfg.prompt;
  const { body, contentType } = multipartBody(fields, { name: "file", filename: "turn.wav", type: "audio/wav", data: wav });
  const started = performance.now();
  let res: { status: number; text: string };
  try {
    await ownLoopTurn(); // many calls' turns may end in the same tick: their requests start spread over loop turns
    res = await post(new URL(url), contentType, body, signal, cfg.timeoutMs);
  } catch (err) {
    if (signal.aborted) throw err;
    if (err instanceof NoAnswer) throw new SttError(`speech-to-text at ${url}: no answer within ${cfg.timeoutMs} ms`);
    throw new SttError(`speech-to-text at ${url}: ${String(err)}`);
  }
  if (res.status < 200 || res.status > 299) throw new SttError(`speech-to-text at ${url} answered ${res.status}: ${res.text.slice(0, 200)}`);
  let parsed;
  try {
    parsed = verboseJson.parse(JSON.parse(res.text));
  } catch (err) {
    throw new SttError(`speech-to-text at ${url} sent no verbose_json: ${(err as Error).message.slice(0, 200)}`);
  }
  return { ...parsed, requestMs: performance.now() - started };
}

const NEVER = new AbortController().signal;

class NoAnswer extends Error {}

/**
 * One POST (engine-http.ts): a turn's request through fetch cost the event loop 0.9–1.5 ms,
 * through http.request 0.2–0.45 ms (50 requests of 64 KB with a small JSON answer, here).
 * Rejects with `signal`'s reason on abort, NoAnswer when the whole answer took over `timeoutMs`.
 * A transcription can be asked for twice (a kept connection closed under it, engine-http.ts).
 */
function post(url: URL, contentType: string, body: Buffer, signal: AbortSignal, timeoutMs: number): Promise<{ status: number; text: string }> {
  return boundedRequest(signal, timeoutMs, () => new NoAnswer(), (done, fail) =>
    sendEngineRequest(url, "POST", { "content-type": contentType, "content-length": body.length }, body, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => done({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", fail);
    }, fail),
  );
}
