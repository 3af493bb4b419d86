/**
 * The engine clients against doubles that speak the engines' protocols: speech-to-text
 * (OpenAI-compatible multipart, verbose_json) and Ollama's streaming /api/chat.
 */
import t from "tap";
import type { Socket } from "node:net";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { EspeakTts } from "../../media-agent/src/pipeline/tts.js";
import { transcribe, SttError, type SttConfig } from "../../media-agent/src/pipeline/stt-client.js";
import { writeWav } from "../../media-agent/src/audio/wav.js";
import { chatStream, warmUp, LlmError, type ChatPart, type LlmConfig } from "../../media-agent/src/pipeline/llm-client.js";
import { startSttDouble } from "../../doubles/stt-double.js";
import { startOllamaDouble } from "../../doubles/ollama-double.js";
import type { Teardown } from "../../build/teardown.js";

const never = new AbortController().signal;
const speech = async (text: string) => (await new EspeakTts({ voice: "en-us", speed: 165 }).synthesize(text, never)).samples;

function sttConfig(baseUrl: string, timeoutMs = 3000): SttConfig {
  return { baseUrl, model: "Systran/faster-whisper-small", language: "de", timeoutMs };
}

function llmConfig(baseUrl: string, timeoutMs = 2000): LlmConfig {
  return { baseUrl, model: "llama3.2:3b", keepAlive: -1, temperature: 0.3, numPredict: 120, timeoutMs };
}

async function collect(stream: AsyncGenerator<ChatPart>): Promise<ChatPart[]> {
  const parts: ChatPart[] = [];
  for await (const part of stream) parts.push(part);
  return parts;
}

/** A server answering with `handle`: for what the doubles do not script. */
async function server(t: Teardown, handle: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const http = createServer(handle);
  await new Promise<void>((done) => http.listen(0, "127.0.0.1", done));
  t.teardown(() => new Promise<void>((done) => { http.closeAllConnections(); http.close(() => done()); }));
  return `http://127.0.0.1:${(http.address() as { port: number }).port}`;
}

/** A server that accepts and never answers: for timeouts. */
async function silentServer(t: Teardown): Promise<string> {
  const server = createServer(() => undefined);
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  t.teardown(() => new Promise<void>((done) => { server.closeAllConnections(); server.close(() => done()); }));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

t.test("STT: the turn goes as a WAV with model, language and verbose_json; segments come back", async (t) => {
  const question = await speech("What is the weather in Berlin?");
  const stt = await startSttDouble(t, { phrases: [{ text: " What is the weather in Berlin?", samples16k: question, segment: { avg_logprob: -0.31, no_speech_prob: 0.02 } }] });
  const result = await transcribe(writeWav(question, 16000), sttConfig(stt.url), never);
  t.equal(result.text, " What is the weather in Berlin?");
  t.match(result.segments, [{ text: " What is the weather in Berlin?", avg_logprob: -0.31, no_speech_prob: 0.02, compression_ratio: 1.2 }]);
  t.match(stt.requests, [{ model: "Systran/faster-whisper-small", language: "de", responseFormat: "verbose_json", matched: " What is the weather in Berlin?" }]);
  t.ok(result.requestMs >= 0);
});

t.test("STT: a down server, a timeout and an abort each fail clearly", async (t) => {
  const stt = await startSttDouble(t, { phrases: [] });
  stt.setDown(true);
  const audio = writeWav(new Int16Array(16000), 16000);
  await t.rejects(transcribe(audio, sttConfig(stt.url), never), { name: "SttError", message: /answered 503: .*model not loaded/ });
  const silent = await silentServer(t);
  await t.rejects(transcribe(audio, sttConfig(silent, 300), never), { name: "SttError", message: /no answer within 300 ms/ });
  await t.rejects(transcribe(audio, sttConfig("http://127.0.0.1:1"), never), SttError, "connection refused is an SttError");
  const abort = new AbortController();
  const pending = transcribe(audio, sttConfig(silent, 5000), abort.signal);
  abort.abort();
  await t.rejects(pending, { name: "AbortError" }, "an abort is not reported as an engine failure");
});

t.test("STT: a kept connection that the server drops as it is reused is asked again on a new one, once; a fresh connection dropped is an error", async (t) => {
  const perSocket = new Map<Socket, number>();
  let dropFresh = false;
  const server = createServer((req, res) => {
    const n = (perSocket.get(req.socket) ?? 0) + 1;
    perSocket.set(req.socket, n);
    req.resume();
    req.on("end", () => {
      // The keep-alive race: the server closes the connection as the next request comes in on it.
      if (n > 1 || dropFresh) return req.socket.destroy();
      res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify({ text: " Hello.", language: "en", duration: 1, segments: [] }));
    });
  });
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  t.teardown(() => new Promise<void>((done) => (server.closeAllConnections(), server.close(() => done()))));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const audio = writeWav(new Int16Array(16000), 16000);
  t.equal((await transcribe(audio, sttConfig(url), never)).text, " Hello.");
  t.equal((await transcribe(audio, sttConfig(url), never)).text, " Hello.", "the second turn's request, dropped on the kept connection, answered on a new one");
  t.same([...perSocket.values()], [2, 1], "two connections: the kept one got the second request and dropped it");
  dropFresh = true;
  await t.rejects(transcribe(audio, sttConfig(url), never), { name: "SttError", message: /socket hang up/ });
});

