/**
 * The rehearsal: before a media agent with voice profiles takes calls, it calls itself once per
 * codec (AGENT_CODECS), on loopback, through the same code a caller's call runs: the SIP
 * transport and user agent, the INVITE's answer, SDP, the media sessions (RTP both ways, the
 * codec, the jitter buffer), and a voice pipeline with the real VAD, the real speech workers and
 * the stages a turn goes through. The rehearsal caller waits for the greeting, asks a question,
 * hears the reply and hangs up (~3 s, the calls of all codecs at once).
 *
 * Why: a fresh agent's first call runs code the process has not run before, unoptimised (the SIP
 * parser took 1.56 ms the first time against 7–9 µs once hot; the first INVITE 5–11 ms of
 * synchronous work, its answer's start 3.5–8.8 ms), and one call alone on a fresh agent held
 * every other call's 20 ms frame clock 15–28 ms (bench/HISTORY.md, "A fresh agent's first call"). After the
 * rehearsal the first caller meets code that has run.
 *
 * Whom it trusts: its agent is a second MediaAgent of this process whose SIP socket (127.0.0.1,
 * an ephemeral port, open for the rehearsal only) serves the rehearsal caller's socket alone,
 * by source address, as the agent serves only Kamailio (sip/transport.ts). Its engines are
 * in-process: a canned transcript and reply stand for the STT and the LLM, and espeak-ng speaks,
 * so no engine gets a request from it. Nothing of it stays: its trace goes to a temporary
 * directory that is removed, its calls are in no call list, and the call metrics are reset
 * after it (metrics.ts resetCallMetrics).
 *
 * A rehearsal that fails (no RTP ports left, espeak-ng missing) is logged with the step it
 * reached, and the agent starts anyway: a real call would meet the same problem and log it.
 */
import { createSocket, type Socket } from "node:dgram";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Logger } from "pino";
import type { CallAudio, CallAudioFactory } from "../audio/call-audio.js";
import type { PcmFrame } from "../audio/frames.js";
import { toFrames } from "../audio/wav.js";
import type { AgentConfig } from "../config.js";
import { pipelineMetrics, resetCallMetrics } from "../metrics.js";
import type { ChatModel, SpeechToText } from "../pipeline/engines.js";
import type { PipelineEvent } from "../pipeline/events.js";
import type { ChatPart } from "../pipeline/llm-client.js";
import type { SttResult } from "../pipeline/stt-client.js";
import { EspeakTts } from "../pipeline/tts.js";
import { WebRtcVad } from "../pipeline/vad.js";
import { VoicePipeline } from "../pipeline/voice-pipeline.js";
import { voiceProfile, type VoiceProfileSpec } from "../pipeline/voice-profiles.js";
import type { MediaSession } from "../rtp/media-session.js";
import { acceptAnswer, createOffer } from "../sdp/negotiate.js";
import { parseSdp } from "../sdp/sdp.js";
import { buildResponse, header, parseCSeq, parseNameAddr, parseSipDatagram, serializeSipMessage, type SipHeader, type SipMessage } from "../sip/message.js";
import type { SipPeer } from "../sip/transport.js";
import { randomToken } from "../sip/user-agent.js";
import type { AgentHooks, MediaAgent } from "../agent.js";
import { PROFILE_HEADER } from "./inbound.js";

const GREETING = "Hello.";
const QUESTION = "What time is it?";
const REPLY = "It is noon.";
/** The rehearsal's voice, the caller's question and the agent's replies alike (stateless: one for all calls). */
const ESPEAK = new EspeakTts({ voice: "en-us", speed: 165 });
/** A rehearsal call not over by then is hung up and logged as failed: the agent's start waits no longer. */
const CALL_LIMIT_MS = 10_000;

/** Opens a MediaAgent on these settings with these hooks (agent.ts: the rehearsal's agent). */
export type OpenAgent = (config: AgentConfig, log: Logger, hooks: AgentHooks) => Promise<MediaAgent>;

/** The steps of a rehearsal call, in order: how far it got. */
const STEPS = ["started", "answered", "greeting played", "question heard", "reply played", "ended"] as const;
type Step = (typeof STEPS)[number];

