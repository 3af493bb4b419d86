/**
 * Opus through @evan/opus (libopus): encoded and decoded at 16 kHz mono — wideband, what
 * speech recognition wants — while the RTP clock stays 48 kHz (RFC 7587). The encoder uses
 * Meta's parameters (20 kbit/s, in-band FEC) at complexity 5 by default, chosen by measurement: on
 * espeak-ng speech it costs 88 µs per frame against 129 µs at libopus's default 10, with the
 * same quality (round-trip SNR 11.3 against 11.4 dB; complexity 3: 65 µs, 10.7 dB). Loss concealment is libopus's own PLC: decoding
 * a packet that is only the last TOC byte (code 0, no frame data) makes libopus conceal one
 * frame, since the binding has no way to pass a NULL packet.
 *
 * The complexity is the operator's to change (AGENT_OPUS_COMPLEXITY, 0–10, as Asterisk's and
 * FreeSWITCH's Opus settings have it): measured on espeak-ng speech with the agent's other
 * settings, an encode costs 153 µs at 10, 104 µs at 5, 77 µs at 3 and 40 µs at 1, for a
 * round-trip SNR of 11.0, 10.9, 10.6 and 10.2 dB; an echo call's CPU is mostly encoding, so at
 * 100 Opus echo calls complexity 1 took the agent from ~84 % to ~62 % of its core.
 *
 * The binding's native encoders and decoders are never freed (it has no free call and no
 * finalizer: 10,000 pairs created and dropped kept ~60 KB of RSS each, for good), so a call's
 * pair goes back to a pool when the call ends and the next call resets and reuses it: the
 * process holds as many as its busiest moment needed, and no more.
 *
 * The agent's speech is encoded before it is played, in the speech workers
 * (pipeline/tts-worker.ts), with the encoder settings below: encoding was most of an Opus
 * voice call's event-loop time while it spoke (~90–160 µs a frame; 50 calls speaking, 4–8 ms
 * of every 20). A worker encodes a clause with an encoder of its own, reset for the clause, so
 * the far end's decoder changes encoder at the edges of a clause, where espeak-ng and Piper
 * put silence; its packets are ordinary Opus packets with the call's TOC and rate. The event
 * loop's encoder still encodes everything else (silence, echo, a bridge).
 */
import { Decoder, Encoder } from "@evan/opus";
import { FRAME_SAMPLES, FrameSlab, SAMPLE_RATE, type PcmFrame } from "../audio/frames.js";
import type { AudioCodec } from "./codec.js";

/** libopus states of ended calls, reset when taken again. */
const idleEncoders: Encoder[] = [];
const idleDecoders: Decoder[] = [];

/** What an encoder in another process (a speech worker) needs to encode exactly as this process's encoders do. */
export interface OpusSettings {
  complexity: number;
}

export const DEFAULT_OPUS_COMPLEXITY = 5;

/** This process's encoder settings: the agent sets them once at start-up (setOpusSettings). */
let settings: OpusSettings = { complexity: DEFAULT_OPUS_COMPLEXITY };

export function setOpusSettings(s: OpusSettings): void {
  settings = { ...s };
}

export function opusSettings(): OpusSettings {
  return settings;
}

/** A reset encoder with the agent's settings (or those given), from the pool; give it back with releaseEncoder. */
export function takeEncoder(s: OpusSettings = settings): Encoder {
  const reused = idleEncoders.pop();
  // OPUS_RESET_STATE keeps the settings; they are set again all the same, so a reused encoder cannot differ from a new one.
  reused?.reset();
  const encoder = reused ?? new Encoder({ channels: 1, sample_rate: SAMPLE_RATE, application: "voip" });
  encoder.bitrate = 20000;
  encoder.inband_fec = true;
  encoder.packet_loss = 5;
  encoder.complexity = s.complexity as Encoder["complexity"]; // 0–10: AGENT_OPUS_COMPLEXITY is checked so
  return encoder;
}

export function releaseEncoder(encoder: Encoder): void {
  idleEncoders.push(encoder);
}

/**
 * A piece of speech's Opus payloads, one per 20 ms frame, in one buffer: payload i is
 * `bytes[ends[i − 1] … ends[i])` (from 0 for the first). One buffer, not one per frame: a
 * payload per frame made an object and an ArrayBuffer per 20 ms of the agent's speech, sent
 * over IPC and kept until played, for the collector to copy and track.
 */
