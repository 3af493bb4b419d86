/** RTP stages of the media agent: packets, jitter buffer, pacer and frame clock, RTCP, DTMF. */
import { createSocket } from "node:dgram";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { pino } from "pino";
import t from "tap";
import { freePortRange } from "../../build/ports.js";
import { encodeG711 } from "../../media-agent/src/codecs/g711.js";
import { MediaSession } from "../../media-agent/src/rtp/media-session.js";
import { ArrivalJitter } from "../../media-agent/src/rtp/arrival-jitter.js";
import { DtmfReceiver } from "../../media-agent/src/rtp/dtmf.js";
import { FrameClock, Ticker, type Clock } from "../../media-agent/src/rtp/frame-clock.js";
import { JitterBuffer, type JitterOutput } from "../../media-agent/src/rtp/jitter-buffer.js";
import { isRtcp, parseRtp, RtpParseError, serializeRtp, type RtpPacket } from "../../media-agent/src/rtp/packet.js";
import { buildSenderReport, parseRtcp } from "../../media-agent/src/rtp/rtcp.js";
import { RtpPacer } from "../../media-agent/src/rtp/rtp-pacer.js";

function packet(sequence: number, opts: Partial<RtpPacket> = {}): RtpPacket {
  return { marker: false, payloadType: 111, sequence, timestamp: sequence * 960, ssrc: 0x1234, csrc: [], payload: new Uint8Array([sequence & 0xff]), ...opts };
}