export interface RehearsalOutcome {
  codec: string;
  ok: boolean;
  /** The last step it reached; with ok false, the next one is where it failed. */
  reached: Step;
  ms: number;
  error?: string;
}

/**
 * Rehearses a call per codec with the voice profile `profile` and logs how each went
 * ("rehearsal calls done", or a warning naming the step a call reached and why it failed);
 * resolves with the same (never rejects).
 */
export async function rehearse(config: AgentConfig, log: Logger, profile: { name: string; spec: VoiceProfileSpec }, openAgent: OpenAgent): Promise<RehearsalOutcome[]> {
  const started = performance.now();
  const outcomes = await rehearseCalls(config, log, profile, openAgent);
  const ms = Math.round(performance.now() - started);
  if (outcomes.every((o) => o.ok)) log.info({ profile: profile.name, ms, calls: outcomes }, "rehearsal calls done");
  else log.warn({ profile: profile.name, ms, calls: outcomes }, "a rehearsal call failed (see calls[].error); the agent starts anyway");
  return outcomes;
}

async function rehearseCalls(config: AgentConfig, log: Logger, profile: { name: string; spec: VoiceProfileSpec }, openAgent: OpenAgent): Promise<RehearsalOutcome[]> {
  const started = performance.now();
  const calls = new Map<string, RehearsalCall>();
  // Its warnings and errors are the agent's (a step that fails says why); its info lines would read as real calls'.
  const quiet = log.child({ rehearsal: true }, { level: "warn" });
  let traceDir: string | null = null;
  let caller: SipCaller | null = null;
  let agent: MediaAgent | null = null;
  try {
    traceDir = await mkdtemp(join(tmpdir(), "wa-agent-rehearsal-"));
    const c = (caller = await SipCaller.open());
    const question = toFrames((await ESPEAK.synthesize(QUESTION, AbortSignal.timeout(CALL_LIMIT_MS))).samples);
    const a = (agent = await openAgent(
      {
        ...config,
        AGENT_SIP: { host: "127.0.0.1", port: 0 },
        AGENT_KAMAILIO: c.address,
        AGENT_KAMAILIO_PEERS: [],
        AGENT_DEFAULT_PROFILE: profile.name,
        AGENT_ANSWER_DELAY_MS: 0,
        AGENT_TRACE_DIR: traceDir,
      },
      quiet,
      { audioFactory: rehearsalAudio(profile.spec, traceDir, calls) },
    ));
    c.agent = a.sipAddress;
    // A refused call ends too (status "failed"): only an answered one reaches the last step.
    a.on("ended", (record) => record.status === "ended" && calls.get(record.callId)?.reach("ended"));
    return await Promise.all(a.config.AGENT_CODECS.map((codec) => rehearseCall(a, c, calls, codec, profile.name, question, quiet)));
  } catch (err) {
    return [{ codec: config.AGENT_CODECS.join(","), ok: false, reached: "started", ms: Math.round(performance.now() - started), error: (err as Error).message }];
  } finally {
    await agent?.close();
    caller?.close();
    if (traceDir) await rm(traceDir, { recursive: true, force: true });
    resetCallMetrics();
  }
}

/** The rehearsal agent's audio: the profile's pipeline on the real VAD and espeak-ng, with a canned STT and LLM. */
function rehearsalAudio(spec: VoiceProfileSpec, traceDir: string, calls: Map<string, RehearsalCall>): CallAudioFactory {
  return (info, control) => {
    const call = calls.get(info.callId);
    const profile = { ...voiceProfile(spec, traceDir), greeting: GREETING, stt: cannedStt, llm: cannedLlm, tts: ESPEAK };
    return new VoicePipeline(info, control, profile, { vad: WebRtcVad.createLoaded(3) }, [pipelineMetrics(), (e) => call?.onAgentEvent(e)]);
  };
}

/** The STT's answer to the rehearsal's question, as the faster-whisper server gives it. */
const cannedStt: SpeechToText = {
  transcribe: (wav) => {
    // The WAV's length (16-bit mono at 16 kHz after its 44-byte header) is the segment's.
    const seconds = Math.max(0.5, (wav.byteLength - 44) / 32_000);
    const segment = { start: 0, end: seconds, text: ` ${QUESTION}`, avg_logprob: -0.2, compression_ratio: 1, no_speech_prob: 0.01 };
    return Promise.resolve<SttResult>({ text: QUESTION, language: "en", duration: seconds, segments: [segment], requestMs: 0 });
  },
};

