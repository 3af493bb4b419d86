/**
 * The media agent: a SIP UA behind Kamailio whose calls each get a media session and a
 * profile's audio. Inbound (calls/inbound.ts): INVITE → SDP answer → 200 and the first packet at
 * once. Outbound (calls/outbound.ts): placeCall → INVITE through Kamailio → on 200 the agent
 * speaks first. Transfer (calls/transfer.ts): a leg to a person, joined to the caller. Calls end
 * on BYE (either side), CANCEL, RTP timeout or the maximum duration, each through Call.end.
 * With voice profiles, a rehearsal call runs before the SIP listener opens (calls/rehearsal.ts).
 */
import type { EngineCheck } from "./engine-check.js";
import { EventEmitter } from "node:events";
import type { Logger } from "pino";
import type { CallAudio, CallAudioFactory, CallControl, CallInfo } from "./audio/call-audio.js";
import { Call, type CallDesk, type CallRecord, type CallTable } from "./calls/call.js";
import { answerInvite } from "./calls/inbound.js";
import { placeCall } from "./calls/outbound.js";
import { rehearse } from "./calls/rehearsal.js";
import { transferCall } from "./calls/transfer.js";
import type { AgentConfig } from "./config.js";
import { setOpusSettings } from "./codecs/opus.js";
import { activeCalls, countEndedCall } from "./metrics.js";
import { inLaterLoopTurn } from "./loop-turns.js";
import { ProfileRegistry } from "./profiles/registry.js";
import { MediaSession, type RtpImpairment } from "./rtp/media-session.js";
import type { LocalMedia, NegotiatedMedia } from "./sdp/negotiate.js";
import { SipTransport } from "./sip/transport.js";
import { UserAgent } from "./sip/user-agent.js";

export interface AgentEvents {
  answered: [CallRecord];
  ended: [CallRecord];
}

export interface AgentHooks {
  /** Replaces the configured profiles' audio (tests). */
  audioFactory?: CallAudioFactory;
  /** Network impairment between rtpengine and the agent (tests). */
  impairRtp?: RtpImpairment;
}

export class MediaAgent extends EventEmitter<AgentEvents> implements CallDesk, CallTable {
  /** Calls in progress (answered, or outgoing and not yet answered), by Call-ID. */
  private readonly live = new Map<string, Call>();
  /** Calls in progress and the last AGENT_CALL_HISTORY ended ones, oldest first, for the API. */
  readonly calls = new Map<string, CallRecord>();

  private constructor(
    readonly config: AgentConfig,
    readonly log: Logger,
    private readonly transport: SipTransport,
    readonly ua: UserAgent,
    private readonly profiles: ProfileRegistry,
    private readonly hooks: AgentHooks,
  ) {
    super();
    ua.on("invite", (invite) => void answerInvite(this, invite));
    // The BYE is answered already (user-agent.ts). Its RTP stops and its ports are free at once
    // (closing two sockets is cheap); the rest of the call's teardown waits for a later loop
    // turn (loop-turns.ts), so that when many calls end together (their BYEs read in one poll)
    // the calls still up keep their 20 ms ticks between the teardowns. The ports do not wait:
    // on a loaded agent (100 echo calls) that turn came up to ~350 ms later, and with 100
    // calls/s ending the ended calls' ports piled up until new calls found none (the
    // 10,000-call soak: 68 calls refused 500).
    ua.on("ended", (callId, reason) => {
      const call = this.live.get(callId);
      if (!call) return;
      call.media?.stop();
      void inLaterLoopTurn(() => void call.end(reason));
    });
    ua.on("ackTimeout", (callId) => void this.hangUp(callId, "no ACK"));
  }

  static async start(config: AgentConfig, log: Logger, hooks: AgentHooks = {}): Promise<MediaAgent> {
    // Every Opus encoder of this process, and the speech workers' through their jobs, uses them.
    setOpusSettings({ complexity: config.AGENT_OPUS_COMPLEXITY });
    const profiles = await ProfileRegistry.load(config, log);
    // Before the SIP listener opens: the first caller meets code that has run (calls/rehearsal.ts).
    const rehearsed = profiles.rehearsalProfile();
    if (rehearsed) await rehearse(config, log, rehearsed, (cfg, quiet, rehearsalHooks) => MediaAgent.open(cfg, quiet, profiles, rehearsalHooks));
    const agent = await MediaAgent.open(config, log, profiles, hooks);
    log.info({ sip: agent.transport.local, kamailio: config.AGENT_KAMAILIO, peers: config.AGENT_KAMAILIO_PEERS, codecs: config.AGENT_CODECS, opusComplexity: config.AGENT_OPUS_COMPLEXITY }, "media agent listening");
    return agent;
  }

  /** Its SIP socket open on config.AGENT_SIP, serving config.AGENT_KAMAILIO (and its peers). */
  private static async open(config: AgentConfig, log: Logger, profiles: ProfileRegistry, hooks: AgentHooks): Promise<MediaAgent> {
    let agent: MediaAgent | undefined;
    const transport = await SipTransport.open({
      bind: config.AGENT_SIP,
      kamailio: config.AGENT_KAMAILIO,
      peers: config.AGENT_KAMAILIO_PEERS,
      log,
      onMessage: (msg) => agent!.ua.handle(msg),
    });
    const ua = new UserAgent(transport, config.AGENT_KAMAILIO, log);
    agent = new MediaAgent(config, log, transport, ua, profiles, hooks);
    return agent;
  }

