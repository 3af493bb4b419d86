/**
 * The whole media path for end-to-end tests: baresip (the WhatsApp user: TLS, SRTP SDES) →
 * the Meta-edge peer → our Kamailio (real bundle, TLS) → rtpengine (userspace) → the media
 * agent, run in-process with the play-record profile so both sides' audio lands on disk.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { pino } from "pino";
import { freePort, freePortRange } from "../../build/ports.js";
import { MediaAgent, type AgentHooks, type CallRecord } from "../../media-agent/src/agent.js";
import { parseAgentConfig } from "../../media-agent/src/config.js";
import { readWav } from "../../media-agent/src/audio/wav.js";
import { resample } from "../../media-agent/src/codecs/resample.js";
import { startBaresip, type Baresip } from "./baresip.js";
import { issueCert } from "./test-ca.js";
import { BUSINESS, startInterconnect, WA_USER, type Interconnect } from "./wa-interconnect.js";
import type { Teardown } from "./teardown.js";


export const CALLER_TEXT = "Hello, I would like to know when your shop in Dusseldorf opens tomorrow morning.";
export const AGENT_TEXT = "Welcome to the demo business. You are talking to the media agent on Kamailio.";

/** Speech from espeak-ng as a 16-bit WAV at the given rate, with silence before it. */
export function speak(text: string, file: string, rate: number, leadSilenceS = 0.5, channels = 1, trailSilenceS = 0.5): string {
  const raw = `${file}.raw.wav`;
  execFileSync("espeak-ng", ["-v", "en-us", "-s", "150", "-w", raw, text]);
  execFileSync("sox", [raw, "-r", String(rate), "-c", String(channels), "-b", "16", file, "pad", String(leadSilenceS), String(trailSilenceS)]);
  return file;
}

/**
 * baresip 1.0's aufile source must match the codec's rate and channels exactly, and baresip
 * hangs up when the file ends: 6 s of silence after the speech keep the call up.
 */
export function speakForBaresip(text: string, file: string, codec: string): string {
  const [, rate = "8000", channels = "1"] = codec.split("/");
  return speak(text, file, Number(rate), 0.5, Number(channels), 6);
}

/** A WAV's samples at 16 kHz. */
export function wav16k(file: string): Int16Array {
  const w = readWav(readFileSync(file));
  return w.sampleRate === 16000 ? w.samples : resample(w.samples, w.sampleRate, 16000);
}

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
  } = {},
): Promise<MediaCallSetup> {
  mkdirSync(dir, { recursive: true });
  const baresipCodecs = opts.baresipCodecs ?? ["opus/48000/2"];
  const callerWav = speakForBaresip(CALLER_TEXT, join(dir, "caller.wav"), baresipCodecs[0]);
  const agentWav = speak(AGENT_TEXT, join(dir, "agent.wav"), 16000, 0);
  const recordDir = join(dir, "recordings");
  const baresipHost = "127.0.0.1";
  // baresip listens for SIP on the port and for SIP over TLS on the port + 1.
  const baresipSipPort = (await freePortRange(2, baresipHost)).min;
  const w = await startInterconnect(t, { waUserUri: `sip:${baresipHost}:${baresipSipPort + 1};transport=tls`, env: opts.env });

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
    outbound: w.edgeUserTls,
    sourceWav: callerWav,
    cert: userCert.cert,
    key: userCert.key,
    caFile: ca.cert,
    codecs: baresipCodecs,
    rtpPorts: baresipRtp,
    answerMode: opts.answerMode,
    mediaEncryption: opts.mediaEncryption,
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
