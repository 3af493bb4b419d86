/**
 * `npm run bench -- rtpengine`: what rtpengine costs per call between Meta's SDES-SRTP and the
 * agent's plain RTP. One real rtpengine (build/rtpengine.ts: userspace forwarding, `--table=-1`,
 * no kernel module) gets N concurrent calls, offered and answered over ng with the routing's own
 * flags for a user-initiated call (routing/policy/media.ts: offerTowardAgentFlags on Meta's
 * offer, answerTowardMetaFlags on the agent's answer). This process plays both ends on
 * loopback: Meta (RTP/SAVP, AES_CM_128_HMAC_SHA1_80, Opus 48000/2 + telephone-event, as in
 * shared/docs/whatsapp-sip.md) and the agent (RTP/AVP), each sending 20 ms packets:
 *   - pass-through: the agent answers Opus, so rtpengine only swaps SRTP for RTP;
 *   - transcoding: the agent answers PCMA only, so rtpengine decodes and encodes Opus⇄PCMA.
 * Per run: rtpengine's CPU (utime+stime of all its threads, /proc) over the measured window,
 * per call, and with no call at all (idle); packets sent, received and lost each way. Every
 * packet is checked: SRTP authenticates (rtpengine decrypts what we protect, we unprotect what
 * it sends), the payload type is the negotiated one, pass-through payloads and timestamps arrive
 * byte for byte as sent, transcoded PCMA has 160 bytes; on a sample of calls the transcoded
 * audio is decoded and must still be the tone that was sent, at about its level. Transcoding ÷
 * pass-through ratios come from the same run. This process's own CPU, event-loop delay and late
 * sends are reported too: a starved load generator sends in bursts, and rtpengine's transcoder
 * drops what its threads then reorder. --quick: 10 calls, 1.5 s a mode.
 */
import { createSocket, type Socket } from "node:dgram";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { setImmediate } from "node:timers/promises";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { sleep } from "../build/kamailio.js";
import { freePort, freePortRange } from "../build/ports.js";
import { startRtpengine, type RtpengineProcess } from "../build/rtpengine.js";
import { listCalls, ngCommand, ngFlagsFromKamailio, type Bencoded } from "../build/rtpengine-ng.js";
import { concatSamples, SAMPLE_RATE } from "../media-agent/src/audio/frames.js";
import { decodeG711, encodeG711 } from "../media-agent/src/codecs/g711.js";
import { OpusCodec } from "../media-agent/src/codecs/opus.js";
import { parseRtp, serializeRtp, type RtpPacket } from "../media-agent/src/rtp/packet.js";
import { parseSdp } from "../media-agent/src/sdp/sdp.js";
import { answerTowardMetaFlags, META_OPUS_FMTP, offerTowardAgentFlags, type MediaSettings } from "../routing/policy/media.js";
import { benchArgs, cpuSeconds, printTable, writeResult } from "./lib/report.js";
import { cryptoLine, newSrtpKeys, parseCryptoLine, SrtpSession } from "./lib/srtp.js";

type Mode = "pass-through" | "transcoding";