t.test("RTP packets: round trip, extension and padding skipped, malformed input refused", async (t) => {
  const p = packet(65535, { marker: true, timestamp: 0xfffffff0, payload: new Uint8Array([1, 2, 3]) });
  t.same(parseRtp(serializeRtp(p)), { ...p, payload: new Uint8Array([1, 2, 3]) });
  // Header extension (1 word) + 2 bytes padding, as some stacks send.
  const raw = Buffer.from([0xb0, 0x08, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0xbe, 0xde, 0, 1, 9, 9, 9, 9, 0xaa, 0xbb, 0, 2]);
  const parsed = parseRtp(raw);
  t.same([...parsed.payload], [0xaa, 0xbb]);
  t.equal(parsed.payloadType, 8);
  for (const [bad, why] of [
    [Buffer.alloc(5), "short"],
    [Buffer.from([0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), "version 1"],
    [Buffer.from([0x8f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), "CSRC list missing"],
    [Buffer.from([0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 99]), "padding longer than the packet"],
  ] as const) {
    t.throws(() => parseRtp(bad), RtpParseError, why);
  }
  t.ok(isRtcp(buildSenderReport({ ssrc: 1, ntpMs: 0, rtpTimestamp: 0, packetCount: 0, octetCount: 0, cname: "x" })));
  t.notOk(isRtcp(serializeRtp(p)));
});

function drain(jb: JitterBuffer, n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const o: JitterOutput = jb.pop();
    out.push(o.kind === "packet" ? String(o.packet.sequence) : o.kind);
  }
  return out;
}

t.test("jitter buffer: waits for its depth, reorders, drops duplicates and late packets, conceals gaps", async (t) => {
  const jb = new JitterBuffer({ targetDelayFrames: 3 });
  t.same(drain(jb, 1), ["idle"], "idle before the target depth");
  for (const s of [10, 12, 11]) jb.push(packet(s));
  jb.push(packet(11)); // duplicate
  t.same(drain(jb, 3), ["10", "11", "12"], "reordered back");
  for (const s of [13, 15, 16, 17]) jb.push(packet(s));
  t.same(drain(jb, 5), ["13", "lost", "15", "16", "17"], "the gap at 14 is reported lost, playout continues");
  jb.push(packet(14)); // too late now
  t.same(drain(jb, 1), ["idle"], "drained: re-buffering");
  t.match(jb.stats, { duplicates: 1, late: 1, lost: 1, reordered: 1, played: 7 });
});

/** What a listener takes after each arrival (and with `tick`, at a 20 ms tick): until "idle". */
function takeArrived(jb: JitterBuffer, tick = false): string[] {
  const out: string[] = [];
  for (let o = jb.nextInOrder(tick); o.kind !== "idle"; o = jb.nextInOrder()) out.push(o.kind === "packet" ? String(o.packet.sequence) : o.kind);
  return out;
}

t.test("jitter buffer for a listener: each packet once it is in order; a gap waits for 3 later packets or 3 ticks", async (t) => {
  const jb = new JitterBuffer({ targetDelayFrames: 3 });
  jb.push(packet(10));
  t.same(takeArrived(jb), ["10"], "the first packet at once: no playout delay");
  jb.push(packet(12));
  t.same(takeArrived(jb), [], "12 waits for 11");
  jb.push(packet(11));
  t.same(takeArrived(jb), ["11", "12"], "reordered back");
  for (const s of [14, 15]) jb.push(packet(s));
  t.same(takeArrived(jb), [], "13 is waited for");
  jb.push(packet(16));
  t.same(takeArrived(jb), ["lost", "14", "15", "16"], "three packets later, 13 is given up");
  jb.push(packet(13));
  t.same(takeArrived(jb), [], "13 arriving now is late");
  jb.push(packet(19)); // 17 and 18 missing, and the stream pauses
  t.same([takeArrived(jb, true), takeArrived(jb, true)], [[], []], "two ticks: still waiting");
  t.same(takeArrived(jb, true), ["lost", "lost", "19"], "the third tick gives up the whole gap at once");
  t.same(takeArrived(jb, true), [], "nothing buffered: idle, nothing lost");
  jb.push(packet(20));
  jb.push(packet(20));
  t.same(takeArrived(jb), ["20"], "the duplicate is dropped");
  t.match(jb.stats, { played: 8, lost: 3, late: 1, duplicates: 1, reordered: 1 });
  for (const s of [30021, 30022, 30023, 30024]) jb.push(packet(s));
  t.same(takeArrived(jb), ["lost", "30021", "30022", "30023", "30024"], "a jump of 30,000 in the numbering: one concealed frame, not 30,000");
  t.equal(jb.stats.lost, 3 + 30000);
  for (const s of [30025, 30026]) jb.push(packet(s));
  t.same(drain(jb, 4), ["30025", "30026", "idle", "idle"], "played out from here on (a transfer bridges the call): on from 30025, then re-buffering");
});

t.test("jitter buffer: sequence wraparound, SSRC change and overflow", async (t) => {
  const jb = new JitterBuffer({ targetDelayFrames: 2, maxDelayFrames: 4 });
  for (const s of [65534, 0, 65535, 1]) jb.push(packet(s));
  t.same(drain(jb, 4), ["65534", "65535", "0", "1"], "65535 → 0 in order");
  for (const s of [500, 501]) jb.push(packet(s, { ssrc: 0x9999 }));
  t.same(drain(jb, 2), ["500", "501"], "a new SSRC restarts the stream");
  for (let s = 600; s < 608; s++) jb.push(packet(s, { ssrc: 0x9999 }));
  t.equal(jb.stats.overflow, 4, "beyond the maximum depth the oldest go");
  t.same(drain(jb, 4), ["604", "605", "606", "607"]);
  t.equal(jb.stats.ssrcChanges, 1);
});

/** A packet as it comes off the socket: its payload a view of the datagram's own bytes. */
function datagramPacket(sequence: number, payloadBytes: number): RtpPacket {
  const datagram = Buffer.alloc(12 + payloadBytes, (sequence * 7) & 0xff);
  return packet(sequence, { payload: datagram.subarray(12) });
}

t.test("jitter buffer: keeps its own copy of each packet, so the datagram can go (or be reused) while its audio waits", async (t) => {
  // Holding the datagrams themselves for the playout delay made each of them (and the packet
  // object around it) outlive the young generation: at 200 calls most of what every
  // mark-compact collected, pauses of the event loop that paces every call.
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  const jb = new JitterBuffer({ targetDelayFrames: 3 });
  const refs: Array<WeakRef<object>> = [];
  const push = (sequence: number, bytes: number) => {
    const p = datagramPacket(sequence, bytes);
    refs.push(new WeakRef(p), new WeakRef(p.payload.buffer));
    jb.push(p);
    p.payload.fill(0xee); // the datagram's memory reused for something else after the push
  };
  for (let s = 10; s < 15; s++) push(s, 160);
  await new Promise((done) => setImmediate(done)); // WeakRefs hold their targets until the job ends
  gc();
  t.equal(refs.filter((r) => r.deref() !== undefined).length, 0, "no pushed packet or datagram is kept alive by the buffer");
  const popped: Array<[number, number, number]> = [];
  for (let i = 0; i < 5; i++) {
    const o = jb.pop();
    if (o.kind === "packet") popped.push([o.packet.sequence, o.packet.payload.length, o.packet.payload[0]]);
  }
  t.same(popped, [10, 11, 12, 13, 14].map((s) => [s, 160, (s * 7) & 0xff]), "each packet's own bytes come out, not what the datagram holds now");
});

t.test("jitter buffer: packets of changing sizes, over many reuses of its slots, come out whole and in order", async (t) => {
  const jb = new JitterBuffer({ targetDelayFrames: 3, maxDelayFrames: 5 });
  const sizes = [160, 80, 320, 1, 160, 1200, 60];
  const out: string[] = [];
  const expected: string[] = [];
  // Arrivals two at a time, swapped (reordering), one pop per arrival: the slots are reused over and over.
  for (let s = 100; s < 400; s += 2) {
    for (const seq of [s + 1, s]) jb.push(datagramPacket(seq, sizes[seq % sizes.length]));
    for (let i = 0; i < 2; i++) {
      const o = jb.pop();
      if (o.kind !== "packet") continue;
      const { sequence, payload } = o.packet;
      out.push(`${sequence}:${payload.length}:${payload.every((b) => b === ((sequence * 7) & 0xff))}`);
    }
  }
  for (let s = 100; s < 398; s++) expected.push(`${s}:${sizes[s % sizes.length]}:true`);
  t.same(out, expected, "every packet played once, in order, with its own length and bytes");
  t.match(jb.stats, { reordered: 150, lost: 0, duplicates: 0 });
});

t.test("jitter buffer: a lasting excess after a burst is drained back to the target, ordinary jitter is not", async (t) => {
  const jb = new JitterBuffer({ targetDelayFrames: 3, maxDelayFrames: 50 });
  let seq = 100;
  for (let i = 0; i < 3; i++) jb.push(packet(seq++));
  // A burst of 10 extra packets (e.g. after a stall), then one packet per tick as usual.
  for (let i = 0; i < 10; i++) jb.push(packet(seq++));
  const played: string[] = [];
  for (let tick = 0; tick < 40; tick++) {
    played.push(...drain(jb, 1));
    jb.push(packet(seq++));
  }
  t.equal(jb.stats.drained, 10, "the burst's excess dropped once");
  t.notOk(played.includes("lost") || played.includes("idle"), "no gap and no re-buffering from draining");
  const before = jb.stats.drained;
  // Ordinary jitter: the depth swings to target + 2 and back; nothing is dropped.
  for (let tick = 0; tick < 100; tick++) {
    if (tick % 10 === 0) { jb.push(packet(seq++)); jb.push(packet(seq++)); }
    drain(jb, 1);
    if (tick % 10 !== 8 && tick % 10 !== 9) jb.push(packet(seq++));
  }
  t.equal(jb.stats.drained, before, "short swings within the slack are played out");
});

t.test("pacer: +1 sequence and +960 timestamp per packet across both wraparounds, marker only first", async (t) => {
  const sent: Buffer[] = [];
  const pacer = new RtpPacer({ payloadType: 111, ticksPerFrame: 960, ssrc: 7, initialSequence: 65534, initialTimestamp: 0xffffffff - 1000, send: (b) => sent.push(b) });
  for (let i = 0; i < 4; i++) pacer.sendFrame(new Uint8Array([i, i]));
  const packets = sent.map((b) => parseRtp(b));
  t.same(packets.map((p) => p.sequence), [65534, 65535, 0, 1]);
  t.same(packets.map((p) => p.timestamp), [0xffffffff - 1000, 0xffffffff - 40, 919, 1879]);
  t.same(packets.map((p) => p.marker), [true, false, false, false]);
  t.equal(pacer.packetCount, 4);
  t.equal(pacer.octetCount, 8);
  const random = new RtpPacer({ payloadType: 0, ticksPerFrame: 160, send: () => {} });
  t.not(random.ssrc, new RtpPacer({ payloadType: 0, ticksPerFrame: 160, send: () => {} }).ssrc, "random SSRC per stream");
});

/** A clock the test moves by hand; timers fire when their time comes. */
function fakeClock(): Clock & { advance(ms: number, step?: number): void; pending(): number } {
  let now = 0;
  const timers = new Map<number, { at: number; fn: () => void }>();
  let id = 0;
  return {
    now: () => now,
    setTimeout: (fn, ms) => (timers.set(++id, { at: now + ms, fn }), id),
    clearTimeout: (h) => void timers.delete(h as number),
    pending: () => timers.size,
    advance(ms, step = 1) {
      for (const end = now + ms; now < end; ) {
        now = Math.min(end, now + step);
        for (const [k, timer] of [...timers]) {
          if (timer.at <= now) {
            timers.delete(k);
            timer.fn();
          }
        }
      }
    },
  };
}

t.test("frame clock: first tick at once, then every 20 ms without drift; a stall is caught up", async (t) => {
  const clock = fakeClock();
  const ticks: number[] = [];
  const fc = new FrameClock(() => ticks.push(clock.now()), clock);
  fc.start();
  t.same(ticks, [0], "the first frame goes at start");
  clock.advance(1000, 7); // coarse timer granularity: ticks still land on their schedule
  t.equal(ticks.length, 51, "50 more ticks in one second");
  t.ok(ticks.every((at, i) => at >= i * 20 && at < i * 20 + 7), "each tick within the timer's granularity of its slot");
  clock.advance(100, 100); // a 100 ms stall
  t.equal(ticks.length, 56, "the five overdue ticks run back to back");
  fc.stop();
  clock.advance(100);
  t.equal(ticks.length, 56, "stopped");
});

t.test("shared clock: many calls, one timer; each call on its own drift-free schedule on the 5 ms grid", async (t) => {
  const clock = fakeClock();
  const ticks = new Map<number, number[]>();
  const clocks: FrameClock[] = [];
  const startCall = (id: number) => {
    ticks.set(id, []);
    const fc = new FrameClock(() => ticks.get(id)!.push(clock.now()), clock);
    clocks.push(fc);
    fc.start();
  };
  for (let id = 0; id < 100; id++) {
    startCall(id);
    clock.advance(3); // calls answered 3 ms apart: every phase of the frame
  }
  t.equal(Ticker.of(clock).size, 100);
  t.ok(clock.pending() <= 1, "one timer for all calls");
  clock.advance(40, 1); // the last calls' second ticks are due up to 35 ms after their start
  const before = [...ticks.values()].reduce((n, l) => n + l.length, 0);
  clock.advance(1000, 1);
  const after = [...ticks.values()].reduce((n, l) => n + l.length, 0);
  t.equal(after - before, 100 * 50, "every call ticked 50 times in one second");
  for (const [id, list] of ticks) {
    const start = id * 3;
    if (list[0] !== start) t.fail(`call ${id}: first tick at its start`);
    const anchor = list[1] - 20;
    if (anchor % 5 !== 0) t.fail(`call ${id}: on the 5 ms grid`);
    if (!list.slice(1).every((at, n) => at === anchor + (n + 1) * 20)) t.fail(`call ${id}: tick n at anchor + n·20 ms`);
    if (list[1] - list[0] < 20 || list[1] - list[0] >= 35) t.fail(`call ${id}: the second tick 20–35 ms after the first`);
  }
  const distinct = new Set([...ticks.values()].flatMap((l) => l.slice(2)).map((at) => at % 20));
  t.same([...distinct].sort((a, b) => a - b), [0, 5, 10, 15], "the timer wakes at most four times per frame");
  for (const fc of clocks.slice(0, 99)) fc.stop();
  const last = ticks.get(99)!;
  const count = last.length;
  clock.advance(100);
  t.equal(last.length, count + 5, "the remaining call keeps its clock");
  clocks[99].stop();
  t.equal(clock.pending(), 0, "no timer once every call has stopped");
});

t.test("shared clock: calls answered at a steady rate are spread over the four quarters of the frame", async (t) => {
  // One call every 50 ms: by answer time alone every call would fall in the same two quarters.
  const clock = fakeClock();
  const wakes = new Map<number, number>();
  const clocks = Array.from({ length: 40 }, () => new FrameClock(() => wakes.set(clock.now(), (wakes.get(clock.now()) ?? 0) + 1), clock));
  for (const fc of clocks) {
    fc.start();
    clock.advance(50);
  }
  wakes.clear();
  clock.advance(200, 1);
  const perQuarter = [0, 5, 10, 15].map((q) => [...wakes].filter(([at]) => at % 20 === q).reduce((n, [, calls]) => n + calls, 0) / 10);
  t.same(perQuarter, [10, 10, 10, 10], `calls per quarter of the frame: ${perQuarter.join(", ")}`);
  for (const fc of clocks) fc.stop();
});

t.test("shared clock: a call whose tick throws does not stop the others", async (t) => {
  const clock = fakeClock();
  let good = 0;
  const bad = new FrameClock((n) => {
    if (n === 2) throw new Error("broken tick");
  }, clock);
  const fine = new FrameClock(() => good++, clock);
  bad.start();
  fine.start();
  t.throws(() => clock.advance(60), /broken tick/, "the error still surfaces");
  const before = good;
  clock.advance(100);
  t.equal(good - before, 5, "the other call kept ticking: 5 ticks in the next 100 ms");
  bad.stop();
  fine.stop();
});

t.test("media session: a listener gets each frame when its packet arrives in order, played-on audio at the ticks; packets go to an address or a name", async (t) => {
  const clock = fakeClock(); // never advanced unless the test says so: no tick runs by itself
  const far = createSocket("udp4");
  await new Promise<void>((done) => far.bind(0, "127.0.0.1", done));
  t.teardown(() => far.close());
  const heard = { listener: [] as number[], playedOn: [] as number[] };
  const sentFrom = new Set<number>();
  far.on("message", (_packet, from) => sentFrom.add(from.port));
  const ports = await freePortRange(8);
  const open = async (listening: boolean, into: number[], remoteAddress: string) => {
    const session = await MediaSession.open({ host: "127.0.0.1", ports, log: pino({ level: "silent" }), rtpTimeoutMs: 60_000, clock });
    t.teardown(() => session.stop());
    // Each frame's level (its middle sample): the packet it came from.
    const audio = { listening, onCallerFrame: (f: Int16Array) => void into.push(Math.round(f[160] / 1000)), nextAgentFrame: () => null, close: () => undefined };
    const remotePort = far.address().port;
    session.start({ remoteAddress, remotePort, remoteRtcpPort: remotePort, rtcpMux: false, codec: { name: "PCMU", payloadType: 0, clockRate: 8000, channels: 1 }, ptime: 20, direction: "sendrecv" }, audio);
    return session.localPort;
  };
  // An address in the SDP is used as it is; a name is looked up.
  const local = { listener: await open(true, heard.listener, "127.0.0.1"), playedOn: await open(false, heard.playedOn, "localhost") };
  // Packet n carries a steady level of n·1000.
  const send = (seq: number) =>
    new Promise<void>((done) => {
      const payload = encodeG711(new Int16Array(160).fill(seq * 1000), "ulaw");
      const rtp = serializeRtp({ marker: false, payloadType: 0, sequence: seq, timestamp: seq * 160, ssrc: 7, payload });
      let left = 2;
      for (const port of [local.listener, local.playedOn]) far.send(rtp, port, "127.0.0.1", () => --left || done());
    });
  const arrived = async (n: number) => {
    for (let waited = 0; heard.listener.length < n && waited < 2000; waited += 5) await new Promise((r) => setTimeout(r, 5));
  };
  for (const seq of [1, 2, 3]) await send(seq);
  await arrived(3);
  t.same(heard.listener, [1, 2, 3], "the listener has each frame as it arrived, with no tick in between");
  t.same(heard.playedOn, [], "audio that is played on waits for the ticks (and the jitter buffer's depth)");
  await send(5);
  await send(4);
  await arrived(5);
  t.same(heard.listener, [1, 2, 3, 4, 5], "a reordered packet is put back in place");
  await send(7); // 6 missing
  await new Promise((r) => setTimeout(r, 50));
  t.equal(heard.listener.length, 5, "7 waits for 6");
  for (let i = 0; i < 3; i++) clock.advance(20);
  await arrived(7);
  t.equal(heard.listener[6], 7, "after three ticks 6 is concealed and 7 follows");
  t.ok(heard.playedOn.length > 0 && heard.playedOn.length <= 3, `the played-on audio got a frame per tick (${heard.playedOn.length})`);
  await new Promise((r) => setTimeout(r, 50));
  t.same([...sentFrom].sort(), [local.listener, local.playedOn].sort(), "both sessions' packets arrived, to an address and to a name");
});

t.test("RTCP sender report: RFC 3550 layout, NTP time, counts, CNAME", async (t) => {
  const sr = buildSenderReport({ ssrc: 0xdeadbeef, ntpMs: 1_700_000_000_500, rtpTimestamp: 123456, packetCount: 50, octetCount: 4000, cname: "agent@127.0.0.1" });
  t.equal(sr.length % 4, 0);
  t.equal(sr.readUInt32BE(8), 1_700_000_000 + 2208988800, "NTP seconds since 1900");
  t.equal(sr.readUInt32BE(12), 2 ** 31, "half a second as NTP fraction");
  const parsed = parseRtcp(sr);
  t.same(parsed.map((p) => p.type), ["SR", "SDES"]);
  t.match(parsed[0], { ssrc: 0xdeadbeef, packetCount: 50, octetCount: 4000 });
  t.ok(sr.includes(Buffer.from("agent@127.0.0.1")));
  t.throws(() => parseRtcp(sr.subarray(0, 20)), /claims 28 bytes/);
});

function dtmf(event: number, timestamp: number, end: boolean): RtpPacket {
  return packet(timestamp, { payloadType: 126, timestamp, payload: new Uint8Array([event, end ? 0x8a : 0x0a, 0, 160]) });
}

t.test("DTMF (RFC 4733): one digit per event despite repeated end packets; lost ends still count", async (t) => {
  const rx = new DtmfReceiver();
  const digits = [
    dtmf(5, 1000, false), dtmf(5, 1000, false), dtmf(5, 1000, true), dtmf(5, 1000, true), dtmf(5, 1000, true),
    dtmf(11, 3000, false), dtmf(11, 3000, true),
    dtmf(1, 5000, false), // its end packets are lost
    dtmf(0, 7000, true),
  ].flatMap((p) => rx.push(p));
  t.same(digits, ["5", "#", "1", "0"], "5, #, the 1 whose end was lost (reported when the next event starts), 0");
});

t.test("RFC 3550 interarrival jitter: none for a steady stream, the mean deviation for a jittery one, across a timestamp wrap", async (t) => {
  const steady = new ArrivalJitter(48000);
  for (let i = 0; i < 200; i++) steady.push(1000 + i * 20, (0xfffff000 + i * 960) >>> 0);
  t.equal(steady.jitterMs, 0, "20 ms apart with 960-sample timestamps (wrapping past 2^32): no jitter");
  const jittery = new ArrivalJitter(8000);
  for (let i = 0; i < 2000; i++) jittery.push(1000 + i * 20 + (i % 2 ? 4 : -4), i * 160);
  t.ok(Math.abs(jittery.jitterMs - 8) < 0.5, `±4 ms around the 20 ms grid: D is 8 ms each time, J → 8 (${jittery.jitterMs.toFixed(2)})`);
});
