/**
 * The demo call of `npm start`: a stand-in for Meta's edge (the test peer, a native Kamailio on
 * 127.0.0.2, clearly not Meta) and baresip as a WhatsApp user call the stack over TLS with SRTP
 * and talk to the voice agent: a question about the weather, then goodbye. The agent answers
 * with the configured engines, or with the demo stand-ins (stack/demo-engines.ts). The
 * conversation is printed from the agent's turn trace; baresip's recording of what the caller
 * heard and the trace (with each turn's caller audio) stay on disk.
 */
import { mkdirSync, rmSync } from "node:fs";
import { join, relative } from "node:path";
import type { CallRecord } from "../media-agent/src/calls/call.js";
import { readTrace, traceFileOf, type TraceRecord } from "../media-agent/src/pipeline/turn-trace.js";
import { startBaresip } from "../build/baresip.js";
import { callerTrack } from "../build/speech.js";
import { issueCert } from "../build/test-ca.js";
import { freePortRange } from "../build/ports.js";
import { sleep } from "../build/kamailio.js";
import { STAND_IN_EDGE_IP, startStandInEdge } from "./stand-in-edge.js";

export const DEMO_EDGE_IP = STAND_IN_EDGE_IP;
export const DEMO_BUSINESS = "+15550001111";
const DEMO_USER = "+15551234567";
export const DEMO_CALLER_LINES = ["What is the weather in Dusseldorf?", "Thank you, that is all. Goodbye!"];

/** The demo caller's microphone: quiet through the greeting, the question, quiet through the answer, goodbye. */
export function demoCallerTrack(dir: string): ReturnType<typeof callerTrack> {
  const [question, goodbye] = DEMO_CALLER_LINES;
  return callerTrack(dir, [{ silenceS: 9 }, question, { silenceS: 12 }, goodbye, { silenceS: 10 }]);
}

export interface DemoResult {
  callId: string;
  trace: TraceRecord[];
  /** What the caller heard. */
  baresipRecording: string;
}

/** Runs one call from baresip through the demo edge into the stack; cleans up its processes. */
export async function runDemoCall(p: {
  runDir: string;
  /** The media agent's call API (GET /calls, GET /calls/{id}). */
  agentApi: { host: string; port: number };
  ourTls: { host: string; port: number };
  callerWav: string;
  traceDir: string;
  log: (line: string) => void;
}): Promise<DemoResult> {
  const dir = join(p.runDir, "demo");
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const cleanups: Array<() => unknown> = [];
  const teardown = { teardown: (fn: () => unknown) => cleanups.push(fn) };
  try {
    // baresip listens for SIP on the port and for SIP over TLS on the port + 1.
    const userSip = (await freePortRange(2)).min;
    const { edge, ca, userTls } = await startStandInEdge({
      dir,
      ourTls: p.ourTls,
      waUserUri: `sip:127.0.0.1:${userSip + 1};transport=tls`,
      business: DEMO_BUSINESS,
    });
    cleanups.push(() => edge.stop());
    const userCert = issueCert(ca, "demo-user", ["127.0.0.1"]);
    p.log(`demo: stand-in Meta edge (test peer, not Meta) on tls:${userTls.host}:${userTls.port}`);

    const baresip = await startBaresip(teardown, {
      dir: join(dir, "baresip"),
      host: "127.0.0.1",
      sipPort: userSip,
      rtpPorts: await freePortRange(10),
      user: DEMO_USER,
      sourceWav: p.callerWav,
      role: { kind: "wa-user", outbound: userTls, cert: userCert.cert, key: userCert.key, caFile: ca.cert },
      codecs: ["opus/48000/2"],
    });
    const api = new CallApi(p.agentApi);
    const before = new Set((await api.calls()).map((c) => c.callId));
    p.log(`demo: baresip (${DEMO_USER}, TLS + SRTP) calls ${DEMO_BUSINESS}`);
    baresip.dial(`sip:${DEMO_BUSINESS}@${DEMO_EDGE_IP}`);
    await baresip.waitForEvent("CALL_ESTABLISHED", 15_000);
    const callId = (await api.waitFor(15_000, async () => (await api.calls()).find((c) => !before.has(c.callId) && c.answeredAt)))
      .callId;
    p.log("demo: call answered; the caller asks about the weather, then says goodbye");
    // The agent ends the call after its goodbye; baresip hangs up when its track ends, or after 45 s.
    const timer = setTimeout(() => baresip.hangup(), 45_000);
    const record = await api.waitFor(60_000, async () => {
      const r = await api.call(callId);
      return r.status === "ended" || r.status === "failed" ? r : undefined;
    });
    clearTimeout(timer);
    const how = record.endReason?.startsWith("local BYE") ? `the agent hung up: ${record.endReason.slice("local BYE: ".length)}` : "the caller hung up";
    const trace = readTrace(p.traceDir, callId);
    const baresipRecording = baresip.dumps().dec[0];
    p.log([`demo: call ${callId} ended (${how})`, ...conversation(trace)].join("\n"));
    p.log(`  turn trace:                ${relative(process.cwd(), traceFileOf(p.traceDir, callId))} (each turn's caller audio beside it)`);
    p.log(`  what the caller heard:     ${relative(process.cwd(), baresipRecording)}`);
    return { callId, trace, baresipRecording };
  } finally {
    for (const fn of cleanups.reverse()) await fn();
  }
}

/** The trace as a transcript with the figures that matter for latency. */
function conversation(trace: TraceRecord[]): string[] {
  const lines: string[] = [];
  for (const r of trace) {
    if (r.stt) {
      const dropped = r.stt.dropped.length ? ` (dropped: ${JSON.stringify(r.stt.dropped)})` : "";
      lines.push(`  caller: ${r.stt.text.trim() || "(nothing usable)"}   [STT ${r.stt.responseMs} ms, ${r.stt.verdict}]${dropped}`);
    }
    for (const tool of r.toolResults) lines.push(`    tool ${tool.name}(${JSON.stringify(tool.arguments)}) -> ${tool.content}`);
    const llm = r.llm.map((x) => x.firstTokenMs ?? "-").join(" + ");
    if (r.spoken) lines.push(`  agent:  ${r.spoken}   [${llm ? `LLM first token ${llm} ms; ` : ""}first audio ${r.firstPacketOutMs ?? "-"} ms after ${r.stt ? "the caller stopped" : "answer"}]`);
  }
  return lines;
}

/** The agent's call API, read over HTTP as the business backend would. */
class CallApi {
  constructor(private readonly api: { host: string; port: number }) {}

  private async get<T>(path: string): Promise<T> {
    const res = await fetch(`http://${this.api.host}:${this.api.port}${path}`, { signal: AbortSignal.timeout(2000) });
    if (res.status !== 200) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  }

  async calls(): Promise<CallRecord[]> {
    return (await this.get<{ calls: CallRecord[] }>("/calls")).calls;
  }

  call(callId: string): Promise<CallRecord> {
    return this.get<CallRecord>(`/calls/${encodeURIComponent(callId)}`);
  }

  /** Polls until probe() gives a value. */
  async waitFor<T>(timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await probe();
      if (value !== undefined) return value;
      if (Date.now() > deadline) throw new Error(`the agent's call API (http://${this.api.host}:${this.api.port}/calls) did not show it within ${timeoutMs} ms`);
      await sleep(200);
    }
  }
}
