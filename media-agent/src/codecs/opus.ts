/**
 * Opus through @evan/opus (libopus): encoded and decoded at 16 kHz mono — wideband, what
 * speech recognition wants — while the RTP clock stays 48 kHz (RFC 7587). The encoder uses
 * Meta's parameters (20 kbit/s, in-band FEC) at complexity 5, chosen by measurement: on
 * espeak-ng speech it costs 88 µs per frame against 129 µs at libopus's default 10, with the
 * same quality (round-trip SNR 11.3 against 11.4 dB; complexity 3: 65 µs, 10.7 dB). Loss concealment is libopus's own PLC: decoding
 * a packet that is only the last TOC byte (code 0, no frame data) makes libopus conceal one
 * frame, since the binding has no way to pass a NULL packet.
 */
import { Decoder, Encoder } from "@evan/opus";
import { FRAME_SAMPLES, SAMPLE_RATE, type PcmFrame } from "../audio/frames.js";
import type { AudioCodec } from "./codec.js";

export class OpusCodec implements AudioCodec {
  readonly name = "opus" as const;
  readonly clockRate = 48000;
  readonly ticksPerFrame = 960;
  private readonly encoder = new Encoder({ channels: 1, sample_rate: SAMPLE_RATE, application: "voip" });
  private readonly decoder = new Decoder({ channels: 1, sample_rate: SAMPLE_RATE });
  private lastToc = 0x08; // a SILK wideband 20 ms TOC until a packet has been seen

  constructor() {
    this.encoder.bitrate = 20000;
    this.encoder.inband_fec = true;
    this.encoder.packet_loss = 5;
    this.encoder.complexity = 5;
  }

  encode(frame: PcmFrame): Uint8Array {
    return this.encoder.encode(frame);
  }

  decode(payload: Uint8Array): PcmFrame[] {
    if (payload.length === 0) return [];
    this.lastToc = payload[0];
    return toFrames(this.decoder.decode(payload));
  }

  conceal(): PcmFrame {
    const frames = toFrames(this.decoder.decode(new Uint8Array([this.lastToc & 0xfc])));
    return frames[0] ?? new Int16Array(FRAME_SAMPLES);
  }
}

function toFrames(bytes: Uint8Array): PcmFrame[] {
  const samples = new Int16Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  const frames: PcmFrame[] = [];
  for (let at = 0; at + FRAME_SAMPLES <= samples.length; at += FRAME_SAMPLES) frames.push(samples.slice(at, at + FRAME_SAMPLES));
  return frames;
}
