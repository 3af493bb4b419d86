/**
 * The whole media path for end-to-end tests: baresip (the WhatsApp user: TLS, SRTP SDES) →
 * the Meta-edge peer → our Kamailio (real bundle, TLS) → rtpengine (userspace) → the media
 * agent, run in-process with the play-record profile so both sides' audio lands on disk.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { pino } from "pino";
import { freePort, freePortRange } from "../../build/ports.js";
import { MediaAgent, type AgentHooks } from "../../media-agent/src/agent.js";
import type { CallRecord } from "../../media-agent/src/calls/call.js";
import { parseAgentConfig } from "../../media-agent/src/config.js";
import { speak, speakForBaresip } from "../../build/speech.js";
import { startBaresip, type Baresip } from "../../build/baresip.js";
import { issueCert } from "../../build/test-ca.js";
import { BUSINESS, startInterconnect, WA_USER, type Interconnect } from "./wa-interconnect.js";
import type { Teardown } from "../../build/teardown.js";


export const CALLER_TEXT = "Hello, I would like to know when your shop in Dusseldorf opens tomorrow morning.";
export const AGENT_TEXT = "Welcome to the demo business. You are talking to the media agent on Kamailio.";

export interface MediaCallSetup {
  w: Interconnect;
  agent: MediaAgent;
  baresip: Baresip;
  recordDir: string;
  callerWav: string;
  agentWav: string;
  /** baresip's RTP port range (the external, SRTP leg ends there). */
  baresipRtp: { min: number; max: number };
  agentRtp: { min: number; max: number };
  /** Resolves with the next call record the agent ends. */
  nextEnded(): Promise<CallRecord>;
  nextAnswered(): Promise<CallRecord>;
}

export async function setUpMediaCall(
  t: Teardown,
  dir: string,
  opts: {
    baresipCodecs?: string[];
    agentCodecs?: string;
    answerMode?: "auto" | "manual";
    hooks?: AgentHooks;
    hangUpAfterPromptMs?: number;
    /** Extra AGENT_* settings. */
    agentEnv?: Record<string, string>;
    /** Extra WA_* settings for our Kamailio. */
    env?: Record<string, string>;
    mediaEncryption?: "srtp-mand" | "dtls_srtp";
    /** The edge plays Meta's media side with its own rtpengine (ICE-lite DTLS); baresip then speaks plain RTP to it. */
    metaMedia?: boolean;
    /** baresip's microphone (a WAV in its codec's rate and channels); default: CALLER_TEXT spoken. */
    callerWav?: string;
  } = {},
): Promise<MediaCallSetup> {
  mkdirSync(dir, { recursive: true });
  const baresipCodecs = opts.baresipCodecs ?? ["opus/48000/2"];
  const callerWav = opts.callerWav ?? speakForBaresip(CALLER_TEXT, join(dir, "caller.wav"), baresipCodecs[0]);
  const agentWav = speak(AGENT_TEXT, join(dir, "agent.wav"), 16000, 0);
  const recordDir = join(dir, "recordings");
  const baresipHost = "127.0.0.1";
  // baresip listens for SIP on the port and for SIP over TLS on the port + 1.
  const baresipSipPort = (await freePortRange(2, baresipHost)).min;
  const w = await startInterconnect(t, { waUserUri: `sip:${baresipHost}:${baresipSipPort + 1};transport=tls`, env: opts.env, metaMedia: opts.metaMedia });

  const agentRtp = await freePortRange(40);
  const parsed = parseAgentConfig({
    AGENT_SIP: `${w.agent.host}:${w.agent.port}`,
    AGENT_KAMAILIO: `${w.us.internal.host}:${w.us.internal.port}`,
    AGENT_RTP_PORTS: `${agentRtp.min}-${agentRtp.max}`,
    AGENT_API: `127.0.0.1:${await freePort()}`,
    AGENT_CODECS: opts.agentCodecs ?? "opus,PCMA,PCMU",
    AGENT_PROFILES: `sales=play-record:${agentWav},support=echo,default=echo`,
    AGENT_RECORD_DIR: recordDir,
    AGENT_LOG_LEVEL: "warn",
    ...(opts.hangUpAfterPromptMs ? { AGENT_HANGUP_AFTER_PROMPT_MS: String(opts.hangUpAfterPromptMs) } : {}),
    ...opts.agentEnv,
  });
  if (!parsed.ok) throw new Error(parsed.errors.join("; "));
  const log = pino({ level: "warn" }, pino.destination(join(dir, "agent.log")));
  const agent = await MediaAgent.start(parsed.config, log, opts.hooks);
  t.teardown(() => agent.stop());

  const ca = w.us.ca!;
  const userCert = issueCert(ca, "wa-user", [baresipHost]);
  const baresipRtp = await freePortRange(10);
  const baresip = await startBaresip(t, {
    dir: join(dir, "baresip"),
    host: baresipHost,
    sipPort: baresipSipPort,
    user: WA_USER,
    sourceWav: callerWav,
    role: { kind: "wa-user", outbound: w.edgeUserTls, cert: userCert.cert, key: userCert.key, caFile: ca.cert },
    codecs: baresipCodecs,
    rtpPorts: baresipRtp,
    answerMode: opts.answerMode,
    mediaEncryption: opts.metaMedia ? "none" : opts.mediaEncryption,
  });
  const once = (event: "ended" | "answered") => () =>
    new Promise<CallRecord>((done) => agent.once(event, (r) => done(r)));
  return {
    w, agent, baresip, recordDir, callerWav, agentWav, baresipRtp, agentRtp,
    nextEnded: once("ended"),
    nextAnswered: once("answered"),
  };
}

/** The SIP URI baresip dials to call the business through the edge. */
export function businessUri(w: Interconnect, number = BUSINESS): string {
  return `sip:${number}@${w.edgeUserTls.host}`;
}
