/**
 * Speech for tests and the demo: espeak-ng (Debian) sentences as WAV files in the format a
 * consumer needs, and WAVs read back at the agent's 16 kHz for comparison.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { readWav } from "../media-agent/src/audio/wav.js";
import { resample } from "../media-agent/src/codecs/resample.js";

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
  const w = readWav(readFileSync(file));
  return w.sampleRate === 16000 ? w.samples : resample(w.samples, w.sampleRate, 16000);
}

