/**
 * One clause from Piper's HTTP server: the request is built by the agent (tts.ts, from the voice
 * profile) and sent by a speech worker (tts-worker.ts), which decodes the WAV as it arrives.
 * Not on the agent's event loop: a clause's response (a WAV of ~100 KB) read through fetch cost
 * that loop 1.3–2.4 ms, against ~0.05 ms for handing the request to a worker.
 *
 * How the server takes a request (voice profile `tts.api`): "synthesize" (piper1-gpl: JSON on
 * POST /synthesize), "json-root" (older piper1-gpl: the same JSON on POST /), "raw-text"
 * (rhasspy/piper: the text itself as the body of POST /; its voice is the one it was started
 * with). Never guessed: rhasspy/piper answers JSON on "/" with 200 and reads the JSON aloud.
 */
import { boundedRequest, sendEngineRequest } from "./engine-http.js";

export type PiperApi = "synthesize" | "json-root" | "raw-text";

export interface PiperConfig {
  baseUrl: string;
  api?: PiperApi;
  voice?: string;
  speakerId?: number;
  lengthScale?: number;
  timeoutMs: number;
}

/** What a speech worker sends: plain data, so that it crosses the worker's IPC channel. */
export interface PiperRequest {
  baseUrl: string;
  api: PiperApi;
  path: string;
  contentType: string;
  body: string;
  timeoutMs: number;
}

export function piperRequest(cfg: PiperConfig, text: string): PiperRequest {
  const api = cfg.api ?? "synthesize";
  const body =
    api === "raw-text"
      ? text
      : JSON.stringify({
          text,
          ...(cfg.voice ? { voice: cfg.voice } : {}),
          ...(cfg.speakerId !== undefined ? { speaker_id: cfg.speakerId } : {}),
          ...(cfg.lengthScale ? { length_scale: cfg.lengthScale } : {}),
        });
  return {
    baseUrl: cfg.baseUrl,
    api,
    path: api === "synthesize" ? "/synthesize" : "/",
    contentType: api === "raw-text" ? "text/plain; charset=utf-8" : "application/json",
    body,
    timeoutMs: cfg.timeoutMs,
  };
}

/** A failure of the request, its message naming the cause (the agent makes a TtsError of it). */
export class PiperFailure extends Error {
  override name = "PiperFailure";
}

/**
 * Sends the request (engine-http.ts: node:http on a kept connection; through fetch, undici's
 * streams added ~1.5 ms to a clause's first audio in the speech worker, which runs below normal
 * priority). The WAV's bytes go to `onBytes` as they arrive. Resolves once the whole answer is
 * in, within the request's time; rejects with a PiperFailure naming the cause, or with the
 * abort's reason.
 */
export function sendPiperRequest(r: PiperRequest, signal: AbortSignal, onBytes: (bytes: Buffer) => void): Promise<void> {
  const where = `Piper at ${r.baseUrl}${r.path}`;
  const timedOut = () => new PiperFailure(`${where}: no answer within ${r.timeoutMs} ms`);
  const headers = { "content-type": r.contentType, "content-length": Buffer.byteLength(r.body) };
  return boundedRequest<void>(signal, r.timeoutMs, timedOut, (done, fail) =>
    sendEngineRequest(new URL(`${r.baseUrl}${r.path}`), "POST", headers, r.body, (res) => {
      const status = res.statusCode ?? 0;
      const ok = status >= 200 && status <= 299;
      let text = "";
      res.on("data", (bytes: Buffer) => {
        if (ok) onBytes(bytes);
        else if (text.length < 500) text += bytes.toString("utf8");
      });
      res.on("end", () => {
        if (ok) return done();
        if (status === 404 && r.api === "synthesize") {
          return fail(
            new PiperFailure(
              `Piper at ${r.baseUrl} has no POST /synthesize (404): an older server. Set the profile's tts.api to "json-root" (piper1-gpl before /synthesize) or "raw-text" (rhasspy/piper)`,
            ),
          );
        }
        fail(new PiperFailure(`${where} answered ${status}: ${text.slice(0, 500)}`));
      });
      res.on("error", (err) => fail(new PiperFailure(`${where}: the answer broke off: ${err.message}`)));
    }, (err) => fail(new PiperFailure(`${where}: ${err.message}`))),
  );
}
