/**
 * Speech for tests and the demo: espeak-ng (Debian) sentences as WAV files in the format a
 * consumer needs, and WAVs read back at the agent's 16 kHz for comparison.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { readWav16k } from "../media-agent/src/audio/wav.js";

/** Speech from espeak-ng as a 16-bit WAV at the given rate, with silence before it. */
export function speak(text: string, file: string, rate: number, leadSilenceS = 0.5, channels = 1, trailSilenceS = 0.5): string {
  const raw = `${file}.raw.wav`;
  execFileSync("espeak-ng", ["-v", "en-us", "-s", "150", "-w", raw, text]);
  execFileSync("sox", [raw, "-r", String(rate), "-c", String(channels), "-b", "16", file, "pad", String(leadSilenceS), String(trailSilenceS)]);
  return file;
}

/**
 * baresip 1.0's aufile source must match the codec's rate and channels exactly, and baresip
 * hangs up when the file ends: 6 s of silence after the speech keep the call up.
 */
export function speakForBaresip(text: string, file: string, codec: string): string {
  const [, rate = "8000", channels = "1"] = codec.split("/");
  return speak(text, file, Number(rate), 0.5, Number(channels), 6);
}

/** A WAV's samples at 16 kHz. */
export function wav16k(file: string): Int16Array {
  return readWav16k(readFileSync(file));
}


export type TrackPart = string | { silenceS: number } | { noiseS: number };

/**
 * baresip's microphone (Opus) as a 48 kHz stereo WAV: spoken lines (espeak-ng), silences and noise
 * bursts in order. Returns each spoken line at 16 kHz (for the STT double).
 */
export function callerTrack(dir: string, parts: TrackPart[]): { wav: string; lines: Map<string, Int16Array> } {
  const lines = new Map<string, Int16Array>();
  const files: string[] = [];
  mkdirSync(dir, { recursive: true });
  parts.forEach((part, i) => {
    const file = join(dir, `part${i}.wav`);
    if (typeof part === "string") {
      speak(part, file, 16000, 0, 1, 0);
      lines.set(part, wav16k(file));
    } else if ("silenceS" in part) {
      execFileSync("sox", ["-n", "-r", "16000", "-c", "1", "-b", "16", file, "trim", "0", String(part.silenceS)]);
    } else {
      // A burst of noise (a rustle, a breath): the VAD takes it for speech, Whisper invents text on it.
      execFileSync("sox", ["-n", "-r", "16000", "-c", "1", "-b", "16", file, "synth", String(part.noiseS), "brownnoise", "vol", "0.3"]);
    }
    files.push(file);
  });
  const wav = join(dir, "caller48k.wav");
  execFileSync("sox", [...files, "-r", "48000", "-c", "2", "-b", "16", wav]);
  return { wav, lines };
}
