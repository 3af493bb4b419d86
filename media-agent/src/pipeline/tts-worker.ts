/**
 * A speech worker: a small Node process of the agent's (started by SynthesisPool, talking over
 * its IPC channel) that runs espeak-ng or asks Piper's server, decodes their WAVs, resamples
 * them to 16 kHz, leaves out a clause's leading silence and, for an Opus call, encodes each
 * frame (codecs/opus.ts says why), off the event loop that paces every call's RTP. A process, not a thread: starting espeak-ng forks the process that starts it, and forking the agent (hundreds of MB) holds its memory map —
 * and so any of its threads that touches new memory, the event loop included — for tens of ms.
 * Forking this small process costs the agent nothing. Audio goes back as it is decoded, whole
 * 20 ms frames per message, so a caller can start playing before the clause is done.
 */
import { execFile, spawn } from "node:child_process";
import { constants, setPriority } from "node:os";
import type { Encoder } from "@evan/opus";
import { FRAME_SAMPLES, SAMPLE_RATE } from "../audio/frames.js";
import { toFrames, WavDecoder } from "../audio/wav.js";
import { packPayloads, releaseEncoder, takeEncoder, type OpusSettings, type PackedPayloads } from "../codecs/opus.js";
import { SignalResampler } from "../codecs/resample.js";
import { PiperFailure, sendPiperRequest, type PiperRequest } from "./piper-request.js";
import type { SynthesisJob, WorkerReply, WorkerRequest } from "./synthesis-pool.js";

const send = process.send?.bind(process);
if (!send) throw new Error("tts-worker.ts runs as the agent's speech worker (SynthesisPool), not on its own");

// Synthesis yields the cores to the agent's event loop: this process and the espeak-ng
// processes it starts (they inherit it) run below normal priority.
setPriority(constants.priority.PRIORITY_BELOW_NORMAL);

/** 8 KiB: ~190 ms of Piper's 22050 Hz audio per message to the agent. */
const WAV_SLICE_BYTES = 8192;
/**
 * Until a clause's first sound: 2 KiB, ~46 ms. The first frames leave ~0.8 ms after
 * the WAV's first bytes (median, the latency benchmark) where a whole 8 KiB slice first took 2.7.
 */
const FIRST_SLICE_BYTES = 2048;

const running = new Map<number, AbortController>();

process.on("message", (request: WorkerRequest) => {
  if (request.type === "cancel") return void running.get(request.id)?.abort();
  if (request.type === "espeak-version") {
    return void execFile("espeak-ng", ["--version"], { timeout: request.timeoutMs }, (err, output) =>
      reply(err ? { type: "error", id: request.id, message: err.message } : { type: "espeak-version", id: request.id, output }),
    );
  }
  const abort = new AbortController();
  running.set(request.id, abort);
  const audio = new AudioOut(request.id, request.job.wavError, request.job.opus, abort.signal);
  let finished = false;
  const finish = (error?: string) => {
    if (finished) return;
    finished = true;
    // The bytes still to decode first; a cancel meanwhile stops them (AudioOut) and says nothing.
    const over = (error?: string) => {
      running.delete(request.id);
      if (!abort.signal.aborted) reply(error === undefined ? { type: "done", id: request.id } : { type: "error", id: request.id, message: error });
      audio.close();
    };
    if (error !== undefined || abort.signal.aborted) over(error);
    else audio.whenDecoded(() => over(audio.end()));
  };
  if (request.job.engine === "espeak-ng") espeak(request.job, audio, abort.signal, finish);
  else void piper(request.job.request, audio, abort.signal, finish);
});

// The agent is gone: so is this worker, and the processes it runs.
process.on("disconnect", () => {
  for (const abort of running.values()) abort.abort();
  process.exit(0);
});

function reply(message: WorkerReply): void {
  send!(message);
}

reply({ type: "ready" });

/**
 * Piper's WAV, decoded as it arrives (AudioOut: in slices, the first ones small, so that its
 * first frames are on their way to the caller while the rest is still being resampled: about
 * 4 ms per second of 22050 Hz audio here, 10–20 ms for a clause). Its server sends it whole
 * once synthesised.
 */
async function piper(request: PiperRequest, audio: AudioOut, signal: AbortSignal, finish: (error?: string) => void): Promise<void> {
  try {
    await sendPiperRequest(request, signal, (bytes) => audio.push(bytes));
    finish();
  } catch (err) {
    // Aborted: finish says nothing (the agent has moved on).
    finish(err instanceof PiperFailure ? err.message : `Piper at ${request.baseUrl}${request.path}: ${(err as Error).message}`);
  }
}

/** espeak-ng writes a 22050 Hz WAV to stdout; it is decoded as it comes. */
function espeak(job: Extract<SynthesisJob, { engine: "espeak-ng" }>, audio: AudioOut, signal: AbortSignal, finish: (error?: string) => void): void {
  const child = spawn("espeak-ng", ["-v", job.voice, "-s", String(job.speed), "--stdout", job.text], { signal });
  let stderr = "";
  child.stdout.on("data", (bytes: Buffer) => audio.push(bytes));
  child.stderr.on("data", (bytes: Buffer) => (stderr += bytes.toString()));
  child.on("error", (err) => finish(`espeak-ng could not run: ${err.message}`));
  child.on("close", (code) => finish(code === 0 ? undefined : `espeak-ng exited ${code}: ${stderr.trim().slice(0, 200)}`));
}