/** The LLM's answer, streamed as Ollama's client gives it. */
const cannedLlm: ChatModel = {
  async *chat(): AsyncIterable<ChatPart> {
    yield { type: "text", text: REPLY };
    yield { type: "done", stats: { totalMs: 0, loadMs: 0, evalCount: 4 } };
  },
};

/** One rehearsal call's progress, from the rehearsal agent's pipeline events and its SIP. */
class RehearsalCall {
  reached: Step = "started";
  private readonly waiting = new Map<Step, () => void>();

  constructor(readonly voice: CallerVoice) {}

  reach(step: Step): void {
    if (STEPS.indexOf(step) > STEPS.indexOf(this.reached)) this.reached = step;
    this.waiting.get(step)?.();
  }

  until(step: Step, signal: AbortSignal): Promise<void> {
    if (STEPS.indexOf(this.reached) >= STEPS.indexOf(step)) return Promise.resolve();
    return new Promise((done, fail) => {
      const late = () => fail(new Error(`no "${step}" within ${CALL_LIMIT_MS} ms`));
      if (signal.aborted) return late();
      signal.addEventListener("abort", late, { once: true });
      this.waiting.set(step, done);
    });
  }

  /** The greeting played: the caller asks. The reply's first clause played: the caller may hang up. */
  onAgentEvent(e: PipelineEvent): void {
    if (e.type === "clause-played" && e.turn === 0) {
      this.reach("greeting played");
      this.voice.say();
    } else if (e.type === "turn" && e.turn > 0) this.reach("question heard");
    else if (e.type === "clause-played" && e.turn > 0) this.reach("reply played");
  }
}

/** The rehearsal caller's audio: silence until it asks its question. */
class CallerVoice implements CallAudio {
  readonly listening = true;
  private next = -1;

  constructor(private readonly question: PcmFrame[]) {}

  say(): void {
    if (this.next < 0) this.next = 0;
  }

  onCallerFrame(): void {}

  nextAgentFrame(): PcmFrame | null {
    if (this.next < 0 || this.next >= this.question.length) return null;
    return this.question[this.next++];
  }

  close(): void {}
}

async function rehearseCall(agent: MediaAgent, caller: SipCaller, calls: Map<string, RehearsalCall>, codec: AgentConfig["AGENT_CODECS"][number], profileName: string, question: PcmFrame[], log: Logger): Promise<RehearsalOutcome> {
  const started = performance.now();
  const signal = AbortSignal.timeout(CALL_LIMIT_MS);
  const callId = `rehearsal-${codec}-${randomToken(6)}`;
  const call = new RehearsalCall(new CallerVoice(question));
  calls.set(callId, call);
  let media: MediaSession | null = null;
  try {
    media = await agent.openMedia(log);
    if (!media) throw new Error("no RTP port pair for the rehearsal caller");
    const local = { ...agent.localMedia(media), preferences: [codec] };
    const answer = await caller.invite(callId, profileName, createOffer(local), signal);
    if (answer.status !== 200) throw new Error(`the INVITE was answered ${answer.status} ${answer.reason}`);
    const toTag = parseNameAddr(header(answer, "To") ?? "").params.tag ?? "";
    caller.ack(callId, toTag);
    const negotiated = acceptAnswer(parseSdp(answer.body), local);
    if (!negotiated.ok) throw new Error(`unusable SDP answer: ${negotiated.reason}`);
    call.reach("answered");
    media.start(negotiated.media, call.voice);
    await call.until("reply played", signal);
    const bye = await caller.bye(callId, toTag, signal);
    if (bye.status !== 200) throw new Error(`the BYE was answered ${bye.status} ${bye.reason}`);
    await call.until("ended", signal);
    return { codec, ok: true, reached: call.reached, ms: Math.round(performance.now() - started) };
  } catch (err) {
    // A call still up is hung up by the rehearsal agent's close (rehearse).
    return { codec, ok: false, reached: call.reached, ms: Math.round(performance.now() - started), error: (err as Error).message };
  } finally {
    media?.stop();
    calls.delete(callId);
  }
}