const args = benchArgs();
const SWEEP = args.quick ? [10] : [25, 50, 100];
const MODES: Mode[] = ["pass-through", "transcoding"];
/** Media flows this long before the CPU window opens (codec set-up, first packets). */
const WARM_UP_MS = args.quick ? 500 : 1000;
const MEASURE_MS = args.quick ? 1500 : 4000;
const IDLE_MS = args.quick ? 500 : 2000;
/** After the last packet is sent: what is still in flight arrives. */
const DRAIN_MS = 300;
const FRAME_MS = 20;
/** The sender works in this many groups of calls, 2 ms apart, so no burst fills a socket buffer. */
const SEND_GROUPS = 10;
/** Calls whose transcoded audio is decoded and checked (all of them are counted and checked by size). */
const AUDIO_SAMPLE_CALLS = 5;
const SETTINGS: MediaSettings = { srtpMode: "SDES", directions: null };
const HOST = "127.0.0.1";
const OPUS_PT = 111;
const PCMA_PT = 8;
/** Each side's tone: what reaches the other side must still be mostly this frequency. */
const META_TONE_HZ = 1000;
const AGENT_TONE_HZ = 600;
const TONE_AMPLITUDE = 8000;
/** Sequence numbers start just below the wrap, so the SRTP rollover counter moves 0.8 s into each run. */
const FIRST_SEQ = 65536 - 40;
/** Room for a few seconds of one call's packets, so that a pause of this process's event loop loses none. */
const SOCKET_BUFFER_BYTES = 256 * 1024;
/** ng is UDP: a command whose answer does not come within this is sent again, as Kamailio's module does. */
const NG_TIMEOUT_MS = 2000;
const NG_TRIES = 3;
const NG_PARALLEL = 10;
/**
 * More late sends than this and the run says so: rtpengine then gets bursts, which cost it less
 * per packet in pass-through (more packets per wake-up) and make its transcoder drop packets.
 */
const STARVED_LATE_PCT = 5;

// ---------------------------------------------------------------- what each side sends

/** One second of a tone at `rate` in 20 ms frames: cycles without a seam (whole periods). */
function toneFrames(hz: number, rate: number): Int16Array[] {
  const perFrame = (rate * FRAME_MS) / 1000;
  return Array.from({ length: 1000 / FRAME_MS }, (_, f) =>
    Int16Array.from({ length: perFrame }, (_, i) => Math.round(TONE_AMPLITUDE * Math.sin((2 * Math.PI * hz * (f * perFrame + i)) / rate))),
  );
}

function opusFrames(hz: number): Buffer[] {
  const codec = new OpusCodec();
  // Two cycles, keeping the second: the encoder has settled, so the loop plays evenly.
  const frames = toneFrames(hz, SAMPLE_RATE);
  return [...frames, ...frames].map((f) => Buffer.from(codec.encode(f))).slice(frames.length);
}

const PAYLOADS = {
  metaOpus: opusFrames(META_TONE_HZ),
  agentOpus: opusFrames(AGENT_TONE_HZ),
  agentPcma: toneFrames(AGENT_TONE_HZ, 8000).map((f) => Buffer.from(encodeG711(f, "alaw"))),
};

interface AudioCheck {
  /** Share of the energy at the sent tone's frequency: 1 for a pure tone, ~0 for another sound. */
  toneShare: number;
  /** Level against what was sent, dB. */
  levelDb: number;
}

/** Decoded audio against the tone that was sent, over 100 ms blocks (a lost packet costs its block). */
function checkAudio(frames: Int16Array[], rate: number, hz: number): AudioCheck {
  const samples = concatSamples(frames);
  const block = rate / 10;
  let tone = 0;
  let total = 0;
  let counted = 0;
  for (let at = 0; at + block <= samples.length; at += block, counted += block) {
    let re = 0;
    let im = 0;
    for (let i = 0; i < block; i++) {
      const x = samples[at + i];
      re += x * Math.cos((2 * Math.PI * hz * i) / rate);
      im += x * Math.sin((2 * Math.PI * hz * i) / rate);
      total += x * x;
    }
    tone += (2 * (re * re + im * im)) / block;
  }
  const rms = Math.sqrt(total / Math.max(1, counted));
  return { toneShare: total === 0 ? 0 : tone / total, levelDb: 20 * Math.log10(rms / (TONE_AMPLITUDE / Math.SQRT2)) };
}

/** What decoded transcoded audio must at least be: the tone, at about the level sent. */
const AUDIO_OK = { minToneShare: 0.8, maxLevelDb: 6 };

// ---------------------------------------------------------------- one call, both ends

interface Direction {
  sent: number;
  /** Counted frames that arrived, each once (by the sequence number, which rtpengine keeps). */
  received: number;
  seen: Uint8Array;
  /** Failed SRTP authentication, wrong payload type, or a payload that is not what was sent. */
  bad: number;
  firstBad: string | null;
  /** Decoded audio of a sampled call, received in the measured window. */
  audio: Int16Array[];
}

