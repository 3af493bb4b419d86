/**
 * Text to speech, one sentence or clause per request, delivered as the agent's 16 kHz samples.
 * Two engines: Piper's HTTP server (`POST /synthesize`, piper1-gpl; older servers as the
 * profile's tts.api says: piper-request.ts), and espeak-ng, built in (a Debian package) and the
 * default when no Piper is configured. Every failure names its cause; abort stops the request
 * or the process. Both leave the event loop to the calls' RTP: espeak-ng is started, Piper
 * asked, and every WAV decoded and resampled (and, for an Opus call, encoded), in the agent's
 * speech workers (synthesis-pool.ts).
 */
import { availableParallelism } from "node:os";
import { SynthesisPool, type OnAudio } from "./synthesis-pool.js";
import { opusSettings } from "../codecs/opus.js";
import { piperRequest, type PiperConfig } from "./piper-request.js";

export interface Speech {
  /** The clause's audio; null when the engine handed all of it to onAudio. */
  samples: Int16Array | null;
  /** Request to the engine's first byte of audio (Piper: of the response's body; espeak-ng: stdout), ms. */
  firstByteMs: number;
  /** Request to the whole WAV in hand, ms. */
  synthesisMs: number;
}

/** Speech asked for without onAudio: the whole clause in one. */
export type WholeSpeech = Speech & { samples: Int16Array };

export interface TtsEngine {
  readonly name: string;
  /**
   * The clause's audio. onAudio, when given, gets it in pieces as it is decoded (espeak-ng: whole
   * 20 ms frames while the process still speaks), so playback can start before the clause is done.
   * `opus`: the pieces also carry their Opus payloads, one per 20 ms frame (the last frame
   * zero-padded), encoded off the event loop for an Opus call with this process's encoder
   * settings (codecs/opus.ts); an engine may not (then the call encodes them itself).
   */
  synthesize(text: string, signal: AbortSignal): Promise<WholeSpeech>;
  synthesize(text: string, signal: AbortSignal, onAudio?: OnAudio, opus?: boolean): Promise<Speech>;
}

export class TtsError extends Error {
  override name = "TtsError";
}

/**
 * The agent's speech workers, shared by every call and engine. Two: one can start the next
 * clause's espeak-ng while the other decodes; more would only compete with the event loop
 * for the cores.
 */
const workers = new SynthesisPool(Math.min(2, availableParallelism()), (message) => new TtsError(message));

/** `espeak-ng --version`'s output, from a speech worker (the running agent's engine check: SynthesisPool.espeakVersion says why). */
export function espeakVersionFromWorker(timeoutMs: number): Promise<string> {
  return workers.espeakVersion(timeoutMs);
}

/** At the agent's start, when it has voice profiles: resolves once the speech workers are ready for the first call. */
export function startSpeechWorkers(): Promise<void> {
  return workers.warmUp();
}

export class PiperTts implements TtsEngine {
  readonly name = "piper";

  constructor(private readonly cfg: PiperConfig) {}

  synthesize(text: string, signal: AbortSignal): Promise<WholeSpeech>;
  synthesize(text: string, signal: AbortSignal, onAudio?: OnAudio, opus?: boolean): Promise<Speech>;
  async synthesize(text: string, signal: AbortSignal, onAudio?: OnAudio, opus = false): Promise<Speech> {
    const started = performance.now();
    // The request, its WAV and its decoding are a speech worker's (piper-request.ts says why).
    const job = { engine: "piper", request: piperRequest(this.cfg, text), wavError: `Piper at ${this.cfg.baseUrl} sent no usable WAV`, opus: opus ? opusSettings() : undefined } as const;
    const { samples, firstByteMs } = await workers.run(job, signal, onAudio);
    return { samples, firstByteMs, synthesisMs: performance.now() - started };
  }
}

export interface EspeakConfig {
  voice: string;
  /** Words per minute. */
  speed: number;
}

/** espeak-ng writes a 22050 Hz WAV to stdout; resampled to 16 kHz (in a speech worker). */
export class EspeakTts implements TtsEngine {
  readonly name = "espeak-ng";

  constructor(private readonly cfg: EspeakConfig) {}

  synthesize(text: string, signal: AbortSignal): Promise<WholeSpeech>;
  synthesize(text: string, signal: AbortSignal, onAudio?: OnAudio, opus?: boolean): Promise<Speech>;
  async synthesize(text: string, signal: AbortSignal, onAudio?: OnAudio, opus = false): Promise<Speech> {
    const started = performance.now();
    const job = { engine: "espeak-ng", voice: this.cfg.voice, speed: this.cfg.speed, text, wavError: "espeak-ng wrote no usable WAV", opus: opus ? opusSettings() : undefined } as const;
    const { samples, firstByteMs } = await workers.run(job, signal, onAudio);
    return { samples, firstByteMs, synthesisMs: performance.now() - started };
  }
}
