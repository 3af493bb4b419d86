/**
 * An OpenAI-compatible transcription server, as strict as speaches (≥ 0.8): only installed
 * models transcribe (another gets 404 "not installed locally" until `POST /v1/models/{id}`
 * installs it), `GET /v1/models` lists them, and a model's first request pays its load delay.
 * It recognises what it is sent: the uploaded WAV is compared with the phrases the test synthesised (envelope
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
  /** The installed models, as GET /v1/models lists them. */
  installed: string[];
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
  /** Installed models (default: DEFAULT_STT_MODELS). */
  models?: string[];
  /** Loading a model on its first request (speaches loads lazily and unloads after idling). */
  loadDelayMs?: number;
}

/** What the tests' profiles use. */
export const DEFAULT_STT_MODELS = ["Systran/faster-whisper-small"];

export async function startSttDouble(t: Teardown, opts: SttDoubleOptions): Promise<SttDouble> {
  const requests: SttDouble["requests"] = [];
  const installed = [...(opts.models ?? DEFAULT_STT_MODELS)];
  const loaded = new Set<string>();
  let down = false;
  const server = createServer(async (req, res) => {
    const arrivedAt = performance.now();
    const body = await readBody(req);
    const fail = (status: number, message: string) => res.writeHead(status, { "Content-Type": "application/json" }).end(JSON.stringify({ error: { message } }));
    if (down) return fail(503, "model not loaded");
    if (req.method === "GET" && req.url === "/v1/models") {
      const data = installed.map((id) => ({ id, object: "model", created: 0, owned_by: id.split("/")[0], task: "automatic-speech-recognition" }));
      return res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify({ object: "list", data }));
    }
    const install = req.method === "POST" ? /^\/v1\/models\/(.+)$/.exec(req.url ?? "") : null;
    if (install) {
      const id = decodeURIComponent(install[1]);
      if (!installed.includes(id)) installed.push(id);
      return res.writeHead(201, { "Content-Type": "application/json" }).end(JSON.stringify({ id, object: "model" }));
    }
    if (req.method !== "POST" || req.url !== "/v1/audio/transcriptions") return fail(404, `no route ${req.method} ${req.url}`);
    let form;
    try {
      form = parseMultipart(body, req.headers["content-type"] ?? "");
    } catch (err) {
      return fail(400, (err as Error).message);
    }
    const { model, language, response_format: responseFormat } = form.fields;
    if (!model || !language || responseFormat !== "verbose_json" || !form.file) return fail(400, "model, language, response_format=verbose_json and file are required");
    if (!installed.includes(model)) {
      return res.writeHead(404, { "Content-Type": "application/json" }).end(JSON.stringify({ detail: `Model '${model}' is not installed locally. You can download the model using \`POST /v1/models/${model}\`` }));
    }
    if (!loaded.has(model)) {
      loaded.add(model);
      await new Promise((done) => setTimeout(done, opts.loadDelayMs ?? 0));
    }
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
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, installed, requests, setDown: (d) => (down = d) };
}
