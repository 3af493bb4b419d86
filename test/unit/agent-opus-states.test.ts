/**
 * The Opus codec's libopus states outlive calls: @evan/opus's native binding never frees an
 * encoder or decoder, so an ended call's pair is reset and reused. Checked from outside: the
 * process's memory over thousands of calls, and that a reused pair encodes and decodes exactly
 * as a new one.
 */
import t from "tap";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { Decoder, Encoder } from "@evan/opus";
import { FRAME_SAMPLES } from "../../media-agent/src/audio/frames.js";
import { OpusCodec } from "../../media-agent/src/codecs/opus.js";

/** A 20 ms frame of a tone with some noise (state-dirtying input). */
function frame(n: number, hz: number): Int16Array {
  return Int16Array.from({ length: FRAME_SAMPLES }, (_, i) => Math.round(8000 * Math.sin((2 * Math.PI * hz * (n * FRAME_SAMPLES + i)) / 16000) + ((i * 7919 + n * 104729) % 601) - 300));
}

function freshEncoder(): Encoder {
  const e = new Encoder({ channels: 1, sample_rate: 16000, application: "voip" });
  e.bitrate = 20000;
  e.inband_fec = true;
  e.packet_loss = 5;
  e.complexity = 5;
  return e;
}

t.test("a call's reused libopus states encode and decode byte for byte as new ones", async (t) => {
  const earlier = new OpusCodec();
  for (let n = 0; n < 50; n++) earlier.decode(earlier.encode(frame(n, 300)).slice()); // another call's audio in both states
  earlier.close();
  const reused = new OpusCodec();
  const encoder = freshEncoder();
  const decoder = new Decoder({ channels: 1, sample_rate: 16000 });
  for (let n = 0; n < 50; n++) {
    const payload = reused.encode(frame(n, 440)).slice();
    t.same(payload, encoder.encode(frame(n, 440)).slice(), `frame ${n}: the same payload`);
    const pcm = reused.decode(payload)[0];
    t.same(pcm, new Int16Array(decoder.decode(payload).slice().buffer), `frame ${n}: the same decoded audio`);
    if (t.passing() === false) break;
  }
  reused.close();
});

t.test("after close() the codec refuses to be used (its states belong to another call)", async (t) => {
  const codec = new OpusCodec();
  codec.close();
  t.throws(() => codec.encode(frame(0, 440)), /used after close/);
  t.throws(() => codec.conceal(), /used after close/);
});

t.test("5,000 calls one after another: the process's memory stays flat (it grew ~60 KB per call before)", async (t) => {
  // Garbage collected before each reading, so what is counted is memory still held.
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  const rssMb = () => (gc(), process.memoryUsage().rss / 1048576);
  const call = () => {
    const codec = new OpusCodec();
    for (let n = 0; n < 3; n++) codec.decode(codec.encode(frame(n, 440)).slice());
    codec.close();
  };
  for (let i = 0; i < 1000; i++) call(); // warm up: the pool, V8's heap
  const before = rssMb();
  for (let i = 0; i < 5000; i++) call();
  const grown = rssMb() - before;
  t.ok(grown < 60, `RSS grew ${grown.toFixed(1)} MB over 5,000 calls (leaking, it would be ~300 MB)`);
});
