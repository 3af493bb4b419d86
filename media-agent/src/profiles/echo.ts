/**
 * "echo": the caller hears themselves back after a fixed delay. The simplest proof that audio
 * crosses SRTP → rtpengine → agent → rtpengine → SRTP both ways.
 *
 * The delayed frames are copies in a ring the call keeps (FrameRing): the decoder's frames die
 * young instead of becoming old-generation garbage after 200 ms in a queue.
 */
import type { CallAudio } from "../audio/call-audio.js";
import { FrameRing } from "../audio/frames.js";

export function echoProfile(delayFrames = 10): CallAudio {
  // The media session hands over one frame per tick and takes one, so the ring never fills; the
  // slot more than the delay holds keeps the frame handed out whole until it is encoded, even if
  // the caller's next frame comes first.
  const ring = new FrameRing(delayFrames + 2);
  return {
    onCallerFrame(frame) {
      ring.push(frame);
    },
    nextAgentFrame() {
      return ring.length > delayFrames ? ring.shift() : null;
    },
    close() {
      ring.clear();
    },
  };
}
