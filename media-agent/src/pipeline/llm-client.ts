/**
 * The LLM through Ollama's `/api/chat` with the official client (`ollama` on npm), streamed:
 * text parts as they come, tool calls (arguments as objects), and the final part's timings.
 * Abort stops the stream at once; no first part within timeoutMs is an error naming it; an error
 * in the stream, or a stream that ends without Ollama's `done`, is an LlmError with its cause.
 * A reply cut at num_predict (Ollama's done_reason "length") is marked `cut` on the final part.
 */
import { Ollama, type ChatRequest } from "ollama";
import type { ToolSpec } from "./tools.js";
import { engineFetch } from "./engine-http.js";

export interface LlmConfig {
  baseUrl: string;
  model: string;
  keepAlive: string | number;
  temperature: number;
  numPredict: number;
  numCtx?: number;
  /** Time allowed until the first streamed part. */
  timeoutMs: number;
}

export interface ToolCall {
  function: { name: string; arguments: Record<string, unknown> };
}

export interface ChatMessage {
  role: "system" | "user" | "assistant" | "tool";
  content: string;
  tool_calls?: ToolCall[];
  tool_name?: string;
}

export type ChatPart =
  | { type: "text"; text: string }
  | { type: "tool_calls"; calls: ToolCall[] }
  | {
      type: "done";
      stats: { totalMs: number; loadMs: number; evalCount: number };
      /** The reply stopped at the token limit (num_predict), not where the model ended it: its last words may be unfinished. */
      cut?: boolean;
    };

export class LlmError extends Error {
  override name = "LlmError";
}

/**
 * A client whose requests also end with `signal` (the client's own abort only exists once the
 * answer has begun). Its requests go through node:http (engine-http.ts): a streamed reply through
 * fetch cost the event loop 66–91 ms per 50 replies, through node:http 20–57 ms (measured here).
 */
function client(cfg: LlmConfig, signal: AbortSignal): Ollama {
  return new Ollama({ host: cfg.baseUrl, fetch: engineFetch(signal) });
}

/** Ollama's own message is kept whole (it names the cause: a CUDA error, a missing model); the cap only protects the logs. */
function whole(message: string): string {
  return message.length > 2000 ? `${message.slice(0, 2000)}… (${message.length} characters)` : message;
}

/** What went wrong, as an LlmError naming the server (aborts are passed on as they are). */
export function llmError(err: unknown, url: string): unknown {
  const e = err as Error & { status_code?: number; error?: string; cause?: unknown };
  // The client's ResponseError (not exported): an HTTP error answer, Ollama's message in `error`.
  if (e.name === "ResponseError") return new LlmError(`LLM at ${url} answered ${e.status_code}: ${whole(String(e.error))}`);
  if (e.name === "AbortError") return err;
  // A mid-stream `{"error": …}` line is a plain Error whose message is Ollama's (the client's
  // AbortableAsyncIterator); so is "Did not receive done or success response in stream.".
  return new LlmError(`LLM at ${url}: ${whole(String(e.cause ?? e.message))}`);
}

/** Go's time.ParseDuration units, in nanoseconds. */
const GO_DURATION_UNITS: Record<string, number> = { ns: 1, us: 1e3, "\u00b5s": 1e3, "\u03bcs": 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
const GO_DURATION_PART = /(\d+\.?\d*|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)/gy;

/** Whether Go's time.ParseDuration takes `text`: "5m", "1h30m", "-1s", "300ms", ".5h", a bare "0"; not "-1" (no unit). */
export function isGoDuration(text: string): boolean {
  const unsigned = text.replace(/^[-+]/, "");
  if (unsigned === "0") return true;
  if (unsigned === "") return false;
  let ns = 0;
  let end = 0;
  for (const [part, number, unit] of unsigned.matchAll(GO_DURATION_PART)) {
    ns += Number(number) * GO_DURATION_UNITS[unit];
    end += part.length;
  }
  // Beyond int64 nanoseconds (about 292 years) Go refuses it too.
  return end === unsigned.length && ns <= 2 ** 63;
}

/**
 * Why Ollama would refuse `keepAlive` (undefined when it would not): it reads a number as seconds
 * (negative: keep the model loaded) and a string with time.ParseDuration, so a string without a
 * unit, such as "-1", is a 400 on every request ("time: missing unit in duration").
 */
export function keepAliveProblem(keepAlive: string | number): string | undefined {
  if (typeof keepAlive === "number" || isGoDuration(keepAlive)) return undefined;
  const seconds = /^[-+]?(\d+\.?\d*|\.\d+)$/.test(keepAlive.trim()) ? Number(keepAlive) : undefined;
  const instead = seconds === undefined ? "or a number of seconds (-1 keeps the model loaded)" : seconds < 0 ? `use the number ${seconds} to keep the model loaded` : `use the number ${seconds} for seconds`;
  return `'${keepAlive}' is not a Go duration such as "5m", "1h30m" or "-1s" (Ollama would answer every request with 400); ${instead}`;
}

export async function* chatStream(messages: ChatMessage[], tools: ToolSpec[], cfg: LlmConfig, signal: AbortSignal): AsyncGenerator<ChatPart> {
  const url = `${cfg.baseUrl}/api/chat`;
  const firstPart = new AbortController();
  const timer = setTimeout(() => firstPart.abort(), cfg.timeoutMs);
  const ended = AbortSignal.any([signal, firstPart.signal]);
  const request: ChatRequest & { stream: true } = {
    model: cfg.model,
    messages,
    ...(tools.length ? { tools: tools as ChatRequest["tools"] } : {}),
    stream: true,
    think: false,
    keep_alive: cfg.keepAlive,
    options: { temperature: cfg.temperature, num_predict: cfg.numPredict, ...(cfg.numCtx ? { num_ctx: cfg.numCtx } : {}) },
  };
  let first = true;
  try {
    const stream = await client(cfg, ended).chat(request);
    for await (const part of stream) {
      if (first) {
        clearTimeout(timer);
        first = false;
      }
      if (part.message?.content) yield { type: "text", text: part.message.content };
      if (part.message?.tool_calls?.length) yield { type: "tool_calls", calls: part.message.tool_calls as ToolCall[] };
      if (part.done) {
        const stats = { totalMs: (part.total_duration ?? 0) / 1e6, loadMs: (part.load_duration ?? 0) / 1e6, evalCount: part.eval_count ?? 0 };
        // "length": num_predict tokens were generated and Ollama stopped there ("stop": the model ended it).
        yield { type: "done", stats, cut: part.done_reason === "length" };
      }
    }
  } catch (err) {
    if (signal.aborted) throw err;
    if (firstPart.signal.aborted) throw new LlmError(`LLM at ${url}: no ${first ? "answer" : "first token"} within ${cfg.timeoutMs} ms`);
    throw llmError(err, url);
  } finally {
    clearTimeout(timer);
  }
}

/** Loads the model and keeps it loaded (empty messages, keep_alive). */
export async function warmUp(cfg: LlmConfig): Promise<void> {
  try {
    await client(cfg, AbortSignal.timeout(60_000)).chat({ model: cfg.model, messages: [], keep_alive: cfg.keepAlive, stream: false });
  } catch (err) {
    const e = llmError(err, `${cfg.baseUrl}/api/chat`);
    throw e instanceof LlmError ? new LlmError(e.message.replace(/^LLM at/, "LLM warm-up at")) : e;
  }
}
