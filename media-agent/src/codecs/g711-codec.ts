/**
 * PCMA/PCMU at 8 kHz ↔ 16 kHz frames. Concealment repeats the last frame 6 dB quieter per
 * consecutive loss and goes silent after three (G.711 Appendix I in its simplest form).
 */
import { concatSamples, FRAME_SAMPLES, silentFrame, type PcmFrame } from "../audio/frames.js";
import type { AudioCodec } from "./codec.js";
import { decodeG711, encodeG711 } from "./g711.js";
import { StreamResampler } from "./resample.js";

const NO_SAMPLES = new Int16Array(0);

export class G711Codec implements AudioCodec {
  readonly clockRate = 8000;
  readonly ticksPerFrame = 160;
  private readonly law: "alaw" | "ulaw";
  private readonly down = new StreamResampler(16000, 8000);
  private readonly up = new StreamResampler(8000, 16000);
  private upBuffer: Int16Array = NO_SAMPLES;
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
    let pcm = this.up.process(decodeG711(payload, this.law));
    // 10 ms packets leave half a frame over; 20 and 40 ms packets (the usual) none.
    if (this.upBuffer.length > 0) pcm = concatSamples([this.upBuffer, pcm]);
    const frames: PcmFrame[] = [];
    let at = 0;
    for (; at + FRAME_SAMPLES <= pcm.length; at += FRAME_SAMPLES) frames.push(pcm.subarray(at, at + FRAME_SAMPLES));
    this.upBuffer = at < pcm.length ? pcm.slice(at) : NO_SAMPLES;
    if (frames.length) this.last = frames[frames.length - 1];
    return frames;
  }

  /** Nothing outside the JavaScript heap to release. */
  close(): void {}

  conceal(): PcmFrame {
    this.losses++;
    if (this.losses > 3) return silentFrame();
    const gain = 0.5 ** this.losses;
    return this.last.map((s) => Math.round(s * gain));
  }
}
