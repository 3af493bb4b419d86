/**
 * The media agent: a SIP UA behind Kamailio whose calls each get a media session and a
 * profile's audio. Inbound: INVITE → SDP answer → 200 and the first packet at once.
 * Outbound: placeCall → INVITE through Kamailio → on 200 the agent speaks first.
 * Calls end on BYE (either side), CANCEL, RTP timeout or the maximum duration.
 */
import { EventEmitter } from "node:events";
import type { Logger } from "pino";
import { bridgeAudio } from "./audio/bridge.js";
import type { CallAudio, CallAudioFactory, CallControl, CallInfo, TransferResult } from "./audio/call-audio.js";
import type { AgentConfig } from "./config.js";
import { ProfileRegistry } from "./profiles/registry.js";
import { MediaSession, type RtpImpairment } from "./rtp/media-session.js";
import { acceptAnswer, answerOffer, createOffer, type LocalMedia, type NegotiatedMedia } from "./sdp/negotiate.js";
import { parseSdp, SdpParseError } from "./sdp/sdp.js";
import { header, parseNameAddr, parseUri, type SipHeader } from "./sip/message.js";
import { SipTransport } from "./sip/transport.js";
import { UserAgent, type IncomingInvite } from "./sip/user-agent.js";

/** Header the routing sets on user-initiated calls (routing/wa/inbound.ts). */
export const PROFILE_HEADER = "X-WA-Profile";
/** Marks the agent's transfer legs for Kamailio (value: the caller's Call-ID). */
export const TRANSFER_HEADER = "X-WA-Transfer";

export type CallStatus = "calling" | "ringing" | "answered" | "ended" | "failed";

export interface CallRecord {
  callId: string;
  direction: "inbound" | "outbound";
  status: CallStatus;
  profile: string;
  businessNumber: string;
  remoteNumber: string;
  codec?: string;
  startedAt: string;
  answeredAt?: string;
  endedAt?: string;
  /** Why it ended: "remote BYE", "local BYE: RTP timeout", "CANCEL", "486 Busy Here", … */
  endReason?: string;
  media?: ReturnType<MediaSession["stats"]>;
}

export interface AgentEvents {
  answered: [CallRecord];
  ended: [CallRecord];
}

export interface AgentHooks {
  /** Replaces the configured profiles' audio (tests, and the voice pipeline later). */
  audioFactory?: CallAudioFactory;
  /** Network impairment between rtpengine and the agent (tests). */
  impairRtp?: RtpImpairment;
}

interface LiveCall {
  record: CallRecord;
  media: MediaSession;
  audio?: CallAudio;
  /** The other call this one's audio is joined to (a transfer); it ends with this one. */
  joinedWith?: string;
  maxDuration?: NodeJS.Timeout;
  cancel?: () => void;
}

export class MediaAgent extends EventEmitter<AgentEvents> {
  private readonly live = new Map<string, LiveCall>();
  /** Calls in progress and the last AGENT_CALL_HISTORY ended ones, oldest first, for the API. */
  readonly calls = new Map<string, CallRecord>();

  private constructor(
    readonly config: AgentConfig,
    private readonly log: Logger,
    private readonly transport: SipTransport,
    private readonly ua: UserAgent,
    private readonly profiles: ProfileRegistry,
    private readonly hooks: AgentHooks,
  ) {
    super();
    ua.on("invite", (invite) => void this.incoming(invite));
    ua.on("ended", (callId, reason) => void this.finish(callId, reason));
    ua.on("ackTimeout", (callId) => void this.hangUp(callId, "no ACK"));
  }

  static async start(config: AgentConfig, log: Logger, hooks: AgentHooks = {}): Promise<MediaAgent> {
    const profiles = await ProfileRegistry.load(config, log);
    let agent: MediaAgent | undefined;
    const transport = await SipTransport.open({
      bind: config.AGENT_SIP,
      kamailio: config.AGENT_KAMAILIO,
      log,
      onMessage: (msg) => agent!.ua.handle(msg),
    });
    const ua = new UserAgent(transport, config.AGENT_KAMAILIO, log);
    agent = new MediaAgent(config, log, transport, ua, profiles, hooks);
    log.info({ sip: transport.local, kamailio: config.AGENT_KAMAILIO, codecs: config.AGENT_CODECS }, "media agent listening");
    return agent;
  }