const newDirection = (frames: number): Direction => ({ sent: 0, received: 0, seen: new Uint8Array(frames + 1), bad: 0, firstBad: null, audio: [] });

/**
 * Parses and counts a packet by the frame its sequence number says it carries; null for the
 * uncounted flush frame, duplicates and malformed packets, which are not checked further.
 */
function countPacket(d: Direction, rtp: Buffer, countedFrames: number): { packet: RtpPacket; frame: number } | null {
  let packet: RtpPacket;
  try {
    packet = parseRtp(rtp);
  } catch (err) {
    rejectPacket(d, (err as Error).message);
    return null;
  }
  const frame = (packet.sequence - FIRST_SEQ) & 0xffff;
  if (frame > countedFrames) {
    rejectPacket(d, `sequence number ${packet.sequence} was never sent`);
    return null;
  }
  if (frame === countedFrames || d.seen[frame]) return null;
  d.seen[frame] = 1;
  d.received++;
  return { packet, frame };
}

/** Pass-through: the payload and timestamp are the sender's, byte for byte. */
function checkPassThrough(d: Direction, p: RtpPacket, frame: number, sent: Buffer[]): void {
  if (p.payloadType !== OPUS_PT) return rejectPacket(d, `payload type ${p.payloadType}, want ${OPUS_PT}`);
  if (p.timestamp !== frame * 960) return rejectPacket(d, `timestamp ${p.timestamp} for frame ${frame}, want ${frame * 960}`);
  if (!sent[frame % sent.length].equals(p.payload)) rejectPacket(d, `Opus payload of frame ${frame} is not what was sent`);
}

function rejectPacket(d: Direction, why: string): void {
  d.bad++;
  d.firstBad ??= why;
}

class BenchCall {
  readonly callId: string;
  /** Meta's socket (SRTP) and the agent's (RTP). */
  readonly meta: Socket = createSocket({ type: "udp4", recvBufferSize: SOCKET_BUFFER_BYTES });
  readonly agent: Socket = createSocket({ type: "udp4", recvBufferSize: SOCKET_BUFFER_BYTES });
  readonly toAgent: Direction;
  readonly toMeta: Direction;
  private readonly metaKeys = newSrtpKeys();
  private readonly metaSrtp = new SrtpSession(this.metaKeys);
  private rtpengineSrtp: SrtpSession | null = null;
  /** rtpengine's ports toward each side, from the SDPs it wrote. */
  private metaTarget = 0;
  private agentTarget = 0;
  private readonly ssrc: { meta: number; agent: number };
  private metaDecoder: OpusCodec | null = null;
  private readonly metaPackets: Buffer[] = [];
  private readonly agentPackets: Buffer[] = [];
  recording = false;
  /** Packets from anyone but rtpengine's port for that side, ignored. */
  foreign = 0;

  constructor(
    readonly index: number,
    readonly mode: Mode,
    private readonly ng: { host: string; port: number },
    /** Frames counted each way; one more is sent after them, uncounted (see run). */
    private readonly countedFrames: number,
  ) {
    this.toAgent = newDirection(countedFrames);
    this.toMeta = newDirection(countedFrames);
    this.ssrc = { meta: 0x10000000 + index, agent: 0x20000000 + index };
    this.callId = `bench-rtpengine-${mode}-${index}-${process.pid}`;
    if (mode === "transcoding" && index < AUDIO_SAMPLE_CALLS) this.metaDecoder = new OpusCodec();
  }

  async open(): Promise<void> {
    await Promise.all([this.meta, this.agent].map((s) => new Promise<void>((done) => s.bind(0, HOST, done))));
    // Only what our rtpengine sends from the port it gave that side: a port this process got from
    // the kernel may have been another program's, and its old peer may still be sending there.
    this.meta.on("message", (msg, from) => (from.port === this.metaTarget && from.address === HOST ? this.fromRtpengineToMeta(msg) : this.foreign++));
    this.agent.on("message", (msg, from) => (from.port === this.agentTarget && from.address === HOST ? this.fromRtpengineToAgent(msg) : this.foreign++));
    for (const s of [this.meta, this.agent]) s.on("error", (err) => rejectPacket(s === this.meta ? this.toMeta : this.toAgent, `socket: ${err.message}`));
  }

