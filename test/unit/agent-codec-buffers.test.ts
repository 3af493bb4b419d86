/**
 * The codecs reuse scratch buffers and carve decoded frames out of shared blocks, so that a
 * packet leaves almost no garbage (the young-generation collections were the event loop's
 * longest waits). What a caller would notice if that went wrong: audio of one packet turning
 * up in another, or the silence payload changing under the sender. Checked here from the
 * codec's outside: frames kept across many decodes, every packet size, the silence shortcut.
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import t from "tap";
import { FRAME_SAMPLES, type PcmFrame } from "../../media-agent/src/audio/frames.js";
import { createCodec, type CodecName } from "../../media-agent/src/codecs/codec.js";
import { SilencePayload, SILENCE_SETTLE_FRAMES } from "../../media-agent/src/codecs/silence-payload.js";
import { echoProfile } from "../../media-agent/src/profiles/echo.js";

/** Frame n of a tone whose pitch changes every frame: no two frames alike. */
function frame(n: number): PcmFrame {
  const hz = 300 + 37 * n;
  return Int16Array.from({ length: FRAME_SAMPLES }, (_, i) => Math.round(6000 * Math.sin((2 * Math.PI * hz * (n * FRAME_SAMPLES + i)) / 16000)));
}

for (const name of ["PCMU", "PCMA", "opus"] as CodecName[]) {
  t.test(`${name}: frames kept from 100 packets still hold their own audio after every later decode`, async (t) => {
    const sender = createCodec(name);
    const receiver = createCodec(name);
    const kept: PcmFrame[] = [];
    const copies: PcmFrame[] = [];
    for (let n = 0; n < 100; n++) {
      const payload = sender.encode(frame(n)).slice();
      for (const decoded of receiver.decode(payload)) {
        kept.push(decoded);
        copies.push(decoded.slice());
      }
    }
    t.equal(kept.length, 100, "one frame per 20 ms packet");
    const changed = kept.findIndex((f, i) => f.length !== FRAME_SAMPLES || f.some((s, j) => s !== copies[i][j]));
    t.equal(changed, -1, "no frame was written by a later decode");
    const distinct = new Set(kept.slice(10).map((f) => f.join(","))).size;
    t.equal(distinct, 90, "every frame is its own audio");
    sender.close();
    receiver.close();
  });
}

for (const name of ["PCMU", "PCMA"] as CodecName[]) {
  t.test(`${name}: 10, 20 and 40 ms packets decode to the same frames`, async (t) => {
    const encoder = createCodec(name);
    const narrowband: number[] = [];
    for (let n = 0; n < 40; n++) narrowband.push(...encoder.encode(frame(n)));
    const bytes = Uint8Array.from(narrowband);
    const decodeIn = (packetBytes: number) => {
      const codec = createCodec(name);
      const frames: PcmFrame[] = [];
      for (let at = 0; at < bytes.length; at += packetBytes) frames.push(...codec.decode(bytes.subarray(at, at + packetBytes)));
      return frames.map((f) => Array.from(f));
    };
    const twenty = decodeIn(160);
    t.equal(twenty.length, 40);
    t.same(decodeIn(80), twenty, "10 ms packets (two per frame)");
    t.same(decodeIn(320), twenty, "40 ms packets (two frames each)");
  });
}

t.test("the settled silence payload stays silence while the codec's encode buffer is reused for speech", async (t) => {
  const codec = createCodec("PCMU");
  const outbound = new SilencePayload(codec);
  for (let n = 0; n < SILENCE_SETTLE_FRAMES; n++) outbound.encode(null);
  const settled = outbound.encode(null).slice();
  t.ok(settled.every((b) => b === 0xff), "µ-law silence");
  codec.encode(frame(5)); // speech through the same codec (e.g. a transfer's other leg) reuses its buffer
  t.same(outbound.encode(null), settled, "still the same silence");
});

t.test("echo: each frame comes back 10 frames later as it was, from a copy (the decoder's frame can go or be reused)", async (t) => {
  // Kept in a queue for 200 ms, the decoder's frames outlived the young generation: old-generation
  // garbage that every mark-compact (an event-loop pause for every call) had to collect.
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  const echo = echoProfile(10);
  const refs: Array<WeakRef<PcmFrame>> = [];
  // In a function of its own: the test's async frame would keep the last decoded frame alive.
  const heard = ((): Array<number[] | null> => {
    const out: Array<number[] | null> = [];
    for (let n = 0; n < 30; n++) {
      const decoded = frame(n);
      refs.push(new WeakRef(decoded));
      echo.onCallerFrame(decoded);
      decoded.fill(0); // the decoder's memory, reused for its next frame
      const played = echo.nextAgentFrame();
      out.push(played ? Array.from(played) : null);
    }
    return out;
  })();
  t.same(heard.slice(0, 10), Array(10).fill(null), "silence for the first 200 ms");
  const wrong = heard.slice(10).findIndex((f, i) => f?.join(",") !== Array.from(frame(i)).join(","));
  t.equal(wrong, -1, "then frame n at tick n + 10, its own audio");
  await new Promise((done) => setImmediate(done)); // WeakRefs hold their targets until the job ends
  gc();
  const alive = refs.map((r, i) => (r.deref() === undefined ? -1 : i)).filter((i) => i >= 0);
  t.same(alive, [], "no frame handed over is kept alive by the echo");
  echo.close();
  t.equal(echo.nextAgentFrame(), null, "nothing after close");
});
