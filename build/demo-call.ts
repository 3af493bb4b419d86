/**
 * The demo call of `npm start`: a stand-in for Meta's edge (the test peer, a native Kamailio on
 * 127.0.0.2, clearly not Meta) and baresip as a WhatsApp user call the stack over TLS with SRTP.
 * The agent's demo profile plays a prompt and records the caller; baresip records what it heard.
 * Both recordings stay on disk, and how well each matches what was sent is printed.
 */
import { mkdirSync, rmSync } from "node:fs";
import { join, relative } from "node:path";
import type { MediaAgent } from "../media-agent/src/agent.js";
import { bestCorrelation } from "../media-agent/src/audio/compare.js";
import { recordingPaths } from "../media-agent/src/profiles/play-record.js";
import { startBaresip } from "./baresip.js";
import { speakForBaresip, wav16k } from "./speech.js";
import { createTestCa, issueCert } from "./test-ca.js";
import { REPO_ROOT } from "./bundle.js";
import { sleep, startKamailio, type KamailioProcess } from "./kamailio.js";
import { freePort, freePortRange } from "./ports.js";

export const DEMO_EDGE_IP = "127.0.0.2";
export const DEMO_BUSINESS = "+15550001111";
const DEMO_USER = "+15551234567";
const DEMO_CALLER_TEXT = "Hello, I would like to know when your shop opens tomorrow morning.";

export interface DemoResult {
  callId: string;
  callerRecording: string;
  baresipRecording: string;
  callerScore: number;
  agentScore: number;
}

/** Runs one call from baresip through the demo edge into the stack; cleans up its processes. */
export async function runDemoCall(p: {
  runDir: string;
  agent: MediaAgent;
  ourTls: { host: string; port: number };
  agentPrompt: string;
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

    const callerWav = speakForBaresip(DEMO_CALLER_TEXT, join(dir, "caller.wav"), "opus/48000/2");
    const baresip = await startBaresip(teardown, {
      dir: join(dir, "baresip"),
      host: "127.0.0.1",
      sipPort: userSip,
      rtpPorts: await freePortRange(10),
      user: DEMO_USER,
      outbound: { host: DEMO_EDGE_IP, port: edgeUserTls },
      sourceWav: callerWav,
      cert: userCert.cert,
      key: userCert.key,
      caFile: ca.cert,
      codecs: ["opus/48000/2"],
    });
    const answered = new Promise<string>((done) => p.agent.once("answered", (r) => done(r.callId)));
    const ended = new Promise<void>((done) => p.agent.once("ended", () => done()));
    p.log(`demo: baresip (${DEMO_USER}, TLS + SRTP) calls ${DEMO_BUSINESS}`);
    baresip.dial(`sip:${DEMO_BUSINESS}@${DEMO_EDGE_IP}`);
    await baresip.waitForEvent("CALL_ESTABLISHED", 15_000);
    const callId = await answered;
    p.log("demo: call answered; both sides talk for 7 s");
    await sleep(7000);
    baresip.hangup();
    await ended;
    const files = recordingPaths(p.agent.config.AGENT_RECORD_DIR, callId);
    const baresipRecording = baresip.dumps().dec[0];
    const callerScore = bestCorrelation(wav16k(callerWav), wav16k(files.caller), 16000).score;
    const agentScore = bestCorrelation(wav16k(p.agentPrompt), wav16k(baresipRecording), 16000).score;
    p.log(
      [
        `demo: call ${callId} ended`,
        `  the agent recorded the caller:  ${relative(process.cwd(), files.caller)} (match with what baresip sent: ${callerScore.toFixed(2)})`,
        `  baresip recorded the agent:     ${relative(process.cwd(), baresipRecording)} (match with the agent's prompt: ${agentScore.toFixed(2)})`,
      ].join("\n"),
    );
    return { callId, callerRecording: files.caller, baresipRecording, callerScore, agentScore };
  } finally {
    for (const fn of cleanups.reverse()) await fn();
  }
}
