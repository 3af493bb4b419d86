/**
 * Text to speech, one sentence or clause per request, delivered as the agent's 16 kHz samples.
 * Two engines: Piper's HTTP server (`POST /synthesize`, piper1-gpl ≥ 1.5; older servers take
 * `POST /`), and espeak-ng, built in (a Debian package) and the default when no Piper is
 * configured. Every failure names its cause; abort stops the request or the process.
 */
import { spawn } from "node:child_process";
import { readWav16kInSlices } from "../audio/wav.js";

export interface Speech {
  samples: Int16Array;
  /** Request to the engine's first byte of audio (Piper: the response; espeak-ng: stdout), ms. */
  firstByteMs: number;
  /** Request to the whole WAV in hand, ms. */
  synthesisMs: number;
}

export interface TtsEngine {
  readonly name: string;
  synthesize(text: string, signal: AbortSignal): Promise<Speech>;
}

export class TtsError extends Error {
  override name = "TtsError";
}


export interface PiperConfig {
  baseUrl: string;
  voice?: string;
  speakerId?: number;
  lengthScale?: number;
  timeoutMs: number;
}

export class PiperTts implements TtsEngine {
  readonly name = "piper";
  /** Which endpoint this server has, learnt from the first request. */
  private path: "/synthesize" | "/" = "/synthesize";

  constructor(private readonly cfg: PiperConfig) {}

  async synthesize(text: string, signal: AbortSignal): Promise<Speech> {
    const started = performance.now();
    let res = await this.post(this.path, text, signal);
    if (res.status === 404 && this.path === "/synthesize") {
      // An older Piper server: the same JSON on "/".
      this.path = "/";
      res = await this.post(this.path, text, signal);
    }
    if (!res.ok) throw new TtsError(`Piper at ${this.cfg.baseUrl}${this.path} answered ${res.status}: ${(await res.text()).slice(0, 200)}`);
    const firstByteMs = performance.now() - started;
    const wav = Buffer.from(await res.arrayBuffer());
    try {
      return { samples: await readWav16kInSlices(wav), firstByteMs, synthesisMs: performance.now() - started };
    } catch (err) {
      throw new TtsError(`Piper at ${this.cfg.baseUrl} sent no usable WAV: ${(err as Error).message}`);
    }
  }

  private async post(path: string, text: string, signal: AbortSignal): Promise<Response> {
    const body = JSON.stringify({
      text,
      ...(this.cfg.voice ? { voice: this.cfg.voice } : {}),
      ...(this.cfg.speakerId !== undefined ? { speaker_id: this.cfg.speakerId } : {}),
      ...(this.cfg.lengthScale ? { length_scale: this.cfg.lengthScale } : {}),
    });
    try {
      return await fetch(`${this.cfg.baseUrl}${path}`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body,
        signal: AbortSignal.any([signal, AbortSignal.timeout(this.cfg.timeoutMs)]),
      });
    } catch (err) {
      if (signal.aborted) throw err;
      const cause = (err as Error).name === "TimeoutError" ? `no answer within ${this.cfg.timeoutMs} ms` : String((err as { cause?: unknown }).cause ?? err);
      throw new TtsError(`Piper at ${this.cfg.baseUrl}${path}: ${cause}`);
    }
  }
}

export interface EspeakConfig {
  voice: string;
  /** Words per minute. */
  speed: number;
}

/** espeak-ng writes a 22050 Hz WAV to stdout; resampled to 16 kHz. */
export class EspeakTts implements TtsEngine {
  readonly name = "espeak-ng";

  constructor(private readonly cfg: EspeakConfig) {}

  synthesize(text: string, signal: AbortSignal): Promise<Speech> {
    const started = performance.now();
    return new Promise((done, fail) => {
      const child = spawn("espeak-ng", ["-v", this.cfg.voice, "-s", String(this.cfg.speed), "--stdout", text], { signal });
      const chunks: Buffer[] = [];
      let firstByteMs = 0;
      let stderr = "";
      child.stdout.on("data", (c: Buffer) => {
        if (chunks.length === 0) firstByteMs = performance.now() - started;
        chunks.push(c);
      });
      child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
      child.on("error", (err) => fail(signal.aborted ? err : new TtsError(`espeak-ng could not run: ${err.message}`)));
      child.on("close", (code) => {
        if (signal.aborted) return;
        if (code !== 0) return fail(new TtsError(`espeak-ng exited ${code}: ${stderr.trim().slice(0, 200)}`));
        readWav16kInSlices(Buffer.concat(chunks)).then(
          (samples) => done({ samples, firstByteMs, synthesisMs: performance.now() - started }),
          (err: Error) => fail(new TtsError(`espeak-ng wrote no usable WAV: ${err.message}`)),
        );
      });
    });
  }
}
