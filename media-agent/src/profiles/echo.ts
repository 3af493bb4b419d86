/**
 * "echo": the caller hears themselves back after a fixed delay. The simplest proof that audio
 * crosses SRTP → rtpengine → agent → rtpengine → SRTP both ways.
 *
 * The delayed frames are copies in a ring the call keeps: the decoder's frames die young. Kept
 * in a queue for the delay (200 ms), each frame lived through a young-generation collection
 * or two and was moved to the old generation, where the mark-compacts (pauses of the event
 * loop that paces every call) had to collect it.
 */
import type { CallAudio } from "../audio/call-audio.js";
import { FRAME_SAMPLES, type PcmFrame } from "../audio/frames.js";

export function echoProfile(delayFrames = 10): CallAudio {
  // One slot more than the delay holds: the frame handed out stays whole until it is encoded,
  // even if the caller's next frame comes first.
  const slots: PcmFrame[] = [];
  const ring = new Int16Array(FRAME_SAMPLES * (delayFrames + 2));
  for (let at = 0; at < ring.length; at += FRAME_SAMPLES) slots.push(ring.subarray(at, at + FRAME_SAMPLES));
  let oldest = 0;
  let held = 0;
  return {
    onCallerFrame(frame) {
      // The media session hands over one frame per tick and takes one: the ring never fills.
      // Were it full, the oldest frame would go.
      if (held === slots.length) {
        oldest = (oldest + 1) % slots.length;
        held--;
      }
      slots[(oldest + held) % slots.length].set(frame);
      held++;
    },
    nextAgentFrame() {
      if (held <= delayFrames) return null;
      const frame = slots[oldest];
      oldest = (oldest + 1) % slots.length;
      held--;
      return frame;
    },
    close() {
      held = 0;
    },
  };
}
