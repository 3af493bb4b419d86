/**
 * What the latency benchmark calls audible (bench/lib/speech-energy.ts): the level of decoded
 * 20 ms frames against -40 dBFS, and the arrival times of audible packets it searches.
 */
import t from "tap";
import { FRAME_SAMPLES } from "../../media-agent/src/audio/frames.js";
import { createCodec } from "../../media-agent/src/codecs/codec.js";
import { AudibleArrivals, frameDbfs, hasSpeechEnergy } from "../../bench/lib/speech-energy.js";

function tone(amplitude: number): Int16Array {
  const frame = new Int16Array(FRAME_SAMPLES);
  for (let i = 0; i < frame.length; i++) frame[i] = Math.round(amplitude * Math.sin((2 * Math.PI * 440 * i) / 16000));
  return frame;
}

t.test("a frame's level: speech above the floor, silence and faint noise below", async (t) => {
  t.ok(Math.abs(frameDbfs(tone(32767)) - -3) < 0.1, "a full-scale sine is -3 dBFS");
  t.ok(hasSpeechEnergy(tone(3000)), "-21 dBFS is speech energy");
  t.notOk(hasSpeechEnergy(tone(200)), "-44 dBFS is not");
  t.notOk(hasSpeechEnergy(new Int16Array(FRAME_SAMPLES)), "digital silence is not");
});

t.test("arrivals: packets are decoded and only audible ones kept, searchable by time", async (t) => {
  const encoder = createCodec("opus");
  const loud = tone(8000);
  const quiet = new Int16Array(FRAME_SAMPLES);
  const arrivals = new AudibleArrivals("opus");
  // 100–180 ms silence, 200–280 ms sound, 300–380 ms silence, 400 ms sound (20 ms apart).
  const plan: Array<[number, Int16Array]> = [];
  for (let at = 100; at <= 400; at += 20) plan.push([at, (at >= 200 && at < 300) || at === 400 ? loud : quiet]);
  for (const [at, frame] of plan) arrivals.push(encoder.encode(frame), at);
  t.equal(arrivals.packets, plan.length);
  // Opus needs a frame to ramp up and rings one frame after: allow one frame either side.
  const first = arrivals.firstAfter(0)!;
  t.ok(first >= 200 && first <= 220, `first audible at ${first}`);
  const lastOfBurst = arrivals.lastIn(200, 380)!;
  t.ok(lastOfBurst >= 280 && lastOfBurst <= 300, `the burst's last audible at ${lastOfBurst}`);
  t.notOk(arrivals.anyIn(330, 400), "nothing audible in the gap");
  t.equal(arrivals.firstAfter(330), 400, "the next sound after the gap");
  t.equal(arrivals.last, arrivals.times[arrivals.times.length - 1]);
  t.equal(arrivals.lastIn(0, 150), null, "nothing audible before the sound");
  t.equal(arrivals.firstAfter(400), null, "nothing after the last");
});
