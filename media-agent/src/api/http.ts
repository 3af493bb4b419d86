/**
 * The agent's HTTP API on loopback, for the business backend:
 *   POST /calls {to, number, profile}  → 202 {callId, status}  (business-initiated call)
 *   GET  /calls/{callId}               → the call's record
 *   GET  /calls                        → {active, calls}: calls in progress, the last 100 records
 *   DELETE /calls/{callId}             → hang up
 *   GET  /metrics                      → Prometheus text (metrics.ts)
 *   GET  /healthz                      → 200 or 503 {ok, engines, rtp}: engines reachable, RTP ports left
 *   GET  /calls, /calls/{callId} with Accept: text/html → the call viewer (viewer.html)
 *   GET  /calls/{callId}/trace         → the call's turn records (JSON)
 *   GET  /calls/{callId}/audio/{file}  → a turn's caller or agent audio (WAV) from AGENT_TRACE_DIR
 * Bad input gets 400 with the field named; nothing is half-done.
 */
import { createReadStream, readFileSync } from "node:fs";
import { stat } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { join } from "node:path";
import { z } from "zod";
import type { MediaAgent } from "../agent.js";
import { AgentRequestError } from "../calls/outbound.js";
import { registry } from "../metrics.js";
import { callFileName } from "../audio/frames.js";
import { readTraceOffLoop } from "../pipeline/turn-trace.js";

/** The call viewer (viewer.html): one static page, no build step. */
const VIEWER = readFileSync(new URL("./viewer.html", import.meta.url), "utf8");

const E164 = /^\+[1-9]\d{6,14}$/;
/** A business-scoped user id, as the routing takes it (routing/policy/numbers.ts: isBsuid). */
const BSUID = /^[A-Z]{2}\.[A-Za-z0-9]{1,253}$/;

const placeCallBody = z.object({
  to: z.string().refine((to) => E164.test(to) || BSUID.test(to), "to: expected the WhatsApp user's number as +E.164 or their business-scoped user id (e.g. US.13491208655302741918)"),
  number: z.string().regex(E164, "number: expected the business number as +E.164"),
  profile: z.string().min(1, "profile: required").optional(),
});

export function startApi(agent: MediaAgent, bind: { host: string; port: number }): Promise<Server> {
  const server = createServer((req, res) => {
    handle(agent, req, res).catch((err: unknown) => send(res, 500, { error: String((err as Error).message ?? err) }));
  });
  return new Promise((done, fail) => {
    server.once("error", fail);
    server.listen(bind.port, bind.host, () => done(server));
  });
}

async function handle(agent: MediaAgent, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? "/", "http://agent");
  const id = /^\/calls\/([^/]+)$/.exec(url.pathname)?.[1];
  if (req.method === "GET" && (url.pathname === "/calls" || id) && (req.headers.accept ?? "").includes("text/html")) {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    return void res.end(VIEWER);
  }
  const traceOf = /^\/calls\/([^/]+)\/trace$/.exec(url.pathname)?.[1];
  if (traceOf && req.method === "GET") {
    const callId = decodeURIComponent(traceOf);
    if (!agent.calls.has(callId)) return send(res, 404, { error: `no call ${callId}` });
    // Read by libuv's threads: an operator's look at a trace must not hold up the calls' frame clocks.
    return send(res, 200, await readTraceOffLoop(agent.config.AGENT_TRACE_DIR, callId));
  }
  const audio = /^\/calls\/([^/]+)\/audio\/([^/]+)$/.exec(url.pathname);
  if (audio && req.method === "GET") return sendTurnAudio(agent, res, decodeURIComponent(audio[1]), decodeURIComponent(audio[2]));
  if (url.pathname === "/calls" && req.method === "POST") {
    let body: unknown;
    try {
      body = JSON.parse(await readBody(req));
    } catch {
      return send(res, 400, { error: "body: expected JSON" });
    }
    const parsed = placeCallBody.safeParse(body);
    if (!parsed.success) return send(res, 400, { error: parsed.error.issues.map((i) => i.message).join("; ") });
    try {
      const record = await agent.placeCall({ ...parsed.data, profile: parsed.data.profile ?? agent.config.AGENT_DEFAULT_PROFILE });
      return send(res, 202, { callId: record.callId, status: record.status });
    } catch (err) {
      if (err instanceof AgentRequestError) return send(res, err.status, { error: err.message });
      throw err;
    }
  }
  if (url.pathname === "/calls" && req.method === "GET") return send(res, 200, { active: agent.activeCalls, calls: [...agent.calls.values()].slice(-100) });
  if (url.pathname === "/healthz" && req.method === "GET") {
    const health = await agent.health();
    return send(res, health.ok ? 200 : 503, health);
  }
  if (url.pathname === "/metrics" && req.method === "GET") {
    res.writeHead(200, { "content-type": registry.contentType });
    return void res.end(await registry.metrics());
  }
  if (id && req.method === "GET") {
    const record = agent.calls.get(decodeURIComponent(id));
    return record ? send(res, 200, record) : send(res, 404, { error: `no call ${decodeURIComponent(id)}` });
  }
  if (id && req.method === "DELETE") {
    const ended = await agent.hangUp(decodeURIComponent(id), "hung up through the API");
    return ended ? send(res, 200, { callId: decodeURIComponent(id), status: "ending" }) : send(res, 404, { error: `no live call ${decodeURIComponent(id)}` });
  }
  send(res, 404, { error: `no such resource: ${req.method} ${url.pathname}` });
}

/** A turn's caller (or agent) audio from the trace directory; only the call's own turn files (no paths). */
async function sendTurnAudio(agent: MediaAgent, res: ServerResponse, callId: string, file: string): Promise<void> {
  const prefix = `${callFileName(callId)}-turn-`;
  const own = file.startsWith(prefix) && /^\d+(-agent)?\.wav$/.test(file.slice(prefix.length));
  if (!agent.calls.has(callId) || !own) return send(res, 404, { error: `no audio ${file} for call ${callId}` });
  const path = join(agent.config.AGENT_TRACE_DIR, file);
  const size = await stat(path).then(
    (s) => s.size,
    () => null,
  );
  if (size === null) return send(res, 404, { error: `no audio ${file} for call ${callId}` });
  res.writeHead(200, { "content-type": "audio/wav", "content-length": size });
  createReadStream(path).pipe(res);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((done, fail) => {
    let text = "";
    req.setEncoding("utf8");
    req.on("data", (chunk: string) => {
      text += chunk;
      if (text.length > 65536) req.destroy(new Error("body too large"));
    });
    req.on("end", () => done(text));
    req.on("error", fail);
  });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "Content-Type": "application/json" });
  res.end(JSON.stringify(body));
}