/** One job's WAV bytes in, 16 kHz samples (and their Opus payloads, when asked) out to the agent in whole frames. */
class AudioOut {
  private readonly decoder = new WavDecoder();
  /** Nothing but silence so far: none of it is sent (leadingSilence). */
  private leading = true;
  private resampler: SignalResampler | null = null;
  /** 16 kHz samples not yet sent: less than a frame between pushes. */
  private held = new Int16Array(0);
  private firstByte = true;
  /**
   * Bytes still to decode, a slice per event-loop turn: a WAV arrives in reads of up to 64 KB,
   * 8–15 ms of resampling and encoding, and another clause's request or first bytes would
   * otherwise wait behind all of it.
   */
  private readonly pending: Buffer[] = [];
  private scheduled = false;
  private decoded: (() => void) | null = null;
  private closed = false;
  /** The first reason the bytes are no usable WAV; later bytes are ignored. */
  private wavError: string | null = null;
  /** The clause's own Opus encoder (an Opus call's clause), reset for it. */
  private encoder: Encoder | null;

  constructor(
    private readonly id: number,
    private readonly wavErrorPrefix: string,
    /** An Opus call's: the agent's encoder settings, so that its payloads are what the agent's own encoder would make. */
    opus: OpusSettings | undefined,
    /** The job's: once aborted, nothing more is decoded or sent. */
    private readonly signal: AbortSignal,
  ) {
    this.encoder = opus ? takeEncoder(opus) : null;
  }

  /** The job is over: its encoder goes back to the worker's pool. */
  close(): void {
    this.pending.length = 0;
    this.decoded = null;
    this.closed = true;
    if (this.encoder) releaseEncoder(this.encoder);
    this.encoder = null;
  }

  push(bytes: Buffer): void {
    if (this.firstByte) {
      this.firstByte = false;
      reply({ type: "first-byte", id: this.id, at: performance.timeOrigin + performance.now() });
    }
    this.pending.push(bytes);
    this.schedule();
  }

  /** `then` runs once every byte pushed so far is decoded, or at once when the job was aborted. */
  whenDecoded(then: () => void): void {
    this.decoded = then;
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.decodeSlice());
  }

  private decodeSlice(): void {
    this.scheduled = false;
    if (this.closed) return;
    if (this.signal.aborted) this.pending.length = 0; // nothing more is decoded; `then` still ends the job
    if (this.pending.length === 0) {
      const then = this.decoded;
      this.decoded = null;
      return then?.();
    }
    // Small slices until the first sound: its first frames then go out after one small slice.
    const size = this.leading ? FIRST_SLICE_BYTES : WAV_SLICE_BYTES;
    let slice = this.pending[0];
    if (slice.length > size) {
      this.pending[0] = slice.subarray(size);
      slice = slice.subarray(0, size);
    } else this.pending.shift();
    this.decode(slice);
    this.schedule();
  }

  private decode(bytes: Buffer): void {
    if (this.wavError !== null) return;
    try {
      const samples = this.decoder.push(bytes);
      if (samples.length) this.send(this.to16k(samples), false);
    } catch (err) {
      this.wavError = (err as Error).message;
    }
  }

  /** After the last byte: the rest of the audio, or why there was none. */
  end(): string | undefined {
    try {
      if (this.wavError === null) this.decoder.end();
    } catch (err) {
      this.wavError = (err as Error).message;
    }
    if (this.wavError !== null) return `${this.wavErrorPrefix}: ${this.wavError}`;
    this.send(this.resampler?.end() ?? new Int16Array(0), true);
    return undefined;
  }

  private to16k(samples: Int16Array): Int16Array {
    const rate = this.decoder.sampleRate!;
    if (rate === SAMPLE_RATE) return samples;
    this.resampler ??= new SignalResampler(rate, SAMPLE_RATE);
    return this.resampler.push(samples);
  }

  private send(samples: Int16Array, last: boolean): void {
    if (this.leading) {
      samples = samples.subarray(leadingSilence(samples));
      this.leading = samples.length === 0;
    }
    const all = this.held.length ? concat(this.held, samples) : samples;
    const cut = last ? all.length : all.length - (all.length % FRAME_SAMPLES);
    this.held = all.slice(cut);
    if (cut === 0) return;
    const piece = all.subarray(0, cut);
    reply({ type: "audio", id: this.id, samples: piece, ...(this.encoder ? { opus: this.encode(this.encoder, piece) } : {}) });
  }

  /** One payload per 20 ms frame, framed as the speaker frames the samples (the last one zero-padded). */
  private encode(encoder: Encoder, samples: Int16Array): PackedPayloads {
    // Each copied at once: the binding hands out a view of a buffer it reuses.
    return packPayloads(toFrames(samples).map((frame) => new Uint8Array(encoder.encode(frame))));
  }
}

/**
 * −60 dBFS: quieter than any speech sound. A synthesised clause may start with silence
 * (espeak-ng: 13 ms of zeros before some consonants; a Piper voice's padding), and a caller
 * waiting for the reply hears it as dead air before the first word: the clause starts at its
 * first sound instead.
 * Silence inside and after the clause (its pauses, the gap to the next clause) is kept.
 */
const SILENT = 33;

/** How many samples at the start are silent (all of them when none is louder than SILENT). */
function leadingSilence(samples: Int16Array): number {
  for (let i = 0; i < samples.length; i++) if (samples[i] > SILENT || samples[i] < -SILENT) return i;
  return samples.length;
}

function concat(a: Int16Array, b: Int16Array): Int16Array {
  const out = new Int16Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
