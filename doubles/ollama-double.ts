/**
 * An Ollama-compatible server speaking the streaming NDJSON protocol of `/api/chat`, scripted: a
 * list (one reply per request, in order: tests) or a function of the conversation (the demo's
 * rule-based stand-in). Records every request body for assertions. Not a language model.
 *
 * As strict as Ollama: `keep_alive` strings must be Go durations (400 otherwise); with `models`
 * given, only those are pulled (404 for others) and one without the "tools" capability refuses
 * requests that offer tools (400); `/api/version`, `/api/show` (capabilities) and `/api/tags`
 * answer as Ollama's do. `version` selects how older servers stream while tools are offered:
 * before 0.5 tool calls arrive as plain text content, 0.5–0.7 hold every word back until done.
 */
import { createServer } from "node:http";
import type { Teardown } from "../build/teardown.js";
import { untilDue } from "./engine-delay.js";
import type { ToolCall } from "../media-agent/src/pipeline/llm-client.js";

export interface ScriptedReply {
  text?: string;
  toolCalls?: ToolCall[];
  /** The first token's time after the request (ms); each later word follows chunkDelayMs after the one before, on a schedule counted from the request, so timer lateness does not add up. */
  firstTokenDelayMs?: number;
  chunkDelayMs?: number;
  /** Ollama's mid-stream failure: an `{"error": …}` line after the text, then the stream ends. */
  error?: string;
  /** The text ran into num_predict: the final line says `done_reason: "length"`, not "stop". */
  cutAtNumPredict?: boolean;
}

export interface OllamaDoubleOptions {
  script: ScriptedReply[] | ((messages: ChatMessages) => ScriptedReply);
  /** What /api/version says, and how the server streams (default: DEFAULT_OLLAMA_VERSION). */
  version?: string;
  /** The pulled models and whether each supports tools; unset: any model, with tools. */
  models?: Record<string, { tools: boolean }>;
}

export const DEFAULT_OLLAMA_VERSION = "0.12.6";