t.test("LLM: text streams in parts, the request has Ollama's fields, the done line's timings are read", async (t) => {
  const ollama = await startOllamaDouble(t, { script: [{ text: "It is sunny. Fourteen degrees." }] });
  const tools = [{ type: "function" as const, function: { name: "get_time", description: "time", parameters: { type: "object", properties: {} } } }];
  const parts = await collect(chatStream([{ role: "user", content: "Hi" }], tools, llmConfig(ollama.url), never));
  const text = parts.filter((p) => p.type === "text").map((p) => (p as { text: string }).text);
  t.ok(text.length > 1, "several text parts, as streamed");
  t.equal(text.join(""), "It is sunny. Fourteen degrees.");
  t.match(parts[parts.length - 1], { type: "done", stats: { totalMs: 500, evalCount: 20 }, cut: false });
  t.match(ollama.requests[0], { model: "llama3.2:3b", stream: true, think: false, keep_alive: -1, options: { temperature: 0.3, num_predict: 120 }, tools, messages: [{ role: "user", content: "Hi" }] });
});

t.test("LLM: a tool call arrives with its arguments as an object; no tools offered means no tools field", async (t) => {
  const call = { function: { name: "get_weather", arguments: { city: "Düsseldorf" } } };
  const ollama = await startOllamaDouble(t, { script: [{ toolCalls: [call] }] });
  const parts = await collect(chatStream([{ role: "user", content: "Weather?" }], [], llmConfig(ollama.url), never));
  t.same(parts.filter((p) => p.type === "tool_calls"), [{ type: "tool_calls", calls: [call] }]);
  t.notOk("tools" in ollama.requests[0], "no tools field when none are offered");
});

t.test("LLM: down, no first token in time, a mid-stream error line and an abort", async (t) => {
  const down = await startOllamaDouble(t, { script: [] });
  down.setDown(true);
  await t.rejects(collect(chatStream([{ role: "user", content: "x" }], [], llmConfig(down.url), never)), { name: "LlmError", message: /answered 503/ });

  const slow = await startOllamaDouble(t, { script: [{ text: "late", firstTokenDelayMs: 1500 }] });
  await t.rejects(collect(chatStream([{ role: "user", content: "x" }], [], llmConfig(slow.url, 300), never)), { name: "LlmError", message: /within 300 ms/ });

  const broken = await startOllamaDouble(t, { script: [{ text: "Half a", error: "an error was encountered while running the model: CUDA error" }] });
  const seen: string[] = [];
  await t.rejects(
    (async () => {
      for await (const part of chatStream([{ role: "user", content: "x" }], [], llmConfig(broken.url), never)) if (part.type === "text") seen.push(part.text);
    })(),
    { name: "LlmError", message: /CUDA error/ },
  );
  t.equal(seen.join(""), "Half a", "the text before the error line was delivered");

  const long = await startOllamaDouble(t, { script: [{ text: "one two three four five six seven eight nine ten", chunkDelayMs: 100 }] });
  const abort = new AbortController();
  const got: string[] = [];
  await t.rejects(
    (async () => {
      for await (const part of chatStream([{ role: "user", content: "x" }], [], llmConfig(long.url), abort.signal)) {
        if (part.type === "text") got.push(part.text);
        if (got.length === 2) abort.abort();
      }
    })(),
    { name: "AbortError" },
  );
  t.equal(got.length, 2, "nothing is read after the abort");
});

t.test("LLM: replies share a kept connection; an abort before or during the answer closes it at the server; a kept connection dropped as it is reused is asked again", async (t) => {
  const sockets = new Set<Socket>();
  const closed: string[] = [];
  let requests = 0;
  let mode: "answer" | "hold" | "part-then-hold" | "drop-reused" = "answer";
  const part = (content: string, done: boolean) => `${JSON.stringify({ model: "m", message: { role: "assistant", content }, done, ...(done ? { done_reason: "stop" } : {}) })}\n`;
  const url = await server(t, (req, res) => {
    const reused = sockets.has(req.socket);
    sockets.add(req.socket);
    req.resume();
    req.on("end", () => {
      requests++;
      res.on("close", () => closed.push(res.writableEnded ? "answered" : "cut"));
      if (mode === "drop-reused" && reused) return req.socket.destroy();
      if (mode === "hold") return;
      res.writeHead(200, { "Content-Type": "application/x-ndjson" });
      if (mode === "part-then-hold") return void res.write(part("It is ", false));
      res.end(part("Hello.", false) + part("", true));
    });
  });
  const reply = (signal: AbortSignal = never) => collect(chatStream([{ role: "user", content: "x" }], [], llmConfig(url), signal));
  t.match(await reply(), [{ type: "text", text: "Hello." }, { type: "done" }]);
  t.match(await reply(), [{ type: "text", text: "Hello." }, { type: "done" }]);
  t.equal(sockets.size, 1, "the second reply came on the first reply's connection");

  const until = async (what: () => boolean) => {
    for (let i = 0; i < 200 && !what(); i++) await new Promise((r) => setTimeout(r, 10));
  };
  for (const m of ["hold", "part-then-hold"] as const) {
    mode = m;
    const abort = new AbortController();
    const asked = requests;
    const before = closed.length;
    const pending = reply(abort.signal);
    await until(() => requests > asked);
    abort.abort();
    await t.rejects(pending, { name: "AbortError" }, `${m}: the abort ends the reply`);
    await until(() => closed.length > before);
    t.same(closed.slice(before), ["cut"], `${m}: the server sees its answer cut off`);
  }

  mode = "answer";
  t.match(await reply(), [{ type: "text", text: "Hello." }, { type: "done" }], "a fresh connection after the aborted ones");
  const connections = sockets.size;
  mode = "drop-reused";
  t.match(await reply(), [{ type: "text", text: "Hello." }, { type: "done" }], "dropped on the kept connection, answered on a new one");
  t.equal(sockets.size, connections + 1);
});

