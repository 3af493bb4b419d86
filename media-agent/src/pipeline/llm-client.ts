/**
 * The LLM through Ollama's `/api/chat`, streamed (NDJSON, one object per line): text parts as
 * they come, tool calls (arguments as objects), and the final line's timings. Abort stops the
 * read at once; no first token within timeoutMs is an error naming it.
 */
import { z } from "zod";
import type { ToolSpec } from "./tools.js";

export interface LlmConfig {
  baseUrl: string;
  model: string;
  keepAlive: string | number;
  temperature: number;
  numPredict: number;
  numCtx?: number;
  /** Time allowed until the first streamed line. */
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

const line = z.object({
  message: z
    .object({
      role: z.string(),
      content: z.string().default(""),
      tool_calls: z.array(z.object({ function: z.object({ name: z.string(), arguments: z.record(z.string(), z.unknown()) }) })).optional(),
    })
    .optional(),
  done: z.boolean(),
  total_duration: z.number().optional(),
  load_duration: z.number().optional(),
  eval_count: z.number().optional(),
  error: z.string().optional(),
});

export async function* chatStream(messages: ChatMessage[], tools: ToolSpec[], cfg: LlmConfig, signal: AbortSignal): AsyncGenerator<ChatPart> {
  const url = `${cfg.baseUrl}/api/chat`;
  const firstToken = new AbortController();
  const timer = setTimeout(() => firstToken.abort(), cfg.timeoutMs);
  let res: Response;
  try {
    res = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        model: cfg.model,
        messages,
        ...(tools.length ? { tools } : {}),
        stream: true,
        think: false,
        keep_alive: cfg.keepAlive,
        options: { temperature: cfg.temperature, num_predict: cfg.numPredict, ...(cfg.numCtx ? { num_ctx: cfg.numCtx } : {}) },
      }),
      signal: AbortSignal.any([signal, firstToken.signal]),
    });
  } catch (err) {
    clearTimeout(timer);
    if (signal.aborted) throw err;
    if (firstToken.signal.aborted) throw new LlmError(`LLM at ${url}: no answer within ${cfg.timeoutMs} ms`);
    throw new LlmError(`LLM at ${url}: ${String((err as { cause?: unknown }).cause ?? err)}`);
  }
  if (!res.ok || !res.body) {
    clearTimeout(timer);
    throw new LlmError(`LLM at ${url} answered ${res.status}: ${(await res.text()).slice(0, 200)}`);
  }
  const decoder = new TextDecoder();
  let pending = "";
  let first = true;
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      if (first) {
        clearTimeout(timer);
        first = false;
      }
      pending += decoder.decode(chunk, { stream: true });
      let newline;
      while ((newline = pending.indexOf("\n")) >= 0) {
        const text = pending.slice(0, newline).trim();
        pending = pending.slice(newline + 1);
        if (text) yield* parts(text, url);
      }
    }
    if (pending.trim()) yield* parts(pending.trim(), url);
  } catch (err) {
    if (signal.aborted) throw err;
    if (firstToken.signal.aborted) throw new LlmError(`LLM at ${url}: no first token within ${cfg.timeoutMs} ms`);
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

function* parts(text: string, url: string): Generator<ChatPart> {
  let parsed;
  try {
    parsed = line.parse(JSON.parse(text));
  } catch (err) {
    throw new LlmError(`LLM at ${url} sent a bad line '${text.slice(0, 80)}': ${(err as Error).message.slice(0, 120)}`);
  }
  if (parsed.error) throw new LlmError(`LLM at ${url}: ${parsed.error}`);
  if (parsed.message?.content) yield { type: "text", text: parsed.message.content };
  if (parsed.message?.tool_calls?.length) yield { type: "tool_calls", calls: parsed.message.tool_calls };
  if (parsed.done) {
    yield { type: "done", stats: { totalMs: (parsed.total_duration ?? 0) / 1e6, loadMs: (parsed.load_duration ?? 0) / 1e6, evalCount: parsed.eval_count ?? 0 } };
  }
}

/** Loads the model and keeps it loaded (empty messages, keep_alive). */
export async function warmUp(cfg: LlmConfig): Promise<void> {
  const res = await fetch(`${cfg.baseUrl}/api/chat`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ model: cfg.model, messages: [], keep_alive: cfg.keepAlive }),
    signal: AbortSignal.timeout(60_000),
  });
  if (!res.ok) throw new LlmError(`LLM warm-up at ${cfg.baseUrl}/api/chat answered ${res.status}`);
  await res.text();
}
