/**
 * "play-record": the agent plays a WAV prompt (at once: the business speaks first) and records
 * what the caller sends, to `<dir>/<call>-caller.wav`, beside `<call>-agent.wav` (what it played,
 * as sent). Proves the path end to end and leaves both sides on disk for comparison.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { CallAudio, CallControl, CallInfo } from "../audio/call-audio.js";
import { SAMPLE_RATE, silentFrame, type PcmFrame } from "../audio/frames.js";
import { writeWav } from "../audio/wav.js";

export interface PlayRecordOptions {
  prompt: PcmFrame[];
  recordDir: string;
  /** Hang up this long after the prompt ended (null: the caller hangs up). */
  hangUpAfterMs: number | null;
}

export function playRecordProfile(call: CallInfo, control: CallControl, opts: PlayRecordOptions): CallAudio {
  const heard: PcmFrame[] = [];
  const played: PcmFrame[] = [];
  let next = 0;
  let afterPrompt = 0;
  return {
    onCallerFrame(frame) {
      heard.push(frame);
    },
    nextAgentFrame() {
      const frame = next < opts.prompt.length ? opts.prompt[next++] : null;
      played.push(frame ?? silentFrame());
      if (frame === null && opts.hangUpAfterMs !== null && ++afterPrompt * 20 === opts.hangUpAfterMs) {
        control.hangUp("prompt played");
      }
      return frame;
    },
    close() {
      mkdirSync(opts.recordDir, { recursive: true });
      const base = join(opts.recordDir, safeName(call.callId));
      writeFileSync(`${base}-caller.wav`, writeWav(concat(heard), SAMPLE_RATE));
      writeFileSync(`${base}-agent.wav`, writeWav(concat(played), SAMPLE_RATE));
    },
  };
}

export function recordingPaths(recordDir: string, callId: string): { caller: string; agent: string } {
  const base = join(recordDir, safeName(callId));
  return { caller: `${base}-caller.wav`, agent: `${base}-agent.wav` };
}

function safeName(callId: string): string {
  return callId.replace(/[^A-Za-z0-9._-]/g, "_");
}

function concat(frames: PcmFrame[]): Int16Array {
  const out = new Int16Array(frames.reduce((n, f) => n + f.length, 0));
  let at = 0;
  for (const f of frames) {
    out.set(f, at);
    at += f.length;
  }
  return out;
}
