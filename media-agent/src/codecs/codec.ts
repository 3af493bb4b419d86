/**
 * The codec stage: RTP payloads ↔ the agent's 16 kHz frames. One instance per call (codecs
 * keep state). Loss is concealed here so the pipeline always gets a frame per tick.
 */
import type { PcmFrame } from "../audio/frames.js";
import { G711Codec } from "./g711-codec.js";
import { OpusCodec } from "./opus.js";

export type CodecName = "opus" | "PCMA" | "PCMU";

export interface AudioCodec {
  readonly name: CodecName;
  /** RTP clock rate: 48000 for Opus, 8000 for G.711. */
  readonly clockRate: number;
  /** RTP timestamp increment per 20 ms frame. */
  readonly ticksPerFrame: number;
  /** The payload may be a view of a buffer the codec reuses: valid until its next encode. */
  encode(frame: PcmFrame): Uint8Array;
  /** One payload → its 20 ms frames (a 40 ms packet gives two). */
  decode(payload: Uint8Array): PcmFrame[];
  /** One 20 ms frame standing in for a lost packet. */
  conceal(): PcmFrame;
  /** The call is over: what the codec holds outside the JavaScript heap is released (Opus: to a pool). */
  close(): void;
}

export function createCodec(name: CodecName): AudioCodec {
  return name === "opus" ? new OpusCodec() : new G711Codec(name);
}