  get sipAddress(): { host: string; port: number } {
    return this.transport.local;
  }

  private async incoming(invite: IncomingInvite): Promise<void> {
    const request = invite.request;
    const profile = header(request, PROFILE_HEADER) ?? this.config.AGENT_DEFAULT_PROFILE;
    const record = this.newRecord(invite.callId, "inbound", profile, parseUri(request.uri).user, userOf(header(request, "From")!));
    const log = this.log.child({ callId: invite.callId });
    if (!this.profiles.has(profile) && !this.hooks.audioFactory) {
      log.warn({ profile }, "unknown agent profile");
      return this.refuse(invite, record, 404, `Not Found - No Agent Profile '${profile}'`);
    }
    let offer;
    try {
      offer = parseSdp(request.body);
    } catch (err) {
      if (!(err instanceof SdpParseError)) throw err;
      return this.refuse(invite, record, 400, `Bad Request - Bad SDP: ${(err as Error).message}`);
    }
    const media = await this.openMedia(log);
    if (!media) return this.refuse(invite, record, 503, "Service Unavailable - No RTP Ports");
    const negotiation = answerOffer(offer, this.localMedia(media));
    if (!negotiation.ok) {
      media.stop();
      return this.refuse(invite, record, 488, `Not Acceptable Here - ${negotiation.reason}`);
    }
    invite.ringing();
    if (this.config.AGENT_ANSWER_DELAY_MS > 0) await new Promise((done) => setTimeout(done, this.config.AGENT_ANSWER_DELAY_MS));
    if (invite.canceled) return void this.end(record, "CANCEL", media);
    invite.accept(negotiation.sdp);
    this.begin(record, media, negotiation.media, log);
  }

  private refuse(invite: IncomingInvite, record: CallRecord, status: number, reason: string): void {
    invite.reject(status, reason);
    void this.end(record, `${status} ${reason}`);
  }

  /**
   * A business-initiated call. Resolves once the INVITE has left; the record follows the call
   * (calling → answered → ended, or failed with Meta's/Kamailio's answer).
   */
  async placeCall(p: { to: string; number: string; profile: string }): Promise<CallRecord> {
    if (!this.profiles.has(p.profile) && !this.hooks.audioFactory) {
      throw new AgentRequestError(`no agent profile '${p.profile}' (AGENT_PROFILES)`);
    }
    const media = await this.openMedia(this.log);
    if (!media) throw new AgentRequestError("no free RTP port pair", 503);
    const k = this.config.AGENT_KAMAILIO;
    const { record, log, outcome } = this.dial(media, {
      requestUri: `sip:${p.to}@${k.host}:${k.port}`,
      from: `<sip:${p.number}@${k.host}>`,
      to: `<sip:${p.to}@${k.host}>`,
      headers: [{ name: PROFILE_HEADER, value: p.profile }],
      profile: p.profile,
      number: p.number,
      remote: p.to,
    });
    void outcome.then((dialed) => dialed.ok && this.begin(record, media, dialed.negotiated, log));
    return record;
  }

  /**
   * A transfer to a person: a new leg from the business number to `target` through Kamailio
   * (marked X-WA-Transfer; Kamailio sends it to WA_TRANSFER_PROXY). Once it is answered the two
   * calls' audio is joined and the caller's profile audio (the voice pipeline) is closed; when
   * either call ends, the other is hung up.
   */
  private async transfer(callId: string, target: string, ringTimeoutMs: number): Promise<TransferResult> {
    const caller = this.live.get(callId);
    if (!caller || caller.record.status !== "answered") return { ok: false, reason: "the call is no longer up" };
    const media = await this.openMedia(this.log);
    if (!media) return { ok: false, reason: "no free RTP port pair" };
    const { record, log, outcome } = this.dial(media, {
      requestUri: target,
      from: `<sip:${caller.record.businessNumber}@${this.config.AGENT_KAMAILIO.host}>`,
      to: `<${target}>`,
      headers: [{ name: TRANSFER_HEADER, value: callId }],
      profile: "transfer",
      number: caller.record.businessNumber,
      remote: target,
      ringTimeoutMs,
    });
    log.info({ target, transferOf: callId }, "transfer: calling");
    const dialed = await outcome;
    if (!dialed.ok) return dialed;
    if (!this.live.has(callId)) {
      await this.hangUp(record.callId, "the caller hung up during the transfer");
      return { ok: false, reason: "the caller hung up" };
    }
    const [callerEnd, personEnd] = bridgeAudio();
    this.begin(record, media, dialed.negotiated, log, personEnd);
    const previous = caller.audio;
    caller.audio = callerEnd;
    caller.media.setAudio(callerEnd);
    caller.joinedWith = record.callId;
    this.live.get(record.callId)!.joinedWith = callId;
    await previous?.close();
    log.info({ target, transferOf: callId }, "transfer: answered, calls joined");
    return { ok: true };
  }

