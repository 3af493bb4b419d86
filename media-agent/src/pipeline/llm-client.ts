/**
 * The LLM through Ollama's `/api/chat` with the official client (`ollama` on npm), streamed:
 * text parts as they come, tool calls (arguments as objects), and the final part's timings.
 * Abort stops the stream at once; no first part within timeoutMs is an error naming it; an error
 * in the stream, or a stream that ends without Ollama's `done`, is an LlmError with its cause.
 */
import { Ollama, type ChatRequest } from "ollama";
import type { ToolSpec } from "./tools.js";

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
  | { type: "done"; stats: { totalMs: number; loadMs: number; evalCount: number } };

export class LlmError extends Error {
  override name = "LlmError";
}

/** A client whose requests also end with `signal` (the client's own abort only exists once the answer has begun). */
function client(cfg: LlmConfig, signal: AbortSignal): Ollama {
  return new Ollama({
    host: cfg.baseUrl,
    fetch: (input, init) => fetch(input, { ...init, signal: init?.signal ? AbortSignal.any([init.signal, signal]) : signal }),
  });
}

/** What went wrong, as an LlmError naming the server (aborts are passed on as they are). */
export function llmError(err: unknown, url: string): unknown {
  const e = err as Error & { status_code?: number; error?: string; cause?: unknown };
  // The client's ResponseError (not exported): an HTTP error answer, Ollama's message in `error`.
  if (e.name === "ResponseError") return new LlmError(`LLM at ${url} answered ${e.status_code}: ${String(e.error).slice(0, 200)}`);
  if (e.name === "AbortError") return err;
  return new LlmError(`LLM at ${url}: ${String(e.cause ?? e.message).slice(0, 300)}`);
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
        yield { type: "done", stats: { totalMs: (part.total_duration ?? 0) / 1e6, loadMs: (part.load_duration ?? 0) / 1e6, evalCount: part.eval_count ?? 0 } };
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