t.test("LLM: a first token later than the kept connections' 4 s idle limit still arrives (a model being loaded)", async (t) => {
  const ollama = await startOllamaDouble(t, { script: [{ text: "Loaded now.", firstTokenDelayMs: 4600 }] });
  const parts = await collect(chatStream([{ role: "user", content: "x" }], [], llmConfig(ollama.url, 8000), never));
  t.equal(parts.filter((p) => p.type === "text").map((p) => (p as { text: string }).text).join(""), "Loaded now.");
  t.equal(parts[parts.length - 1].type, "done");
});

t.test("LLM: a reply cut at num_predict (done_reason \"length\") is marked cut on its done part", async (t) => {
  const ollama = await startOllamaDouble(t, { script: [{ text: "It is sunny. Tomorrow it will be", cutAtNumPredict: true }] });
  const parts = await collect(chatStream([{ role: "user", content: "Weather?" }], [], llmConfig(ollama.url), never));
  t.equal(parts.filter((p) => p.type === "text").map((p) => (p as { text: string }).text).join(""), "It is sunny. Tomorrow it will be", "the text as far as it went");
  t.match(parts[parts.length - 1], { type: "done", cut: true, stats: { evalCount: 20 } });
});

t.test("LLM: Ollama's messages come whole: a mid-stream error line, an HTTP error; a stream without done is an LlmError", async (t) => {
  // Ollama's runner errors can be long (a CUDA trace); the old 200/300-character cuts lost their end.
  const long = `an error was encountered while running the model: CUDA error: out of memory ${"x".repeat(600)} (the end)`;
  const failure = (url: string) => collect(chatStream([{ role: "user", content: "x" }], [], llmConfig(url), never)).then(() => null, (e: Error) => e);

  const broken = await startOllamaDouble(t, { script: [{ text: "Half a", error: long }] });
  const midStream = await failure(broken.url);
  t.ok(midStream instanceof LlmError);
  t.equal(midStream?.message, `LLM at ${broken.url}/api/chat: ${long}`, "the error line's message, whole");

  const http = await server(t, (_req, res) => res.writeHead(500, { "Content-Type": "application/json; charset=utf-8" }).end(JSON.stringify({ error: long })));
  const answered = await failure(http);
  t.ok(answered instanceof LlmError);
  t.equal(answered?.message, `LLM at ${http}/api/chat answered 500: ${long}`, "the HTTP error's message, whole");

  const huge = await startOllamaDouble(t, { script: [{ error: "y".repeat(5000) }] });
  t.match(await failure(huge.url), { name: "LlmError", message: /: y{2000}… \(5000 characters\)$/ }, "only beyond 2000 characters is a message cut, and it says so");

  const noDone = await server(t, (_req, res) => {
    res.writeHead(200, { "Content-Type": "application/x-ndjson" });
    res.write(`${JSON.stringify({ model: "m", message: { role: "assistant", content: "It is " }, done: false })}\n`);
    res.end(`${JSON.stringify({ model: "m", message: { role: "assistant", content: "sunny" }, done: false })}\n`);
  });
  const seen: string[] = [];
  const ended = await (async () => {
    for await (const part of chatStream([{ role: "user", content: "x" }], [], llmConfig(noDone), never)) if (part.type === "text") seen.push(part.text);
  })().then(() => null, (e: Error) => e);
  t.same(seen, ["It is ", "sunny"], "the text before the end was delivered");
  t.match(ended, { name: "LlmError", message: /: Did not receive done or success response in stream\.$/ }, "a stream that ends without done is not a complete reply");
});

t.test("LLM: warm-up loads the model with empty messages and keep_alive", async (t) => {
  const ollama = await startOllamaDouble(t, { script: [] });
  await warmUp(llmConfig(ollama.url));
  t.same(ollama.warmUps, ["llama3.2:3b"]);
  t.same(ollama.requests, [], "a warm-up is not a chat turn");
  await t.rejects(warmUp(llmConfig("http://127.0.0.1:1")), Error);
  ollama.setDown(true);
  await t.rejects(warmUp(llmConfig(ollama.url)), LlmError);
});
