/**
 * WAV files in and out: prompts (any rate, PCM 8/16-bit or float, mixed down to mono) and
 * recordings (16-bit mono). Anything else is refused with the reason.
 */
import { resample } from "../codecs/resample.js";
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

export function readWav(buf: Buffer): Wav {
  const decoder = new WavDecoder();
  const samples = decoder.push(buf);
  decoder.end();
  return { sampleRate: decoder.sampleRate!, samples };
}

interface WavFormat {
  tag: number;
  channels: number;
  rate: number;
  bits: number;
}

/**
 * A WAV as it arrives (a synthesiser's stdout, an HTTP body): push() bytes, get the samples
 * decoded so far (mono, at the file's rate, `sampleRate` once the header is in); end() says
 * whether the stream was a usable WAV. Pushed whole, the same samples as readWav.
 */
export class WavDecoder {
  /** Bytes before the data chunk's samples, and a part sample frame after them. */
  private pending: Buffer = Buffer.alloc(0);
  private format: WavFormat | null = null;
  private read: ((b: Buffer, at: number) => number) | null = null;
  /** Data bytes still to come: the chunk's size, or Infinity when the size is not known. */
  private dataLeft = -1;

  get sampleRate(): number | null {
    return this.dataLeft >= 0 ? this.format!.rate : null;
  }

  push(bytes: Buffer): Int16Array {
    if (this.dataLeft === 0) return EMPTY; // chunks after the data are not read
    this.pending = this.pending.length ? Buffer.concat([this.pending, bytes]) : bytes;
    if (this.dataLeft < 0 && !this.findData(false)) return EMPTY;
    return this.decode();
  }

  /** The stream is over: throws the reason when it was no WAV (a data size beyond it: what arrived is the audio). */
  end(): void {
    if (this.dataLeft < 0) this.findData(true);
  }

  /** Walks the chunks up to the data chunk; false while its header has not arrived yet. */
  private findData(atEnd: boolean): boolean {
    const buf = this.pending;
    if (buf.length < 12) {
      if (atEnd) throw new Error("not a RIFF/WAVE file");
      return false;
    }
    if (buf.toString("latin1", 0, 4) !== "RIFF" || buf.toString("latin1", 8, 12) !== "WAVE") throw new Error("not a RIFF/WAVE file");
    for (let at = 12; at + 8 <= buf.length; ) {
      const id = buf.toString("latin1", at, at + 4);
      const size = buf.readUInt32LE(at + 4);
      const body = at + 8;
      if (id === "data") {
        if (!this.format) throw new Error("data chunk before fmt chunk");
        this.read = sampleReader(this.format.tag, this.format.bits);
        // Streams written by pipes leave the size at 0 or 0xffffffff: take what is there.
        this.dataLeft = size === 0 || size === 0xffffffff ? Infinity : size;
        this.pending = buf.subarray(body);
        return true;
      }
      if (body + size > buf.length) break; // the rest of this chunk is still to come
      if (id === "fmt ") {
        let tag = buf.readUInt16LE(body);
        if (tag === EXTENSIBLE && size >= 26) tag = buf.readUInt16LE(body + 24);
        this.format = { tag, channels: buf.readUInt16LE(body + 2), rate: buf.readUInt32LE(body + 4), bits: buf.readUInt16LE(body + 14) };
      }
      at = body + size + (size & 1);
    }
    if (atEnd) throw new Error("no data chunk");
    return false;
  }

  private decode(): Int16Array {
    const { channels, bits } = this.format!;
    const frameBytes = (bits / 8) * channels;
    const available = Math.min(this.pending.length, this.dataLeft);
    const whole = available - (available % frameBytes);
    const data = this.pending.subarray(0, whole);
    this.pending = this.pending.subarray(whole);
    this.dataLeft -= whole;
    return decodeSamples(data, this.format!, this.read!);
  }
}

const EMPTY = new Int16Array(0);

function decodeSamples(data: Buffer, f: WavFormat, read: (b: Buffer, at: number) => number): Int16Array {
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
  // One copy for all the frames (the last one padded), each frame a view of it: a buffer per frame
  // made an ArrayBuffer, its backing store and its tracking for the collector per 20 ms of audio
  // (a prompt is kept for the agent's life). A copy, not views of `samples`, which the caller
  // may reuse.
  const copy = new Int16Array(Math.ceil(samples.length / FRAME_SAMPLES) * FRAME_SAMPLES);
  copy.set(samples);
  const frames: PcmFrame[] = [];
  for (let at = 0; at < copy.length; at += FRAME_SAMPLES) frames.push(copy.subarray(at, at + FRAME_SAMPLES));
  return frames;
}