/**
 * The rehearsal caller's SIP: a UDP socket on loopback that sends the INVITE, ACK and BYE of
 * its calls to the rehearsal agent and matches the final answers by Call-ID and CSeq. A request
 * from the agent (its BYE, were a call to end from its side) is answered 200. It hears the
 * rehearsal agent only.
 */
class SipCaller {
  /** The rehearsal agent's SIP address, once it is open. */
  agent: SipPeer = { host: "127.0.0.1", port: 0 };
  private readonly answers = new Map<string, (msg: SipMessage) => void>();

  private constructor(private readonly socket: Socket) {
    socket.on("message", (buf, from) => {
      // Only the rehearsal agent talks to this socket (source address): anyone else's datagram,
      // an answer or a request, is dropped unanswered.
      if (from.address !== this.agent.host || from.port !== this.agent.port) return;
      let msg: SipMessage;
      try {
        msg = parseSipDatagram(buf);
      } catch {
        return;
      }
      if (msg.kind === "request") {
        if (msg.method !== "ACK") this.send(serializeSipMessage(buildResponse(msg, 200, "OK")));
        return;
      }
      if (msg.status < 200) return;
      const key = `${header(msg, "Call-ID")} ${parseCSeq(header(msg, "CSeq") ?? "").method}`;
      this.answers.get(key)?.(msg);
      this.answers.delete(key);
    });
  }

  static async open(): Promise<SipCaller> {
    const socket = createSocket("udp4");
    await new Promise<void>((done, fail) => {
      socket.once("error", fail);
      socket.bind(0, "127.0.0.1", () => (socket.off("error", fail), done()));
    });
    // A send that fails shows as a step not reached in time (its call's outcome), not as a crash.
    socket.on("error", () => undefined);
    return new SipCaller(socket);
  }

  get address(): SipPeer {
    const a = this.socket.address();
    return { host: a.address, port: a.port };
  }

  invite(callId: string, profile: string, sdp: string, signal: AbortSignal): Promise<SipMessage> {
    return this.request("INVITE", 1, callId, null, signal, [{ name: PROFILE_HEADER, value: profile }, { name: "Content-Type", value: "application/sdp" }], sdp);
  }

  ack(callId: string, toTag: string): void {
    this.send(this.text("ACK", 1, callId, toTag, [], ""));
  }

  bye(callId: string, toTag: string, signal: AbortSignal): Promise<SipMessage> {
    return this.request("BYE", 2, callId, toTag, signal, [], "");
  }

  close(): void {
    this.socket.close();
  }

  private request(method: string, cseq: number, callId: string, toTag: string | null, signal: AbortSignal, headers: SipHeader[], body: string): Promise<SipMessage> {
    return new Promise((done, fail) => {
      const key = `${callId} ${method}`;
      const late = () => (this.answers.delete(key), fail(new Error(`no answer to the ${method} within ${CALL_LIMIT_MS} ms`)));
      if (signal.aborted) return late();
      signal.addEventListener("abort", late, { once: true });
      this.answers.set(key, done);
      this.send(this.text(method, cseq, callId, toTag, headers, body));
    });
  }

  private text(method: string, cseq: number, callId: string, toTag: string | null, headers: SipHeader[], body: string): string {
    const me = this.address;
    const agent = `${this.agent.host}:${this.agent.port}`;
    return serializeSipMessage({
      kind: "request",
      method,
      uri: `sip:rehearsal@${agent}`,
      status: 0,
      reason: "",
      headers: [
        { name: "Via", value: `SIP/2.0/UDP ${me.host}:${me.port};branch=z9hG4bK${randomToken(8)};rport` },
        { name: "Max-Forwards", value: "70" },
        { name: "From", value: `<sip:rehearsal-caller@${me.host}>;tag=${callId}` },
        { name: "To", value: `<sip:rehearsal@${agent}>${toTag ? `;tag=${toTag}` : ""}` },
        { name: "Call-ID", value: callId },
        { name: "CSeq", value: `${cseq} ${method}` },
        { name: "Contact", value: `<sip:rehearsal-caller@${me.host}:${me.port}>` },
        ...headers,
      ],
      body,
    });
  }

  private send(text: string): void {
    this.socket.send(text, this.agent.port, this.agent.host);
  }
}
