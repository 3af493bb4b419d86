/**
 * "play-record": the agent plays a WAV prompt (at once: the business speaks first) and records
 * what the caller sends, to `<dir>/<call>-caller.wav`, beside `<call>-agent.wav` (what it played,
 * as sent). Proves the path end to end and leaves both sides on disk for comparison.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { CallAudio, CallControl, CallInfo } from "../audio/call-audio.js";
import { callFileName, concatSamples, SAMPLE_RATE, silentFrame, type PcmFrame } from "../audio/frames.js";
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
    // Written by libuv's threads: the disk must not hold up the other calls' frame clocks.
    async close() {
      await mkdir(opts.recordDir, { recursive: true });
      const { caller, agent } = recordingPaths(opts.recordDir, call.callId);
      await Promise.all([writeFile(caller, writeWav(concatSamples(heard), SAMPLE_RATE)), writeFile(agent, writeWav(concatSamples(played), SAMPLE_RATE))]);
    },
  };
}

export function recordingPaths(recordDir: string, callId: string): { caller: string; agent: string } {
  const base = join(recordDir, callFileName(callId));
  return { caller: `${base}-caller.wav`, agent: `${base}-agent.wav` };
}