  /** Meta's INVITE offer through rtpengine to the agent, and the agent's answer back. */
  async negotiate(): Promise<void> {
    const metaOffer = [
      "v=0", `o=- ${this.index + 1} 1 IN IP4 ${HOST}`, "s=-", `c=IN IP4 ${HOST}`, "t=0 0",
      `m=audio ${this.meta.address().port} RTP/SAVP ${OPUS_PT} 126`,
      `a=rtpmap:${OPUS_PT} opus/48000/2`, `a=fmtp:${OPUS_PT} ${META_OPUS_FMTP}`, "a=rtpmap:126 telephone-event/8000",
      cryptoLine(1, this.metaKeys), "a=ptime:20", "a=sendrecv", "",
    ].join("\r\n");
    const offer = await this.ngSdp("offer", offerTowardAgentFlags(SETTINGS), metaOffer, {});
    const towardAgent = parseSdp(offer).media[0];
    if (towardAgent.proto !== "RTP/AVP") throw new Error(`rtpengine offered the agent ${towardAgent.proto}, not RTP/AVP`);
    const want = this.mode === "pass-through" ? "opus" : "PCMA";
    const pt = towardAgent.attributes.find((a) => a.name === "rtpmap" && a.value?.split(" ")[1]?.startsWith(`${want}/`))?.value?.split(" ")[0];
    if (!pt) throw new Error(`rtpengine's offer to the agent has no ${want}: ${offer}`);
    this.agentTarget = towardAgent.port;
    const agentAnswer = [
      "v=0", `o=- ${this.index + 1} 1 IN IP4 ${HOST}`, "s=-", `c=IN IP4 ${HOST}`, "t=0 0",
      `m=audio ${this.agent.address().port} RTP/AVP ${pt}`,
      this.mode === "pass-through" ? `a=rtpmap:${pt} opus/48000/2` : `a=rtpmap:${pt} PCMA/8000`, "a=ptime:20", "a=sendrecv", "",
    ].join("\r\n");
    const answer = await this.ngSdp("answer", answerTowardMetaFlags(SETTINGS), agentAnswer, { "to-tag": "agent" });
    const towardMeta = parseSdp(answer).media[0];
    if (towardMeta.proto !== "RTP/SAVP") throw new Error(`rtpengine answered Meta ${towardMeta.proto}, not RTP/SAVP`);
    if (!towardMeta.formats.includes(String(OPUS_PT))) throw new Error(`rtpengine's answer to Meta lost Opus: ${answer}`);
    this.metaTarget = towardMeta.port;
    this.rtpengineSrtp = new SrtpSession(parseCryptoLine(answer));
  }

  private async ngSdp(command: string, flags: string, sdp: string, extra: Record<string, Bencoded>): Promise<string> {
    const reply = await ngWithRetries(this.ng, { ...ngFlagsFromKamailio(flags), ...extra, command, "call-id": this.callId, "from-tag": "meta", sdp });
    if (reply.result !== "ok" || typeof reply.sdp !== "string") throw new Error(`rtpengine ${command} failed: ${JSON.stringify(reply)}`);
    return reply.sdp;
  }

