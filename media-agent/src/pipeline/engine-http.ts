/**
 * Requests to the engines' HTTP servers (speech to text, the LLM; Piper from the speech
 * workers) through node:http, not fetch: undici's WHATWG layer costs the event loop ~1 ms more
 * per request than http.request, and many calls' turns end in the same tick (measured in
 * stt-client.ts and llm-client.ts); in a speech worker it delayed a clause's first audio.
 *
 * Connections are kept open from turn to turn, as fetch's pool kept them; an idle one is let go
 * after 4 s, before a server's own keep-alive timeout (uvicorn's, under speaches: 5 s; Go's, under
 * Ollama, longer) can close it under a request. A kept connection that the server closes just as
 * it is reused is asked again once on a new one (Node's documented remedy for that race).
 */
import { Agent as HttpAgent, request as httpRequest, type ClientRequest, type IncomingMessage, type OutgoingHttpHeaders } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { Readable } from "node:stream";
import { ownLoopTurn } from "../loop-turns.js";

const kept = { http: new HttpAgent({ keepAlive: true, timeout: 4000 }), https: new HttpsAgent({ keepAlive: true, timeout: 4000 }) };

export interface EngineRequest {
  /**
   * Ends the request and closes its connection. No error is passed on: Node's stream destroy
   * formats the stack of an error it is given (`err.stack`), and with tsx's source maps that
   * cost the event loop ~1 ms per aborted request (a profile of 50 calls' turns, where the
   * early STT request of a pause is dropped whenever the caller goes on).
   */
  destroy(): void;
}

/**
 * Sends one request on a kept connection; `onResponse` gets the answer's head (its body still to
 * read), `onError` anything that went wrong before it.
 */
export function sendEngineRequest(
  url: URL,
  method: string,
  headers: OutgoingHttpHeaders,
  body: Buffer | string | undefined,
  onResponse: (res: IncomingMessage) => void,
  onError: (err: Error) => void,
): EngineRequest {
  const [request, agent] = url.protocol === "https:" ? [httpsRequest, kept.https] : [httpRequest, kept.http];
  let req: ClientRequest;
  const send = (retry: boolean): void => {
    req = request(url, { method, agent, headers }, onResponse);
    req.on("error", (err: NodeJS.ErrnoException) => {
      if (retry && req.reusedSocket && err.code === "ECONNRESET") return send(false);
      onError(err);
    });
    req.end(body);
  };
  send(true);
  return { destroy: () => req.destroy() };
}

/**
 * One engine request that must be answered within `timeoutMs` and ends when `signal` aborts:
 * `send` starts it (sendEngineRequest) and settles it through `done` / `fail`; the time running
 * out rejects with `timedOut()`, an abort with the signal's reason, and either ends the request
 * (and its connection).
 */
export function boundedRequest<T>(
  signal: AbortSignal,
  timeoutMs: number,
  timedOut: () => Error,
  send: (done: (value: T) => void, fail: (err: unknown) => void) => EngineRequest,
): Promise<T> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    let settled = false;
    const settle = (): boolean => {
      if (settled) return false;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      return true;
    };
    const stop = (err: unknown) => {
      if (!settle()) return;
      request.destroy();
      reject(err);
    };
    const timer = setTimeout(() => stop(timedOut()), timeoutMs);
    const onAbort = () => stop(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    const request = send(
      (value) => settle() && resolve(value),
      (err) => settle() && reject(err),
    );
  });
}

/**
 * A `fetch` for the `ollama` client over sendEngineRequest: the answer is a Response whose body
 * streams as the server writes it. `signal` ends the request too (the client's own abort exists
 * only once the answer has begun). As fetch does, an abort rejects with the signal's reason, or,
 * once the answer has begun, errors its body with an AbortError.
 */
export function engineFetch(signal: AbortSignal): typeof fetch {
  return async (input, init) => {
    // Many calls' turns may end in the same tick: their requests start spread over loop turns.
    await ownLoopTurn();
    const ended = init?.signal ? AbortSignal.any([init.signal, signal]) : signal;
    if (ended.aborted) throw ended.reason;
    const body = init?.body ?? undefined;
    if (body !== undefined && typeof body !== "string") throw new TypeError("engineFetch sends string bodies only (the ollama client's JSON)");
    return new Promise<Response>((resolve, reject) => {
      let answer: IncomingMessage | undefined;
      // Before the answer, the request ends; after, its body (and the connection with it), which
      // errors the body's stream with an AbortError (without formatting a stack: EngineRequest).
      const onAbort = () => {
        if (answer) answer.destroy();
        else pending.destroy();
        reject(ended.reason);
      };
      ended.addEventListener("abort", onAbort, { once: true });
      const pending = sendEngineRequest(
        new URL(String(input)),
        init?.method ?? "GET",
        Object.fromEntries(new Headers(init?.headers).entries()),
        body,
        (res) => {
          answer = res;
          res.once("close", () => ended.removeEventListener("abort", onAbort));
          try {
            resolve(responseOf(res));
          } catch (err) {
            res.destroy();
            reject(err);
          }
        },
        (err) => {
          ended.removeEventListener("abort", onAbort);
          reject(err);
        },
      );
    });
  };
}

/** The answer as fetch would give it; a status fetch cannot carry (below 200) is an error naming it. */
function responseOf(res: IncomingMessage): Response {
  const status = res.statusCode ?? 0;
  if (status < 200 || status > 599) throw new Error(`answered with HTTP status ${status}`);
  const headers = new Headers();
  for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) headers.append(res.rawHeaders[i], res.rawHeaders[i + 1]);
  const empty = status === 204 || status === 205 || status === 304;
  if (empty) res.resume();
  return new Response(empty ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>), { status, statusText: res.statusMessage, headers });
}

/**
 * Why an engine request failed, for its error message: the timeout, or fetch's own cause (the
 * refused connection, the reset socket), else the error's message.
 */
export function failureCause(err: unknown, timeoutMs: number): string {
  const e = err as Error & { cause?: unknown };
  return e.name === "TimeoutError" ? `no answer within ${timeoutMs} ms` : String(e.cause ?? e.message);
}