  /**
   * An outgoing INVITE through Kamailio: the record follows it (calling → failed, or answered
   * once `outcome` says so and the caller begins the media). No answer within ringTimeoutMs
   * cancels it.
   */
  private dial(
    media: MediaSession,
    p: { requestUri: string; from: string; to: string; headers: SipHeader[]; profile: string; number: string; remote: string; ringTimeoutMs?: number },
  ): { record: CallRecord; log: Logger; outcome: Promise<{ ok: true; negotiated: NegotiatedMedia } | { ok: false; reason: string }> } {
    const local = this.localMedia(media);
    const call = this.ua.invite({ requestUri: p.requestUri, from: p.from, to: p.to, sdp: createOffer(local), headers: p.headers });
    const record = this.newRecord(call.callId, "outbound", p.profile, p.number, p.remote);
    const log = this.log.child({ callId: call.callId });
    this.live.set(call.callId, { record, media, cancel: call.cancel });
    const ringing = p.ringTimeoutMs ? setTimeout(() => call.cancel(), p.ringTimeoutMs) : undefined;
    const outcome = call.result.then(async (result) => {
      clearTimeout(ringing);
      if (result.status >= 300 || !result.dialog) {
        const reason = result.status === 487 && p.ringTimeoutMs ? `no answer within ${p.ringTimeoutMs} ms` : `${result.status} ${result.reason}`;
        await this.end(record, reason);
        return { ok: false as const, reason };
      }
      let answer;
      try {
        answer = acceptAnswer(parseSdp(result.answerSdp ?? ""), local);
      } catch (err) {
        answer = { ok: false as const, reason: `bad SDP answer: ${(err as Error).message}` };
      }
      if (!answer.ok) {
        log.error({ reason: answer.reason }, "unusable SDP answer");
        await this.hangUp(call.callId, answer.reason);
        return { ok: false as const, reason: answer.reason };
      }
      return { ok: true as const, negotiated: answer.media };
    });
    return { record, log, outcome };
  }

  /** Ends a call from our side: BYE when answered, CANCEL while it is still being set up. */
  async hangUp(callId: string, reason: string): Promise<boolean> {
    const live = this.live.get(callId);
    if (!live) return false;
    if (live.record.status === "calling" || live.record.status === "ringing") {
      live.cancel?.();
      return true;
    }
    void this.ua.bye(callId, `SIP;cause=200;text="${reason.replace(/"/g, "'")}"`);
    await this.finish(callId, `local BYE: ${reason}`);
    return true;
  }

  async stop(): Promise<void> {
    await Promise.all([...this.live.keys()].map((id) => this.hangUp(id, "agent shutting down")));
    this.ua.close();
    this.transport.close();
  }

  private begin(record: CallRecord, media: MediaSession, negotiated: Parameters<MediaSession["start"]>[0], log: Logger, joined?: CallAudio): void {
    record.status = "answered";
    record.codec = negotiated.codec.name;
    record.answeredAt = new Date().toISOString();
    const info: CallInfo = {
      callId: record.callId,
      direction: record.direction,
      profile: record.profile,
      businessNumber: record.businessNumber,
      remoteNumber: record.remoteNumber,
      codec: negotiated.codec.name,
    };
    const control: CallControl = {
      // Deferred: a profile may ask from inside the media tick that the hang-up stops.
      hangUp: (reason) => void setImmediate(() => void this.hangUp(record.callId, reason)),
      transfer: (target, ringTimeoutMs) => this.transfer(record.callId, target, ringTimeoutMs),
    };
    const audio = joined ?? this.hooks.audioFactory?.(info, control) ?? this.profiles.audioFor(info, control);
    const live: LiveCall = this.live.get(record.callId) ?? { record, media };
    live.audio = audio;
    live.maxDuration = setTimeout(() => void this.hangUp(record.callId, "maximum call duration"), this.config.AGENT_MAX_CALL_S * 1000);
    this.live.set(record.callId, live);
    media.on("timeout", () => void this.hangUp(record.callId, "RTP timeout"));
    media.on("dtmf", (digit) => log.info({ digit }, "DTMF"));
    media.start(negotiated, audio);
    log.info({ codec: negotiated.codec.name, remote: `${negotiated.remoteAddress}:${negotiated.remotePort}`, profile: record.profile }, "call answered, media flowing");
    this.emit("answered", record);
  }