  /**
   * Both sides' packets for the whole run, the counted frames and the flush frame, SRTP already
   * applied: built before the clock starts, so that sending costs this process little and it
   * keeps pace with many calls.
   */
  prepare(): void {
    const [payloadType, payloads, ticks] = this.mode === "pass-through" ? [OPUS_PT, PAYLOADS.agentOpus, 960] : [PCMA_PT, PAYLOADS.agentPcma, 160];
    for (let n = 0; n <= this.countedFrames; n++) {
      const marker = n === 0;
      const sequence = (FIRST_SEQ + n) & 0xffff;
      const metaPayload = PAYLOADS.metaOpus[n % PAYLOADS.metaOpus.length];
      this.metaPackets.push(this.metaSrtp.protect(serializeRtp({ marker, sequence, payloadType: OPUS_PT, timestamp: n * 960, ssrc: this.ssrc.meta, payload: metaPayload })));
      this.agentPackets.push(serializeRtp({ marker, sequence, payloadType, timestamp: n * ticks, ssrc: this.ssrc.agent, payload: payloads[n % payloads.length] }));
    }
  }

  /** Frame `n` of both sides. */
  send(n: number): void {
    this.meta.send(this.metaPackets[n], this.metaTarget, HOST);
    this.agent.send(this.agentPackets[n], this.agentTarget, HOST);
    if (n < this.countedFrames) {
      this.toAgent.sent++;
      this.toMeta.sent++;
    }
  }

  /** What the agent gets: Opus exactly as Meta sent it, or 20 ms of PCMA. */
  private fromRtpengineToAgent(msg: Buffer): void {
    const d = this.toAgent;
    if (isRtcp(msg)) return;
    const counted = countPacket(d, msg, this.countedFrames);
    if (!counted) return;
    const p = counted.packet;
    if (this.mode === "pass-through") return checkPassThrough(d, p, counted.frame, PAYLOADS.metaOpus);
    if (p.payloadType !== PCMA_PT) return rejectPacket(d, `payload type ${p.payloadType}, want ${PCMA_PT}`);
    if (p.payload.length !== 160) return rejectPacket(d, `PCMA payload of ${p.payload.length} bytes, want 160`);
    if (this.recording && this.index < AUDIO_SAMPLE_CALLS) d.audio.push(decodeG711(p.payload, "alaw"));
  }

  /** What Meta gets: SRTP that authenticates, Opus (as the agent sent it, in pass-through). */
  private fromRtpengineToMeta(msg: Buffer): void {
    const d = this.toMeta;
    if (isRtcp(msg)) return;
    let rtp: Buffer;
    try {
      rtp = this.rtpengineSrtp!.unprotect(msg);
    } catch (err) {
      return rejectPacket(d, (err as Error).message);
    }
    const counted = countPacket(d, rtp, this.countedFrames);
    if (!counted) return;
    const p = counted.packet;
    if (this.mode === "pass-through") return checkPassThrough(d, p, counted.frame, PAYLOADS.agentOpus);
    if (p.payloadType !== OPUS_PT) return rejectPacket(d, `payload type ${p.payloadType}, want ${OPUS_PT}`);
    if (!this.metaDecoder) return;
    // Decoded for every packet (the decoder needs them in order), kept in the measured window.
    const frames = this.metaDecoder.decode(p.payload);
    if (this.recording) d.audio.push(...frames);
  }

  async close(): Promise<void> {
    // A call that never got an offer through is not rtpengine's, and main checks that none is left.
    await ngWithRetries(this.ng, { command: "delete", "call-id": this.callId, "from-tag": "meta" }).catch(() => undefined);
    await Promise.all([this.meta, this.agent].map((s) => new Promise<void>((done) => s.close(() => done()))));
  }
}

async function ngWithRetries(ng: { host: string; port: number }, command: Record<string, Bencoded>): Promise<Record<string, Bencoded>> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await ngCommand(ng, command, NG_TIMEOUT_MS);
    } catch (err) {
      if (attempt === NG_TRIES) throw err;
    }
  }
}

/** RTCP shares the RTP port only when muxed; rtpengine's own reports are not media. */
function isRtcp(msg: Buffer): boolean {
  return msg.length >= 2 && msg[1] >= 200 && msg[1] <= 204;
}

// ---------------------------------------------------------------- a run