  get sipAddress(): { host: string; port: number } {
    return this.transport.local;
  }

  /** Calls in progress. */
  get activeCalls(): number {
    return this.live.size;
  }

  /**
   * GET /healthz: every voice profile's engine answers HTTP (any status) within a second, and a
   * pair of RTP ports is left for the next call. ok: all of it.
   */
  async health(): Promise<{ ok: boolean; engines: Array<{ profile: string; engine: string; url: string; ok: boolean; detail: string }>; checks: EngineCheck[]; rtp: { ports: string; pairs: number; inUse: number; ok: boolean } }> {
    const engines = await Promise.all(
      this.profiles.engineUrls().map(async (e) => {
        try {
          const res = await fetch(e.url, { signal: AbortSignal.timeout(1000) });
          await res.body?.cancel();
          return { ...e, ok: true, detail: `HTTP ${res.status}` };
        } catch (err) {
          const cause = (err as Error).name === "TimeoutError" ? "no answer within 1000 ms" : String((err as { cause?: unknown }).cause ?? err);
          return { ...e, ok: false, detail: cause };
        }
      }),
    );
    const { min, max } = this.config.AGENT_RTP_PORTS;
    const pairs = Math.floor((max - min + 1) / 2);
    const rtp = { ports: `${min}-${max}`, pairs, inUse: this.live.size, ok: this.live.size < pairs };
    // The engine check (engine-health.ts): what a call on each profile would meet.
    const checks = this.profiles.engines.rows();
    return { ok: rtp.ok && engines.every((e) => e.ok) && checks.every((c) => c.ok), engines, checks, rtp };
  }

  /** A business-initiated call (calls/outbound.ts). */
  placeCall(p: { to: string; number: string; profile: string }): Promise<CallRecord> {
    return placeCall(this, p);
  }

  /** Ends a call from our side: BYE when answered, CANCEL while it is still being set up. */
  async hangUp(callId: string, reason: string): Promise<boolean> {
    const call = this.live.get(callId);
    if (!call) return false;
    if (call.record.status === "calling" || call.record.status === "ringing") {
      call.cancel?.();
      return true;
    }
    void this.ua.bye(callId, `SIP;cause=200;text="${reason.replace(/"/g, "'")}"`);
    await call.end(`local BYE: ${reason}`);
    return true;
  }

  /** Hangs up its calls and closes its SIP socket (the rehearsal's agent ends so; stop ends the engine check too). */
  async close(): Promise<void> {
    await Promise.all([...this.live.keys()].map((id) => this.hangUp(id, "agent shutting down")));
    this.ua.close();
    this.transport.close();
  }

  async stop(): Promise<void> {
    await this.close();
    this.profiles.engines.stop();
  }

  // ----- CallDesk: what inbound, outbound and transfer calls use

  hasProfile(name: string): boolean {
    return this.hooks.audioFactory !== undefined || this.profiles.has(name);
  }

  newCall(callId: string, direction: "inbound" | "outbound", profile: string, businessNumber: string, remoteNumber: string): Call {
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
    return new Call(record, this.log.child({ callId }), this);
  }

  track(call: Call): void {
    this.live.set(call.record.callId, call);
    activeCalls.set(this.live.size);
  }

  call(callId: string): Call | undefined {
    return this.live.get(callId);
  }

  begin(call: Call, negotiated: NegotiatedMedia, joined?: CallAudio): void {
    const { record } = call;
    const media = call.media!;
    call.answered(negotiated.codec.name, this.config.AGENT_MAX_CALL_S * 1000, () => void this.hangUp(record.callId, "maximum call duration"));
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
      transfer: (target, ringTimeoutMs) => transferCall(this, record.callId, target, ringTimeoutMs),
    };
    const audio = joined ?? this.hooks.audioFactory?.(info, control) ?? this.profiles.audioFor(info, control);
    call.audio = audio;
    this.track(call);
    media.on("timeout", () => void this.hangUp(record.callId, "RTP timeout"));
    media.on("dtmf", (digit) => call.log.info({ digit }, "DTMF"));
    media.start(negotiated, audio);
    call.log.info({ codec: negotiated.codec.name, remote: `${negotiated.remoteAddress}:${negotiated.remotePort}`, profile: record.profile }, "call answered, media flowing");
    this.emit("answered", record);
  }

  async openMedia(log: Logger): Promise<MediaSession | null> {
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

  localMedia(media: MediaSession): LocalMedia {
    return {
      address: this.config.AGENT_RTP_HOST,
      rtpPort: media.localPort,
      preferences: this.config.AGENT_CODECS,
      sessionId: String(Date.now()),
      sessionVersion: 1,
    };
  }

  // ----- CallTable: Call.end's steps that concern the agent

  forget(call: Call): void {
    if (this.live.get(call.record.callId) === call) this.live.delete(call.record.callId);
    activeCalls.set(this.live.size);
  }

  /** Counted, announced; a call joined to it in a transfer is hung up too. */
  async ended(call: Call): Promise<void> {
    countEndedCall(call.record);
    this.emit("ended", call.record);
    if (call.joinedWith) await this.hangUp(call.joinedWith, "the other party of the transfer hung up");
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
