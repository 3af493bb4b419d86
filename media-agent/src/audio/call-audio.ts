/**
 * The seam between a call's media and what the agent does with it: the media session hands over
 * the caller's audio frame by frame and every 20 ms asks for one frame to send. The voice
 * pipeline plugs in here; the built-in profiles (echo, play-and-record) prove the path.
 */
import type { PcmFrame } from "./frames.js";

export interface CallInfo {
  callId: string;
  direction: "inbound" | "outbound";
  /** The agent profile (X-WA-Profile from the routing, or the outbound request's). */
  profile: string;
  businessNumber: string;
  remoteNumber: string;
  codec: string;
}

export interface CallAudio {
  /**
   * true: each of the caller's frames is handed over as soon as it has arrived in order (a
   * listener: the VAD and the STT need the audio in order, not evenly spaced, and the jitter
   * buffer's playout delay would make every turn and every barge-in later). Otherwise one frame
   * per 20 ms after the jitter buffer's delay: audio that is played on (echo, a bridge).
   */
  readonly listening?: boolean;
  /** One 20 ms frame of what the caller said, after the jitter buffer and decoding. */
  onCallerFrame(frame: PcmFrame): void;
  /** The next 20 ms the agent says; null means silence (RTP keeps flowing regardless). */
  nextAgentFrame(): PcmFrame | null;
  onDtmf?(digit: string): void;
  /** The call ended: flush recordings, stop work. */
  close(): Promise<void> | void;
}

export type TransferResult = { ok: true } | { ok: false; reason: string };

export interface CallControl {
  /** Ends the call from the agent's side (BYE). */
  hangUp(reason: string): void;
  /**
   * Calls a person (a SIP URI, through Kamailio) and, once they answer, joins this call's audio
   * to theirs: this CallAudio is closed and gets no more frames. Resolves when that happened or
   * failed (busy, no answer within ringTimeoutMs, refused).
   */
  transfer(target: string, ringTimeoutMs: number): Promise<TransferResult>;
}

export type CallAudioFactory = (call: CallInfo, control: CallControl) => CallAudio;
