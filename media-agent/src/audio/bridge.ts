/**
 * Two calls' audio joined (a transfer to a person): what one side says is what the other hears,
 * frame by frame. The two calls run on their own 20 ms clocks, which drift apart; a few frames of
 * slack absorb that, and beyond it the oldest frame is dropped, so the delay never grows.
 */
import type { CallAudio } from "./call-audio.js";
import type { PcmFrame } from "./frames.js";

const SLACK_FRAMES = 5;

export function bridgeAudio(): [CallAudio, CallAudio] {
  const toA: PcmFrame[] = [];
  const toB: PcmFrame[] = [];
  const end = (heard: PcmFrame[], said: PcmFrame[]): CallAudio => ({
    onCallerFrame(frame) {
      said.push(frame);
      if (said.length > SLACK_FRAMES) said.shift();
    },
    nextAgentFrame: () => heard.shift() ?? null,
    close() {
      heard.length = 0;
    },
  });
  return [end(toA, toB), end(toB, toA)];
}
