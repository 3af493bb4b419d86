/**
 * PCMA/PCMU at 8 kHz ↔ 16 kHz frames. Concealment repeats the last frame 6 dB quieter per
 * consecutive loss and goes silent after three (G.711 Appendix I in its simplest form).
 */
import { FRAME_SAMPLES, silentFrame, type PcmFrame } from "../audio/frames.js";
import type { AudioCodec } from "./codec.js";
import { decodeG711, encodeG711 } from "./g711.js";
import { StreamResampler } from "./resample.js";

export class G711Codec implements AudioCodec {
  readonly clockRate = 8000;
  readonly ticksPerFrame = 160;
  private readonly law: "alaw" | "ulaw";
  private readonly down = new StreamResampler(16000, 8000);
  private readonly up = new StreamResampler(8000, 16000);
  private upBuffer: Int16Array = new Int16Array(0);
  private last: PcmFrame = silentFrame();
  private losses = 0;

  constructor(readonly name: "PCMA" | "PCMU") {
    this.law = name === "PCMA" ? "alaw" : "ulaw";
  }

  encode(frame: PcmFrame): Uint8Array {
    return encodeG711(this.down.process(frame), this.law);
  }

  decode(payload: Uint8Array): PcmFrame[] {
    this.losses = 0;
    const pcm = this.up.process(decodeG711(payload, this.law));
    const merged = new Int16Array(this.upBuffer.length + pcm.length);
    merged.set(this.upBuffer);
    merged.set(pcm, this.upBuffer.length);
    const frames: PcmFrame[] = [];
    let at = 0;
    for (; at + FRAME_SAMPLES <= merged.length; at += FRAME_SAMPLES) frames.push(merged.slice(at, at + FRAME_SAMPLES));
    this.upBuffer = merged.slice(at);
    if (frames.length) this.last = frames[frames.length - 1];
    return frames;
  }

  conceal(): PcmFrame {
    this.losses++;
    if (this.losses > 3) return silentFrame();
    const gain = 0.5 ** this.losses;
    return this.last.map((s) => Math.round(s * gain));
  }
}
