/**
 * One call of the agent, whichever way it came (inbound, outbound, a transfer leg): its record
 * for the API, its media session and its audio, and the one "call ended" step, however a call
 * ends (refused, cancelled, failed, hung up by either side).
 */
import type { Logger } from "pino";
import type { CallAudio } from "../audio/call-audio.js";
import type { AgentConfig } from "../config.js";
import type { MediaSession } from "../rtp/media-session.js";
import type { LocalMedia, NegotiatedMedia } from "../sdp/negotiate.js";
import type { UserAgent } from "../sip/user-agent.js";

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

/** What the agent does when a call ends: forget it at once, then announce it. */
export interface CallTable {
  forget(call: Call): void;
  ended(call: Call): Promise<void>;
}

/** What inbound, outbound and transfer calls need of the agent. */
export interface CallDesk {
  readonly config: AgentConfig;
  readonly ua: UserAgent;
  readonly log: Logger;
  hasProfile(name: string): boolean;
  /** A new call, in the API's list (not yet among the calls in progress: see track). */
  newCall(callId: string, direction: "inbound" | "outbound", profile: string, businessNumber: string, remoteNumber: string): Call;
  /** Among the calls in progress: a BYE, CANCEL or hang-up for its Call-ID reaches it. */
  track(call: Call): void;
  call(callId: string): Call | undefined;
  openMedia(log: Logger): Promise<MediaSession | null>;
  localMedia(media: MediaSession): LocalMedia;
  /** Answered: media flows with the profile's audio, or `joined` (the other party of a transfer). */
  begin(call: Call, negotiated: NegotiatedMedia, joined?: CallAudio): void;
  hangUp(callId: string, reason: string): Promise<boolean>;
}

export class Call {
  /** The profile's audio, or the other party's in a transfer; set when the call is answered. */
  audio: CallAudio | null = null;
  /** The other call this one's audio is joined to (a transfer); it ends with this one. */
  joinedWith: string | null = null;
  /** Cancels the INVITE of an outgoing call that is not answered yet. */
  cancel: (() => void) | null = null;
  private maxDuration: NodeJS.Timeout | undefined;
  private over = false;

  /** Its RTP ports, opened before the answer; null while not (yet) opened. */
  media: MediaSession | null = null;

  constructor(
    readonly record: CallRecord,
    readonly log: Logger,
    private readonly table: CallTable,
  ) {}

  /** Answered: the record says so and the call ends by itself after maxMs. */
  answered(codec: string, maxMs: number, onMaxDuration: () => void): void {
    this.record.status = "answered";
    this.record.codec = codec;
    this.record.answeredAt = new Date().toISOString();
    this.maxDuration = setTimeout(onMaxDuration, maxMs);
  }

  /**
   * The one "call ended" step: its media and audio released, its record closed (ended if it
   * was answered, failed otherwise), logged, and the agent told (which hangs up a call joined to
   * it in a transfer). A second end is a no-op.
   */
  async end(reason: string): Promise<void> {
    if (this.over) return;
    this.over = true;
    this.table.forget(this);
    clearTimeout(this.maxDuration);
    this.media?.stop();
    const record = this.record;
    if (this.audio && this.media) record.media = this.media.stats();
    record.endReason = reason;
    record.endedAt = new Date().toISOString();
    try {
      await this.audio?.close();
    } catch (err) {
      this.log.error({ err }, "closing the call's audio failed");
    }
    // Ended once its audio is closed: the call's trace is complete when the API says so.
    record.status = record.status === "answered" ? "ended" : "failed";
    this.log.info({ direction: record.direction, status: record.status, reason, packetsIn: record.media?.packetsIn, packetsOut: record.media?.packetsOut }, "call ended");
    await this.table.ended(this);
  }
}
