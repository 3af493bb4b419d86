/**
 * "echo": the caller hears themselves back after a fixed delay. The simplest proof that audio
 * crosses SRTP → rtpengine → agent → rtpengine → SRTP both ways.
 */
import type { CallAudio } from "../audio/call-audio.js";
import type { PcmFrame } from "../audio/frames.js";

export function echoProfile(delayFrames = 10): CallAudio {
  const queue: PcmFrame[] = [];
  return {
    onCallerFrame(frame) {
      queue.push(frame);
    },
    nextAgentFrame() {
      return queue.length > delayFrames ? queue.shift()! : null;
    },
    close() {
      queue.length = 0;
    },
  };
}
