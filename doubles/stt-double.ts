/**
 * An OpenAI-compatible transcription server (faster-whisper/speaches) that recognises what it
 * is sent: the uploaded WAV is compared with the phrases the test synthesised (envelope
 * correlation), so audio that was corrupted or misrouted on its way gets no transcript.
 * Silence and unknown sounds get Whisper's favourite invention, when the test gives one.
 */
import { createServer, type IncomingMessage } from "node:http";
import type { Teardown } from "../build/teardown.js";
import { untilDue, type EngineDelay } from "./engine-delay.js";
import { bestCorrelation } from "../media-agent/src/audio/compare.js";
import { readWav16k } from "../media-agent/src/audio/wav.js";
import type { SttSegment } from "../media-agent/src/pipeline/transcript-filter.js";

/** Scores of the same espeak-ng phrase after the phone path were 0.9+; other speech stays below 0.5. */
export const MATCH_THRESHOLD = 0.7;

export interface SttPhrase {
  text: string;
  samples16k: Int16Array;
  segment?: Partial<SttSegment>;
}

export interface SttDouble {
  url: string;
  requests: Array<{ model: string; language: string; responseFormat: string; audioMs: number; matched: string | null; score: number }>;
  setDown(down: boolean): void;
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((done) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => done(Buffer.concat(chunks)));
  });
}

/** multipart/form-data → fields (text) and the file part (bytes). */
export function parseMultipart(body: Buffer, contentType: string): { fields: Record<string, string>; file: Buffer | null } {
  const boundary = /boundary="?([^";]+)"?/.exec(contentType)?.[1];
  if (!boundary) throw new Error("no multipart boundary");
  const fields: Record<string, string> = {};
  let file: Buffer | null = null;
  const delimiter = Buffer.from(`--${boundary}`);
  let at = body.indexOf(delimiter);
  while (at >= 0) {
    const next = body.indexOf(delimiter, at + delimiter.length);
    if (next < 0) break;
    const part = body.subarray(at + delimiter.length + 2, next - 2); // skip CRLF after the delimiter and before the next
    const split = part.indexOf("\r\n\r\n");
    const head = part.subarray(0, split).toString("utf8");
    const content = part.subarray(split + 4);
    const name = /name="([^"]+)"/.exec(head)?.[1];
    if (name && /filename=/.test(head)) file = Buffer.from(content);
    else if (name) fields[name] = content.toString("utf8");
    at = next;
  }
  return { fields, file };
}

function rms(x: Int16Array): number {
  let e = 0;
  for (const s of x) e += s * s;
  return Math.sqrt(e / Math.max(1, x.length));
}

export interface SttDoubleOptions {
  phrases: SttPhrase[];
  hallucination?: { text: string; segment?: Partial<SttSegment> };
  /** When the answer leaves after the request came in (default: as soon as it is recognised). */
  delayMs?: EngineDelay;
}

export async function startSttDouble(t: Teardown, opts: SttDoubleOptions): Promise<SttDouble> {
  const requests: SttDouble["requests"] = [];
  let down = false;
  const server = createServer(async (req, res) => {
    const arrivedAt = performance.now();
    const body = await readBody(req);
    const fail = (status: number, message: string) => res.writeHead(status, { "Content-Type": "application/json" }).end(JSON.stringify({ error: { message } }));
    if (down) return fail(503, "model not loaded");
    if (req.method !== "POST" || req.url !== "/v1/audio/transcriptions") return fail(404, `no route ${req.method} ${req.url}`);
    let form;
    try {
      form = parseMultipart(body, req.headers["content-type"] ?? "");
    } catch (err) {
      return fail(400, (err as Error).message);
    }
    const { model, language, response_format: responseFormat } = form.fields;
    if (!model || !language || responseFormat !== "verbose_json" || !form.file) return fail(400, "model, language, response_format=verbose_json and file are required");
    const audio = readWav16k(form.file);
    const duration = audio.length / 16000;
    let best: { phrase: SttPhrase | null; score: number } = { phrase: null, score: 0 };
    if (rms(audio) > 30) {
      for (const phrase of opts.phrases) {
        const { score } = bestCorrelation(phrase.samples16k, audio, 16000, { maxLagMs: 3000 });
        if (score > best.score) best = { phrase, score };
      }
    }
    const matched = best.score >= MATCH_THRESHOLD ? best.phrase : null;
    requests.push({ model, language, responseFormat, audioMs: Math.round(duration * 1000), matched: matched?.text ?? null, score: best.score });
    const answer = matched ?? opts.hallucination;
    const segments = answer
      ? [{ id: 0, seek: 0, start: 0, end: duration, text: answer.text, tokens: [], temperature: 0, avg_logprob: -0.2, compression_ratio: 1.2, no_speech_prob: 0.01, ...answer.segment }]
      : [];
    await untilDue(arrivedAt, opts.delayMs);
    res.writeHead(200, { "Content-Type": "application/json" }).end(
      JSON.stringify({ task: "transcribe", language, duration, text: answer?.text ?? "", segments }),
    );
  });
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  t.teardown(() => new Promise<void>((done) => server.close(() => done())));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, requests, setDown: (d) => (down = d) };
}
