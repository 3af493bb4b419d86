/**
 * WAV files in and out: prompts (any rate, PCM 8/16-bit or float, mixed down to mono) and
 * recordings (16-bit mono). Anything else is refused with the reason.
 */
import { resample, resampleInSlices } from "../codecs/resample.js";
import { FRAME_SAMPLES, SAMPLE_RATE, type PcmFrame } from "./frames.js";

export interface Wav {
  sampleRate: number;
  samples: Int16Array;
}

const PCM = 1;
const FLOAT = 3;
const EXTENSIBLE = 0xfffe;

/** A WAV's samples at the agent's 16 kHz, resampled when the file has another rate. */
export function readWav16k(buf: Buffer): Int16Array {
  const { sampleRate, samples } = readWav(buf);
  return sampleRate === SAMPLE_RATE ? samples : resample(samples, sampleRate, SAMPLE_RATE);
}

/**
 * The same as readWav16k for a call in progress (synthesised speech): the resampling runs in
 * slices with the event loop free in between, so a long clause never holds up the 20 ms clock.
 */
export async function readWav16kInSlices(buf: Buffer): Promise<Int16Array> {
  const { sampleRate, samples } = readWav(buf);
  return sampleRate === SAMPLE_RATE ? samples : resampleInSlices(samples, sampleRate, SAMPLE_RATE);
}

export function readWav(buf: Buffer): Wav {
  if (buf.length < 12 || buf.toString("latin1", 0, 4) !== "RIFF" || buf.toString("latin1", 8, 12) !== "WAVE") {
    throw new Error("not a RIFF/WAVE file");
  }
  let format: { tag: number; channels: number; rate: number; bits: number } | null = null;
  for (let at = 12; at + 8 <= buf.length; ) {
    const id = buf.toString("latin1", at, at + 4);
    let size = buf.readUInt32LE(at + 4);
    const body = at + 8;
    if (id === "fmt ") {
      let tag = buf.readUInt16LE(body);
      if (tag === EXTENSIBLE && size >= 26) tag = buf.readUInt16LE(body + 24);
      format = { tag, channels: buf.readUInt16LE(body + 2), rate: buf.readUInt32LE(body + 4), bits: buf.readUInt16LE(body + 14) };
    } else if (id === "data") {
      if (!format) throw new Error("data chunk before fmt chunk");
      // Streams written by pipes leave the size at 0 or 0xffffffff: take what is there.
      if (size === 0 || size === 0xffffffff || body + size > buf.length) size = buf.length - body;
      return { sampleRate: format.rate, samples: decodeSamples(buf.subarray(body, body + size), format) };
    }
    at = body + size + (size & 1);
  }
  throw new Error("no data chunk");
}

function decodeSamples(data: Buffer, f: { tag: number; channels: number; bits: number }): Int16Array {
  const read = sampleReader(f.tag, f.bits);
  const width = f.bits / 8;
  const frames = Math.floor(data.length / (width * f.channels));
  const out = new Int16Array(frames);
  for (let i = 0; i < frames; i++) {
    let sum = 0;
    for (let c = 0; c < f.channels; c++) sum += read(data, (i * f.channels + c) * width);
    out[i] = Math.max(-32768, Math.min(32767, Math.round(sum / f.channels)));
  }
  return out;
}

function sampleReader(tag: number, bits: number): (b: Buffer, at: number) => number {
  if (tag === PCM && bits === 16) return (b, at) => b.readInt16LE(at);
  if (tag === PCM && bits === 8) return (b, at) => (b[at] - 128) << 8;
  if (tag === PCM && bits === 24) return (b, at) => b.readIntLE(at, 3) >> 8;
  if (tag === PCM && bits === 32) return (b, at) => b.readInt32LE(at) >> 16;
  if (tag === FLOAT && bits === 32) return (b, at) => b.readFloatLE(at) * 32767;
  throw new Error(`unsupported WAV format (format tag ${tag}, ${bits} bits): use PCM or 32-bit float`);
}

export function writeWav(samples: Int16Array, sampleRate: number): Buffer {
  const header = Buffer.alloc(44);
  header.write("RIFF", 0, "latin1");
  header.writeUInt32LE(36 + samples.length * 2, 4);
  header.write("WAVEfmt ", 8, "latin1");
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(PCM, 20);
  header.writeUInt16LE(1, 22);
  header.writeUInt32LE(sampleRate, 24);
  header.writeUInt32LE(sampleRate * 2, 28);
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write("data", 36, "latin1");
  header.writeUInt32LE(samples.length * 2, 40);
  return Buffer.concat([header, Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength)]);
}

/** 20 ms frames; the last one zero-padded. */
export function toFrames(samples: Int16Array): PcmFrame[] {
  const frames: PcmFrame[] = [];
  for (let at = 0; at < samples.length; at += FRAME_SAMPLES) {
    const frame = new Int16Array(FRAME_SAMPLES);
    frame.set(samples.subarray(at, Math.min(at + FRAME_SAMPLES, samples.length)));
    frames.push(frame);
  }
  return frames;
}
