/**
 * `npm run bench -- vad`: which voice activity detector, by accuracy on noisy speech and CPU per
 * stream. Speech is espeak-ng sentences with pauses; noise is white noise and a babble of other
 * speech at several SNRs; the truth per 20 ms frame comes from the clean signal's level.
 * Prints per detector: frame accuracy, speech recall, false alarms on non-speech, µs per frame
 * and the ratio against the energy gate measured in the same process. --quick: clean and one
 * noisy condition, two detectors.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { concatSamples, FRAME_SAMPLES } from "../media-agent/src/audio/frames.js";
import { readWav16k, toFrames } from "../media-agent/src/audio/wav.js";
import { EnergyVad, WebRtcVad, type FrameClassifier } from "../media-agent/src/pipeline/vad.js";
import { benchArgs, printTable, writeResult } from "./lib/report.js";

const args = benchArgs();

const SENTENCES = [
  "What is the weather in Dusseldorf tomorrow?",
  "I would like to speak to someone about my order.",
  "Yes, that is right, thank you very much.",
  "Can you tell me when the shop opens on Sunday?",
];

function speech(dir: string): Int16Array {
  const parts: Int16Array[] = [];
  SENTENCES.forEach((text, i) => {
    const file = join(dir, `s${i}.wav`);
    execFileSync("espeak-ng", ["-v", "en-us", "-w", file, text]);
    parts.push(new Int16Array(16000 * (0.5 + i * 0.3)), readWav16k(readFileSync(file)));
  });
  parts.push(new Int16Array(16000));
  return concatSamples(parts);
}

let seed = 42;
const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;

function rms(x: Int16Array): number {
  let e = 0;
  for (const s of x) e += s * s;
  return Math.sqrt(e / x.length);
}

const pct = (x: string | number) => `${((x as number) * 100).toFixed(1)} %`;

function mix(clean: Int16Array, noise: Int16Array, snrDb: number): Int16Array {
  const gain = rms(clean) / (rms(noise) * 10 ** (snrDb / 20));
  return Int16Array.from(clean, (v, i) => Math.max(-32768, Math.min(32767, Math.round(v + gain * noise[i % noise.length]))));
}

function truth(clean: Int16Array): boolean[] {
  return toFrames(clean).map((f) => 20 * Math.log10(rms(f) / 32768 + 1e-9) > -45);
}

function score(vad: FrameClassifier, noisy: Int16Array, expected: boolean[]) {
  const frames = toFrames(noisy);
  let hit = 0, miss = 0, falseAlarm = 0, correctRejection = 0;
  const started = process.hrtime.bigint();
  frames.forEach((f, i) => {
    const said = vad.isSpeech(f);
    if (expected[i]) said ? hit++ : miss++;
    else said ? falseAlarm++ : correctRejection++;
  });
  const usPerFrame = Number(process.hrtime.bigint() - started) / 1000 / frames.length;
  return {
    accuracy: (hit + correctRejection) / frames.length,
    recall: hit / Math.max(1, hit + miss),
    falseAlarms: falseAlarm / Math.max(1, falseAlarm + correctRejection),
    usPerFrame,
  };
}

const dir = mkdtempSync(join(tmpdir(), "bench-vad-"));
try {
  const clean = speech(dir);
  const expected = truth(clean);
  const white = Int16Array.from({ length: clean.length }, () => Math.round((rnd() - 0.5) * 20000));
  const babble = speech(dir).reverse();
  const detectors: Array<[string, () => Promise<FrameClassifier>]> = [
    ["energy -40 dBFS", async () => new EnergyVad(-40)],
    ...(args.quick ? [] : ([["webrtc mode 1", () => WebRtcVad.create(1)], ["webrtc mode 2", () => WebRtcVad.create(2)]] as Array<[string, () => Promise<FrameClassifier>]>)),
    ["webrtc mode 3", () => WebRtcVad.create(3)],
  ];
  const conditions = [["clean", null, 0], ["white 20 dB", white, 20], ["white 10 dB", white, 10], ["white 0 dB", white, 0], ["babble 10 dB", babble, 10]] as const;
  console.log(`${(clean.length / 16000).toFixed(1)} s of speech+pauses, ${expected.filter(Boolean).length}/${expected.length} speech frames (one 20 ms frame is ${FRAME_SAMPLES} samples)`);
  const results: Array<Record<string, string | number>> = [];
  for (const [name, noise, snr] of args.quick ? conditions.slice(2, 3) : conditions) {
    const noisy = noise ? mix(clean, noise, snr) : clean;
    let baseline = 0;
    for (const [label, make] of detectors) {
      const vad = await make();
      const r = score(vad, noisy, expected);
      if (label.startsWith("energy")) baseline = r.usPerFrame;
      results.push({ condition: name, detector: label, ...r, cpuVsEnergy: r.usPerFrame / baseline });
    }
  }
  printTable(
    "VAD accuracy and cost",
    ["condition", "detector", "accuracy", "recall", "false alarms", "µs/frame", "CPU vs energy"],
    results.map((r) => [r.condition, r.detector, pct(r.accuracy), pct(r.recall), pct(r.falseAlarms), (r.usPerFrame as number).toFixed(2), `${(r.cpuVsEnergy as number).toFixed(2)}x`]),
  );
  writeResult(args, "vad", { seconds: clean.length / 16000, results });
} finally {
  rmSync(dir, { recursive: true, force: true });
}
