/**
 * An Ollama-compatible `/api/chat` server speaking the streaming NDJSON protocol, scripted: a
 * list (one reply per request, in order: tests) or a function of the conversation (the demo's
 * rule-based stand-in). Records every request body for assertions. Not a language model.
 */
import { createServer } from "node:http";
import type { Teardown } from "../build/teardown.js";
import type { ToolCall } from "../media-agent/src/pipeline/llm-client.js";

export interface ScriptedReply {
  text?: string;
  toolCalls?: ToolCall[];
  firstTokenDelayMs?: number;
  chunkDelayMs?: number;
  /** Ollama's mid-stream failure: an `{"error": …}` line after the text, then the stream ends. */
  error?: string;
}

export interface OllamaDouble {
  url: string;
  /** Chat requests (warm-ups with empty messages are not listed). */
  requests: Array<Record<string, unknown>>;
  /** Warm-up requests (empty messages): the model names loaded, in order. */
  warmUps: string[];
  setDown(down: boolean): void;
}

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

export type ChatMessages = Array<{ role: string; content: string; tool_name?: string }>;

export async function startOllamaDouble(t: Teardown, opts: { script: ScriptedReply[] | ((messages: ChatMessages) => ScriptedReply) }): Promise<OllamaDouble> {
  const requests: OllamaDouble["requests"] = [];
  const warmUps: string[] = [];
  let down = false;
  const server = createServer((req, res) => {
    let raw = "";
    req.on("data", (c: Buffer) => (raw += c.toString()));
    req.on("end", async () => {
      if (down) return res.writeHead(503).end(JSON.stringify({ error: "ollama is down" }));
      if (req.method !== "POST" || req.url !== "/api/chat") return res.writeHead(404).end("404 page not found");
      const body = JSON.parse(raw) as { model: string; messages: unknown[] };
      const line = (o: object) => res.write(`${JSON.stringify({ model: body.model, created_at: new Date().toISOString(), ...o })}\n`);
      res.writeHead(200, { "Content-Type": "application/x-ndjson" });
      if (body.messages.length === 0) {
        warmUps.push(body.model);
        line({ message: { role: "assistant", content: "" }, done_reason: "load", done: true });
        return res.end();
      }
      const reply = typeof opts.script === "function" ? opts.script(body.messages as ChatMessages) : (opts.script[requests.length] ?? { text: "I have nothing more to say." });
      requests.push(body as Record<string, unknown>);
      let closed = false;
      res.on("close", () => (closed = true));
      await sleep(reply.firstTokenDelayMs ?? 30);
      for (const word of (reply.text ?? "").match(/\S+\s*/g) ?? []) {
        if (closed) return;
        line({ message: { role: "assistant", content: word }, done: false });
        await sleep(reply.chunkDelayMs ?? 15);
      }
      if (reply.error) {
        res.write(`${JSON.stringify({ error: reply.error })}\n`);
        return res.end();
      }
      if (reply.toolCalls) line({ message: { role: "assistant", content: "", tool_calls: reply.toolCalls }, done: false });
      line({ message: { role: "assistant", content: "" }, done_reason: "stop", done: true, total_duration: 5e8, load_duration: 1e6, eval_count: 20, eval_duration: 4e8 });
      res.end();
    });
  });
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  t.teardown(() => new Promise<void>((done) => { server.closeAllConnections(); server.close(() => done()); }));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, requests, warmUps, setDown: (d) => (down = d) };
}