interface RunFigures {
  mode: Mode;
  calls: number;
  measuredS: number;
  /** rtpengine's CPU over the window: per cent of one core, in all and per call. */
  cpuPct: number;
  cpuPerCallPct: number;
  toAgent: { sent: number; received: number; lost: number; bad: number; firstBad: string | null };
  toMeta: { sent: number; received: number; lost: number; bad: number; firstBad: string | null };
  /** Transcoding: share of the decoded audio's energy at the sent tone, worst sampled call (1 = pure). */
  /** Packets that came from elsewhere than rtpengine's ports (another program's old media), ignored. */
  foreignPackets: number;
  /** This process (both ends of every call) over the window: its CPU and worst event-loop delay. A loaded load generator loses packets itself. */
  benchCpuPct: number;
  benchLoopMaxMs: number;
  /** Packets this process sent more than a frame (20 ms) after their time: a burst follows each. */
  lateSendPct: number;
  /** Late sends above STARVED_LATE_PCT: the machine was too busy for this run's figures to stand for rtpengine alone. */
  loadGeneratorStarved: boolean;
  /** Transcoding: the decoded audio of the sampled calls, worst of them each way. */
  audioToAgent: AudioCheck | null;
  audioToMeta: AudioCheck | null;
}

async function run(rtpengine: RtpengineProcess, mode: Mode, callCount: number): Promise<RunFigures> {
  const countedFrames = Math.round((WARM_UP_MS + MEASURE_MS) / FRAME_MS);
  const warmUpFrames = Math.round(WARM_UP_MS / FRAME_MS);
  const calls = Array.from({ length: callCount }, (_, i) => new BenchCall(i, mode, rtpengine.ng, countedFrames));
  try {
    await Promise.all(calls.map((c) => c.open()));
    // A few offer/answer exchanges at a time, as calls arriving together would.
    for (let at = 0; at < calls.length; at += NG_PARALLEL) await Promise.all(calls.slice(at, at + NG_PARALLEL).map((c) => c.negotiate()));
    for (const c of calls) c.prepare();
    let cpuStart = 0;
    let windowStart = 0;
    let cpuEnd = 0;
    let windowEnd = 0;
    let benchCpu = process.cpuUsage();
    const loopDelay = monitorEventLoopDelay({ resolution: 5 });
    const started = performance.now();
    const slotMs = FRAME_MS / SEND_GROUPS;
    let lateSlots = 0;
    // One frame more than counted: a transcoding rtpengine holds one 20 ms frame in its codec
    // pipeline, and this one pushes the last counted frame out.
    for (let slot = 0; slot < (countedFrames + 1) * SEND_GROUPS; slot++) {
      const frame = Math.floor(slot / SEND_GROUPS);
      const group = slot % SEND_GROUPS;
      if (group === 0 && (frame === warmUpFrames || frame === countedFrames)) {
        const [cpu, now] = [cpuSeconds(rtpengine.pid), performance.now()];
        if (frame === warmUpFrames) {
          [cpuStart, windowStart, benchCpu] = [cpu, now, process.cpuUsage()];
          loopDelay.enable();
        } else {
          [cpuEnd, windowEnd, benchCpu] = [cpu, now, process.cpuUsage(benchCpu)];
          loopDelay.disable();
        }
        for (const c of calls) c.recording = frame === warmUpFrames;
      }
      if (frame < countedFrames && performance.now() - (started + slot * slotMs) > FRAME_MS) lateSlots++;
      for (let i = group; i < calls.length; i += SEND_GROUPS) calls[i].send(frame);
      const wait = started + (slot + 1) * slotMs - performance.now();
      // Behind time, the due packets go out at once, but the receivers get their turn in between.
      await (wait > 0 ? sleep(wait) : setImmediate());
    }
    await sleep(DRAIN_MS);
    const measuredS = (windowEnd - windowStart) / 1000;
    const cpuPct = (100 * (cpuEnd - cpuStart)) / measuredS;
    const total = (pick: (c: BenchCall) => Direction) => {
      const sum = { sent: 0, received: 0, lost: 0, bad: 0, firstBad: null as string | null };
      for (const c of calls) {
        const d = pick(c);
        sum.sent += d.sent;
        sum.received += d.received;
        sum.bad += d.bad;
        sum.firstBad ??= d.firstBad;
      }
      sum.lost = Math.max(0, sum.sent - sum.received);
      return sum;
    };
    const worstAudio = (pick: (c: BenchCall) => Direction, rate: number, hz: number): AudioCheck | null => {
      if (mode !== "transcoding") return null;
      const checks = calls.slice(0, AUDIO_SAMPLE_CALLS).map((c) => checkAudio(pick(c).audio, rate, hz));
      return {
        toneShare: Math.min(...checks.map((a) => a.toneShare)),
        levelDb: checks.map((a) => a.levelDb).reduce((worst, l) => (Math.abs(l) > Math.abs(worst) ? l : worst)),
      };
    };
    return {
      mode,
      calls: callCount,
      measuredS,
      cpuPct,
      cpuPerCallPct: cpuPct / callCount,
      foreignPackets: calls.reduce((n, c) => n + c.foreign, 0),
      benchCpuPct: (benchCpu.user + benchCpu.system) / 1e4 / measuredS,
      benchLoopMaxMs: loopDelay.max / 1e6,
      lateSendPct: (100 * lateSlots) / (countedFrames * SEND_GROUPS),
      loadGeneratorStarved: (100 * lateSlots) / (countedFrames * SEND_GROUPS) > STARVED_LATE_PCT,
      toAgent: total((c) => c.toAgent),
      toMeta: total((c) => c.toMeta),
      audioToAgent: worstAudio((c) => c.toAgent, 8000, META_TONE_HZ),
      audioToMeta: worstAudio((c) => c.toMeta, SAMPLE_RATE, AGENT_TONE_HZ),
    };
  } finally {
    await Promise.all(calls.map((c) => c.close()));
  }
}

