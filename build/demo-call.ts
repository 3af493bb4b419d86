/**
 * The demo call of `npm start`: a stand-in for Meta's edge (the test peer, a native Kamailio on
 * 127.0.0.2, clearly not Meta) and baresip as a WhatsApp user call the stack over TLS with SRTP
 * and talk to the voice agent: a question about the weather, then goodbye. The agent answers
 * with the configured engines, or with the demo stand-ins (build/demo-engines.ts). The
 * conversation is printed from the agent's turn trace; baresip's recording of what the caller
 * heard and the trace (with each turn's caller audio) stay on disk.
 */
import { mkdirSync, rmSync } from "node:fs";
import { join, relative } from "node:path";
import type { CallRecord, MediaAgent } from "../media-agent/src/agent.js";
import { readTrace, traceFileOf, type TraceRecord } from "../media-agent/src/pipeline/turn-trace.js";
import { startBaresip } from "./baresip.js";
import { callerTrack } from "./speech.js";
import { createTestCa, issueCert } from "./test-ca.js";
import { REPO_ROOT } from "./bundle.js";
import { startKamailio, type KamailioProcess } from "./kamailio.js";
import { freePort, freePortRange } from "./ports.js";

export const DEMO_EDGE_IP = "127.0.0.2";
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
  agent: MediaAgent;
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
    const ca = createTestCa(dir);
    const edgeCert = issueCert(ca, "demo-edge", ["wa.meta.vc", DEMO_EDGE_IP]);
    const userCert = issueCert(ca, "demo-user", ["127.0.0.1"]);
    const edgeUdp = await freePort(DEMO_EDGE_IP);
    const edgeTls = await freePort(DEMO_EDGE_IP);
    const edgeUserTls = await freePort(DEMO_EDGE_IP);
    // baresip listens for SIP on the port and for SIP over TLS on the port + 1.
    const userSip = (await freePortRange(2)).min;
    const edge: KamailioProcess = await startKamailio({
      runDir: join(dir, "edge"),
      cfg: join(REPO_ROOT, "test/meta-edge/meta-edge.cfg"),
      probe: { host: DEMO_EDGE_IP, port: edgeUdp },
      env: {
        EDGE_IP: DEMO_EDGE_IP,
        EDGE_UDP_PORT: String(edgeUdp),
        EDGE_TLS_PORT: String(edgeTls),
        EDGE_USER_TLS_PORT: String(edgeUserTls),
        OUTSIDER_IP: DEMO_EDGE_IP,
        OUTSIDER_TLS_PORT: String(await freePort(DEMO_EDGE_IP)),
        EDGE_TLS_SOCKET: `tls:${DEMO_EDGE_IP}:${edgeTls}`,
        OUTSIDER_TLS_SOCKET: `tls:${DEMO_EDGE_IP}:${edgeTls}`,
        EDGE_TLS_CERT: edgeCert.cert,
        EDGE_TLS_KEY: edgeCert.key,
        BUSINESS_URI: `sip:${p.ourTls.host}:${p.ourTls.port};transport=tls`,
        WA_USER_URI: `sip:127.0.0.1:${userSip + 1};transport=tls`,
        EDGE_DIGEST_ALGORITHM: "MD5",
        EDGE_DIGEST_USER: DEMO_BUSINESS.slice(1),
        EDGE_DIGEST_PASSWORD: "demo",
        EDGE_BUSINESS_DOMAIN: "sip.example.com",
        EDGE_UAC_CREDENTIAL: `${DEMO_BUSINESS.slice(1)}:sip.example.com:demo`,
      },
    });
    cleanups.push(() => edge.stop());
    p.log(`demo: stand-in Meta edge (test peer, not Meta) on tls:${DEMO_EDGE_IP}:${edgeUserTls}`);

    const baresip = await startBaresip(teardown, {
      dir: join(dir, "baresip"),
      host: "127.0.0.1",
      sipPort: userSip,
      rtpPorts: await freePortRange(10),
      user: DEMO_USER,
      sourceWav: p.callerWav,
      role: { kind: "wa-user", outbound: { host: DEMO_EDGE_IP, port: edgeUserTls }, cert: userCert.cert, key: userCert.key, caFile: ca.cert },
      codecs: ["opus/48000/2"],
    });
    const answered = new Promise<string>((done) => p.agent.once("answered", (r) => done(r.callId)));
    const ended = new Promise<CallRecord>((done) => p.agent.once("ended", done));
    p.log(`demo: baresip (${DEMO_USER}, TLS + SRTP) calls ${DEMO_BUSINESS}`);
    baresip.dial(`sip:${DEMO_BUSINESS}@${DEMO_EDGE_IP}`);
    await baresip.waitForEvent("CALL_ESTABLISHED", 15_000);
    const callId = await answered;
    p.log("demo: call answered; the caller asks about the weather, then says goodbye");
    // The agent ends the call after its goodbye; baresip hangs up when its track ends, or after 45 s.
    const timer = setTimeout(() => baresip.hangup(), 45_000);
    const record = await ended;
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