export interface PackedPayloads {
  bytes: Uint8Array;
  ends: Uint32Array;
}

/** The payloads packed into one buffer (each copied). */
export function packPayloads(payloads: Uint8Array[]): PackedPayloads {
  const ends = new Uint32Array(payloads.length);
  let size = 0;
  payloads.forEach((p, i) => (ends[i] = size += p.length));
  const bytes = new Uint8Array(size);
  payloads.forEach((p, i) => bytes.set(p, i === 0 ? 0 : ends[i - 1]));
  return { bytes, ends };
}

/** A copy that owns its memory (a speech worker's payloads are views of its IPC buffer). */
export function copyPayloads(packed: PackedPayloads): PackedPayloads {
  return { bytes: packed.bytes.slice(), ends: packed.ends.slice() };
}

/** Frame i's payload: a view of the packed bytes. */
export function payloadAt(packed: PackedPayloads, i: number): Uint8Array {
  return packed.bytes.subarray(i === 0 ? 0 : packed.ends[i - 1], packed.ends[i]);
}

/**
 * Frames whose Opus payload a speech worker made along with their samples (attachOpusPayload):
 * the encode stage sends it instead of encoding the frame on the event loop. Weak: a frame and
 * its payload go together once sent. The speaker attaches a payload as it hands out the frame,
 * so the entries here are the few frames of the current tick, not every queued frame.
 */
const encodedBeforehand = new WeakMap<PcmFrame, Uint8Array>();

/** `payload` is `frame` encoded by an Opus encoder with this codec's settings (takeEncoder). */
export function attachOpusPayload(frame: PcmFrame, payload: Uint8Array): void {
  encodedBeforehand.set(frame, payload);
}

function takeDecoder(): Decoder {
  const reused = idleDecoders.pop();
  reused?.reset();
  return reused ?? new Decoder({ channels: 1, sample_rate: SAMPLE_RATE });
}

export class OpusCodec implements AudioCodec {
  readonly name = "opus" as const;
  readonly clockRate = 48000;
  readonly ticksPerFrame = 960;
  private encoder: Encoder | null = takeEncoder();
  private decoder: Decoder | null = takeDecoder();
  private readonly frames = new FrameSlab();
  private lastToc = 0x08; // a SILK wideband 20 ms TOC until a packet has been seen

  /** The call is over: its libopus states go back to the pool. Using the codec after this throws. */
  close(): void {
    if (this.encoder) releaseEncoder(this.encoder);
    if (this.decoder) idleDecoders.push(this.decoder);
    this.encoder = this.decoder = null;
  }

  encode(frame: PcmFrame): Uint8Array {
    const encoder = this.liveEncoder; // first: a closed codec throws, payload or not
    return encodedBeforehand.get(frame) ?? encoder.encode(frame);
  }

  decode(payload: Uint8Array): PcmFrame[] {
    if (payload.length === 0) return [];
    this.lastToc = payload[0];
    return toFrames(this.liveDecoder.decode(payload), this.frames);
  }

  conceal(): PcmFrame {
    const frames = toFrames(this.liveDecoder.decode(new Uint8Array([this.lastToc & 0xfc])), this.frames);
    return frames[0] ?? new Int16Array(FRAME_SAMPLES);
  }

  private get liveEncoder(): Encoder {
    return this.encoder ?? closed();
  }

  private get liveDecoder(): Decoder {
    return this.decoder ?? closed();
  }
}

function closed(): never {
  throw new Error("Opus codec used after close(): its libopus states belong to another call now");
}

/** The decoder's output (a view of the binding's one shared buffer) copied out into new frames of the slab. */
function toFrames(bytes: Uint8Array, slab: FrameSlab): PcmFrame[] {
  // At an odd offset the bytes are copied first (`new Uint8Array(view)` copies; a Buffer's slice() would not).
  const samples = bytes.byteOffset % 2 === 0 ? new Int16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >> 1) : new Int16Array(new Uint8Array(bytes).buffer);
  const frames: PcmFrame[] = [];
  for (let at = 0; at + FRAME_SAMPLES <= samples.length; at += FRAME_SAMPLES) {
    const frame = slab.take();
    frame.set(samples.subarray(at, at + FRAME_SAMPLES));
    frames.push(frame);
  }
  return frames;
}