/** Go's time.ParseDuration, as Ollama applies it to a keep_alive string. */
const GO_DURATION = /^[-+]?(0|((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+)$/;

function olderThan(version: string, major: number, minor: number): boolean {
  const [a, b] = version.split(".").map((p) => parseInt(p, 10));
  return a < major || (a === major && b < minor);
}

export interface OllamaDouble {
  url: string;
  /** Chat requests (warm-ups with empty messages are not listed). */
  requests: Array<Record<string, unknown>>;
  /** Warm-up requests (empty messages): the model names loaded, in order. */
  warmUps: string[];
  setDown(down: boolean): void;
}

export type ChatMessages = Array<{ role: string; content: string; tool_name?: string }>;

export async function startOllamaDouble(t: Teardown, opts: OllamaDoubleOptions): Promise<OllamaDouble> {
  const requests: OllamaDouble["requests"] = [];
  const warmUps: string[] = [];
  const version = opts.version ?? DEFAULT_OLLAMA_VERSION;
  let down = false;
  const json = (res: import("node:http").ServerResponse, status: number, body: object) =>
    res.writeHead(status, { "Content-Type": "application/json; charset=utf-8" }).end(JSON.stringify(body));
  const notPulled = (model: string) => ({ error: `model '${model}' not found` });
  const pulled = (model: string) => !opts.models || model in opts.models;
  const server = createServer((req, res) => {
    let raw = "";
    req.on("data", (c: Buffer) => (raw += c.toString()));
    req.on("end", async () => {
      const arrivedAt = performance.now();
      if (down) return res.writeHead(503).end(JSON.stringify({ error: "ollama is down" }));
      if (req.method === "GET" && req.url === "/api/version") return json(res, 200, { version });
      if (req.method === "GET" && req.url === "/api/tags") {
        return json(res, 200, { models: Object.keys(opts.models ?? {}).map((name) => ({ name, model: name, details: { family: "llama" } })) });
      }
      if (req.method === "POST" && req.url === "/api/show") {
        const { model } = JSON.parse(raw || "{}") as { model?: string };
        if (!model || !pulled(model)) return json(res, 404, notPulled(String(model)));
        const tools = opts.models ? opts.models[model].tools : true;
        // Ollama lists capabilities from 0.6.4 on.
        return json(res, 200, { modelfile: "", details: { family: "llama" }, ...(olderThan(version, 0, 6) ? {} : { capabilities: tools ? ["completion", "tools"] : ["completion"] }) });
      }
      if (req.method !== "POST" || req.url !== "/api/chat") return res.writeHead(404).end("404 page not found");
      const body = JSON.parse(raw) as { model: string; messages: unknown[]; tools?: unknown[]; keep_alive?: unknown };
      if (typeof body.keep_alive === "string" && !GO_DURATION.test(body.keep_alive)) {
        return json(res, 400, { error: `time: ${/\d$/.test(body.keep_alive) ? "missing unit in" : "invalid"} duration "${body.keep_alive}"` });
      }
      if (!pulled(body.model)) return json(res, 404, notPulled(body.model));
      if (body.tools?.length && opts.models && !opts.models[body.model].tools) {
        return json(res, 400, { error: `registry.ollama.ai/library/${body.model} does not support tools` });
      }
      const line = (o: object) => res.write(`${JSON.stringify({ model: body.model, created_at: new Date().toISOString(), ...o })}\n`);
      const streamed = (body as { stream?: boolean }).stream !== false;
      if (streamed) res.writeHead(200, { "Content-Type": "application/x-ndjson" });
      else res.setHeader("Content-Type", "application/x-ndjson"); // a warm-up's one line; a chat's JSON object below
      if (body.messages.length === 0) {
        warmUps.push(body.model);
        line({ message: { role: "assistant", content: "" }, done_reason: "load", done: true });
        return res.end();
      }
      const reply = typeof opts.script === "function" ? opts.script(body.messages as ChatMessages) : (opts.script[requests.length] ?? { text: "I have nothing more to say." });
      requests.push(body as Record<string, unknown>);
      if (!streamed) {
        // Not streamed: the whole answer as one object once it is complete.
        await untilDue(arrivedAt, (reply.firstTokenDelayMs ?? 30) + ((reply.text ?? "").match(/\S+\s*/g)?.length ?? 0) * (reply.chunkDelayMs ?? 15));
        const message = { role: "assistant", content: reply.text ?? "", ...(reply.toolCalls ? { tool_calls: reply.toolCalls } : {}) };
        return json(res, 200, { model: body.model, created_at: new Date().toISOString(), message, done_reason: reply.cutAtNumPredict ? "length" : "stop", done: true, total_duration: 5e8, load_duration: 1e6, eval_count: 20, eval_duration: 4e8 });
      }
      let closed = false;
      res.on("close", () => (closed = true));
      let due = reply.firstTokenDelayMs ?? 30;
      await untilDue(arrivedAt, due);
      const offered = Boolean(body.tools?.length);
      // 0.5–0.7 with tools offered: not a word until the answer is complete.
      const holdBack = offered && !olderThan(version, 0, 5) && olderThan(version, 0, 8);
      let held = "";
      for (const word of (reply.text ?? "").match(/\S+\s*/g) ?? []) {
        if (closed) return;
        if (holdBack) held += word;
        else line({ message: { role: "assistant", content: word }, done: false });
        due += reply.chunkDelayMs ?? 15;
        await untilDue(arrivedAt, due);
      }
      if (held) line({ message: { role: "assistant", content: held }, done: false });
      if (reply.toolCalls && offered && olderThan(version, 0, 5)) {
        // Before 0.5 a tool call came back as the model's text.
        line({ message: { role: "assistant", content: JSON.stringify({ name: reply.toolCalls[0].function.name, parameters: reply.toolCalls[0].function.arguments }) }, done: false });
        line({ message: { role: "assistant", content: "" }, done_reason: reply.cutAtNumPredict ? "length" : "stop", done: true, total_duration: 5e8, load_duration: 1e6, eval_count: 20, eval_duration: 4e8 });
        return res.end();
      }
      if (reply.error) {
        res.write(`${JSON.stringify({ error: reply.error })}\n`);
        return res.end();
      }
      if (reply.toolCalls) line({ message: { role: "assistant", content: "", tool_calls: reply.toolCalls }, done: false });
      line({ message: { role: "assistant", content: "" }, done_reason: reply.cutAtNumPredict ? "length" : "stop", done: true, total_duration: 5e8, load_duration: 1e6, eval_count: 20, eval_duration: 4e8 });
      res.end();
    });
  });
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  t.teardown(() => new Promise<void>((done) => { server.closeAllConnections(); server.close(() => done()); }));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, requests, warmUps, setDown: (d) => (down = d) };
}