  /** A call the SIP side saw end (BYE, CANCEL, a failure answer, no ACK). */
  private async finish(callId: string, reason: string): Promise<void> {
    const live = this.live.get(callId);
    if (live) await this.end(live.record, reason);
  }

  /**
   * The one "call ended" step, however a call ends (refused, cancelled, failed, hung up by
   * either side): its media and audio released, its record closed (ended if it was answered,
   * failed otherwise), logged, announced; a call joined to it in a transfer is hung up too.
   * `media`: a call's RTP ports opened before it became a live call.
   */
  private async end(record: CallRecord, reason: string, media?: MediaSession): Promise<void> {
    const live = this.live.get(record.callId);
    this.live.delete(record.callId);
    clearTimeout(live?.maxDuration);
    const session = live?.media ?? media;
    session?.stop();
    if (live?.audio) record.media = live.media.stats();
    record.status = record.status === "answered" ? "ended" : "failed";
    record.endReason = reason;
    record.endedAt = new Date().toISOString();
    try {
      await live?.audio?.close();
    } catch (err) {
      this.log.error({ callId: record.callId, err }, "closing the call's audio failed");
    }
    this.log.info({ callId: record.callId, direction: record.direction, status: record.status, reason, packetsIn: record.media?.packetsIn, packetsOut: record.media?.packetsOut }, "call ended");
    this.emit("ended", record);
    if (live?.joinedWith) await this.hangUp(live.joinedWith, "the other party of the transfer hung up");
  }

  private async openMedia(log: Logger): Promise<MediaSession | null> {
    try {
      return await MediaSession.open({
        host: this.config.AGENT_RTP_HOST,
        ports: this.config.AGENT_RTP_PORTS,
        log,
        rtpTimeoutMs: this.config.AGENT_RTP_TIMEOUT_S * 1000,
        impair: this.hooks.impairRtp,
      });
    } catch (err) {
      log.error({ err }, "no RTP ports");
      return null;
    }
  }

  private localMedia(media: MediaSession): LocalMedia {
    return {
      address: this.config.AGENT_RTP_HOST,
      rtpPort: media.localPort,
      preferences: this.config.AGENT_CODECS,
      sessionId: String(Date.now()),
      sessionVersion: 1,
    };
  }

  private newRecord(callId: string, direction: "inbound" | "outbound", profile: string, businessNumber: string, remoteNumber: string): CallRecord {
    const record: CallRecord = {
      callId,
      direction,
      status: direction === "inbound" ? "ringing" : "calling",
      profile,
      businessNumber,
      remoteNumber,
      startedAt: new Date().toISOString(),
    };
    this.calls.set(callId, record);
    this.forgetOldCalls();
    return record;
  }

  /** Calls in progress. */
  get activeCalls(): number {
    return this.live.size;
  }

  /** Ended calls beyond AGENT_CALL_HISTORY go, oldest first (a record is ~2.4 KiB of heap). */
  private forgetOldCalls(): void {
    let excess = this.calls.size - this.live.size - this.config.AGENT_CALL_HISTORY;
    for (const [callId, record] of this.calls) {
      if (excess <= 0) return;
      if (record.status === "ended" || record.status === "failed") {
        this.calls.delete(callId);
        excess--;
      }
    }
  }
}

/** A request the API refuses (bad input), with the HTTP status to answer. */
export class AgentRequestError extends Error {
  constructor(message: string, readonly status = 400) {
    super(message);
  }
}

function userOf(nameAddr: string): string {
  try {
    return parseUri(parseNameAddr(nameAddr).uri).user;
  } catch {
    return "";
  }
}
