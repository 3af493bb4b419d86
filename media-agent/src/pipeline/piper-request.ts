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
import { failureCause } from "./engine-http.js";

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
 * Sends the request; resolves to a 2xx response (its body the WAV, still to be read within the
 * request's time), rejects with a PiperFailure naming the cause, or with the abort's error.
 */
export async function sendPiperRequest(r: PiperRequest, signal: AbortSignal): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(`${r.baseUrl}${r.path}`, {
      method: "POST",
      headers: { "Content-Type": r.contentType },
      body: r.body,
      signal: AbortSignal.any([signal, AbortSignal.timeout(r.timeoutMs)]),
    });
  } catch (err) {
    if (signal.aborted) throw err;
    throw new PiperFailure(`Piper at ${r.baseUrl}${r.path}: ${failureCause(err, r.timeoutMs)}`);
  }
  if (res.status === 404 && r.api === "synthesize") {
    throw new PiperFailure(
      `Piper at ${r.baseUrl} has no POST /synthesize (404): an older server. Set the profile's tts.api to "json-root" (piper1-gpl before /synthesize) or "raw-text" (rhasspy/piper)`,
    );
  }
  if (!res.ok) throw new PiperFailure(`Piper at ${r.baseUrl}${r.path} answered ${res.status}: ${(await res.text()).slice(0, 500)}`);
  return res;
}