// ---------------------------------------------------------------- main

function codecSupport(): Record<string, string> {
  const out = spawnSync("rtpengine", ["--codecs"], { encoding: "utf8" });
  const support: Record<string, string> = {};
  for (const line of `${out.stdout}${out.stderr}`.split("\n")) {
    const m = /^\s*(opus|PCMA|PCMU|telephone-event):\s*(.+)$/.exec(line);
    if (m) support[m[1]] = m[2].trim();
  }
  return support;
}

async function main(): Promise<void> {
  const codecs = codecSupport();
  const workDir = mkdtempSync(join(tmpdir(), "bench-rtpengine-"));
  const ports = await freePortRange(Math.max(...SWEEP) * 8 + 100);
  const rtpengine = await startRtpengine({
    runDir: join(workDir, "rtpengine"),
    interfaces: [HOST],
    ng: { host: HOST, port: await freePort() },
    portMin: ports.min,
    portMax: ports.max,
    logLevel: 5,
  }).catch((err: unknown) => {
    rmSync(workDir, { recursive: true, force: true });
    throw err;
  });
  const threads = readdirSync(`/proc/${rtpengine.pid}/task`).length;
  console.log(
    `rtpengine ${codecs.opus ? "" : "(no opus!) "}pid ${rtpengine.pid}, ${threads} threads, userspace forwarding (--table=-1: no kernel module on this machine); ` +
      `codecs: ${Object.entries(codecs).map(([k, v]) => `${k} ${v}`).join(", ")}`,
  );
  const results: RunFigures[] = [];
  let idleCpuPct = NaN;
  try {
    // What rtpengine's own threads (timers, pollers) cost with no call, for reading the per-call figures.
    const idleStart = cpuSeconds(rtpengine.pid);
    await sleep(IDLE_MS);
    idleCpuPct = (100 * (cpuSeconds(rtpengine.pid) - idleStart)) / (IDLE_MS / 1000);
    console.log(`rtpengine idle: ${idleCpuPct.toFixed(1)} % of a core`);
    for (const calls of SWEEP) {
      for (const mode of MODES) {
        const r = await run(rtpengine, mode, calls);
        results.push(r);
        const left = await listCalls(rtpengine.ng);
        if (left.length) throw new Error(`rtpengine still holds ${left.length} calls after a ${mode} run`);
        console.log(
          `${mode} ${calls} calls: rtpengine ${r.cpuPct.toFixed(1)} % of a core, ${r.toAgent.received}/${r.toAgent.sent} to the agent, ` +
            `${r.toMeta.received}/${r.toMeta.sent} to Meta, ${r.toAgent.bad + r.toMeta.bad} bad${r.toAgent.firstBad ?? r.toMeta.firstBad ? ` (${r.toAgent.firstBad ?? r.toMeta.firstBad})` : ""}` +
            (r.foreignPackets ? `, ${r.foreignPackets} foreign packets ignored` : "") +
            (r.loadGeneratorStarved ? ` — load generator starved (${r.lateSendPct.toFixed(0)} % of sends late): the machine is too busy for these figures` : ""),
        );
      }
    }
  } finally {
    await rtpengine.stop();
    rmSync(workDir, { recursive: true, force: true });
  }

  const fmt = (n: number, digits = 2) => n.toFixed(digits);
  const audioCell = (a: AudioCheck) => `${fmt(a.toneShare)} ${a.levelDb >= 0 ? "+" : ""}${fmt(a.levelDb, 1)} dB`;
  const ratio = (calls: number) => {
    const pass = results.find((r) => r.calls === calls && r.mode === "pass-through")!;
    const trans = results.find((r) => r.calls === calls && r.mode === "transcoding")!;
    return trans.cpuPct / pass.cpuPct;
  };
  printTable(
    "rtpengine: SDES-SRTP (Meta, Opus) ⇄ RTP (agent), userspace forwarding",
    [
      "mode", "calls", "CPU % of a core", "CPU % per call", "× pass-through", "to agent recv/sent", "to Meta recv/sent", "lost", "bad",
      "audio →agent, →Meta (tone share, level)", "load gen CPU %, loop max ms, late sends %",
    ],
    results.map((r) => {
      const lost = r.toAgent.lost + r.toMeta.lost;
      return [
        r.mode, r.calls, fmt(r.cpuPct, 1), fmt(r.cpuPerCallPct, 3), r.mode === "transcoding" ? fmt(ratio(r.calls)) : "1.00",
        `${r.toAgent.received}/${r.toAgent.sent}`, `${r.toMeta.received}/${r.toMeta.sent}`,
        `${lost} (${fmt((100 * lost) / (r.toAgent.sent + r.toMeta.sent), 1)} %)`, r.toAgent.bad + r.toMeta.bad,
        r.audioToAgent && r.audioToMeta ? `${audioCell(r.audioToAgent)}, ${audioCell(r.audioToMeta)}` : "–",
        `${fmt(r.benchCpuPct, 0)}, ${fmt(r.benchLoopMaxMs, 0)}, ${fmt(r.lateSendPct, 1)}`,
      ];
    }),
  );
  writeResult(args, "rtpengine", {
    forwarding: "userspace (--table=-1; no kernel module)",
    rtpengineThreads: threads,
    codecs,
    warmUpMs: WARM_UP_MS,
    measureMs: MEASURE_MS,
    idleCpuPct,
    runs: results,
    transcodingOverPassThrough: Object.fromEntries(SWEEP.map((n) => [n, ratio(n)])),
  });
  const audioBad = (a: AudioCheck | null) => a !== null && (a.toneShare < AUDIO_OK.minToneShare || Math.abs(a.levelDb) > AUDIO_OK.maxLevelDb);
  const failures = results.filter(
    (r) => r.toAgent.bad + r.toMeta.bad > 0 || r.toAgent.received === 0 || r.toMeta.received === 0 || audioBad(r.audioToAgent) || audioBad(r.audioToMeta),
  );
  if (failures.length) {
    console.error(`rtpengine: packets or decoded audio failed their checks in ${failures.map((r) => `${r.mode} ${r.calls}`).join(", ")}`);
    process.exitCode = 1;
  }
}

await main();
