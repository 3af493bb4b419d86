/**
 * PCMA/PCMU at 8 kHz ↔ 16 kHz frames. Concealment repeats the last frame 6 dB quieter per
 * consecutive loss and goes silent after three (G.711 Appendix I in its simplest form).
 */
import { concatSamples, FRAME_SAMPLES, FrameSlab, silentFrame, type PcmFrame } from "../audio/frames.js";
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
  // Scratch for the steps between payload and frame, reused every packet (no garbage per
  // packet: at 200 calls, short-lived arrays made the young-generation collections the
  // event loop's longest waits). Sized for 20 ms; longer packets get arrays of their own.
  private readonly narrowband = new Int16Array(FRAME_SAMPLES / 2);
  private readonly payload = new Uint8Array(FRAME_SAMPLES / 2);
  private readonly frames = new FrameSlab();

  constructor(readonly name: "PCMA" | "PCMU") {
    this.law = name === "PCMA" ? "alaw" : "ulaw";
  }

  /** The payload is a view of a buffer reused by the next encode. */
  encode(frame: PcmFrame): Uint8Array {
    return encodeG711(this.down.process(frame, this.narrowband), this.law, this.payload);
  }

  decode(payload: Uint8Array): PcmFrame[] {
    this.losses = 0;
    const narrowband = decodeG711(payload, this.law, this.narrowband);
    // A 20 ms packet (the usual) is one frame: resampled straight into a new frame of the slab.
    if (narrowband.length === FRAME_SAMPLES / 2 && this.upBuffer.length === 0) {
      this.last = this.up.process(narrowband, this.frames.take());
      return [this.last];
    }
    let pcm = this.up.process(narrowband);
    // 10 ms packets leave half a frame over; 40 ms packets none.
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
