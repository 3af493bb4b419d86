/**
 * `npm run bench -- agent`: how many calls one media agent process carries. The agent runs as
 * its own process (`node --single-threaded-gc --max-semi-space-size=2 --import tsx
 * media-agent/src/main.ts`, as the launcher runs it: stack/daemons.ts AGENT_NODE_FLAGS); this
 * benchmark plays Kamailio on loopback: INVITEs with SDP for N calls, ACKs, 20 ms RTP to every call, BYE at the end.
 * It times the agent's packets with the kernel's timestamps (a dumpcap capture on loopback of
 * the agent's RTP ports, so this process's own event-loop delays do not count) and reports per run:
 *   - agent CPU (per cent of one core, from /proc over the measured window) and per call,
 *   - pacing error |interval − 20 ms| of the agent's RTP: p50, p99, worst, gaps > 40 ms,
 *   - losses (from the sequence numbers), calls answered,
 *   - the agent's event-loop delay (AGENT_LOOP_DELAY_REPORT_MS: worst, seconds with a stall > 20 ms,
 *     the worst stall split by what the loop's thread did: on the CPU, waiting for it, and its
 *     garbage collections: mark-compacts and scavenges, with the longest pause of each),
 *   - this process's own event-loop delay and CPU: the floor of what it can measure.
 * Before each echo run it measures the machine's pacing floor for as many calls
 * (lib/pacing-floor.ts): the agent's frame clock alone on the agent's core, with busy work
 * instead of media: what a perfect agent would get there and then.
 * With two or more cores the agent is pinned to the last core and this process to the others
 * (taskset), so "per core" means what it says and the caller does not compete with the agent
 * (voice runs: the agent's speech workers and their espeak-ng go to the other cores, as a TTS
 * server would have its own).
 * Knobs while working on the agent: AGENT_BENCH_RUNS (which runs), AGENT_BENCH_CPU_PROF (V8 CPU
 * profiles of the agent), AGENT_BENCH_HEAP_PROF (what the agent's mark-compacts collect),
 * AGENT_BENCH_REALTIME (event loops ahead of other load), AGENT_BENCH_VOICE_TTS=piper (the voice
 * profile speaks through a Piper double, espeak-ng inside, in a process of its own: Piper's path,
 * where the speech workers ask the server),
 * AGENT_BENCH_NODE_FLAGS and AGENT_BENCH_AGENT_LOG (e.g. the agent's GC trace), see below.
 * Runs: the echo profile with G.711 (PCMU) and Opus, and a voice profile (Opus, espeak-ng,
 * engine doubles: the caller asks a question, the LLM double answers in three clauses), over
 * a sweep of N. Echo calls all arrive at once; voice calls arrive AGENT_BENCH_VOICE_ARRIVAL_MS
 * apart (50: 20 calls/s), and once all at once as the worst case (every turn in the same tick).
 * The all-at-once sweep starts with a single call: a fresh agent's first call (its set-up and its
 * first turn run code the process has not run before) is the floor of every voice run's worst
 * stall, so the 50 calls' figure is read against it. The knee is the most calls with p99 pacing
 * error < 2 ms, no gap > 40 ms and no loss (voice: no event-loop stall > 20 ms). --quick: a few
 * calls for 3 s per kind.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { createSocket, type Socket } from "node:dgram";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { Encoder } from "@evan/opus";
import { startOllamaDouble } from "../doubles/ollama-double.js";
import { startSttDouble } from "../doubles/stt-double.js";
import { spawnPiperDouble } from "./lib/piper-process.js";
import { freePort, freePortRange } from "../build/ports.js";
import { AGENT_NODE_FLAGS } from "../stack/daemons.js";
import { DEFAULT_OPUS_COMPLEXITY } from "../media-agent/src/codecs/opus.js";
import { FRAME_SAMPLES } from "../media-agent/src/audio/frames.js";
import { readWav16k, toFrames } from "../media-agent/src/audio/wav.js";
import { encodeG711 } from "../media-agent/src/codecs/g711.js";
import type { GcPauses, Stall } from "../media-agent/src/loop-delay.js";
import { captureUdp, type UdpDatagram } from "../test/support/capture.js";
import { topAllocationSites } from "./lib/heap-profile.js";
import { frameTimerRuns, measurePacingFloor, type PacingFloor } from "./lib/pacing-floor.js";
import { benchArgs, BENCH_ROOT, cpuSeconds, percentile, printTable, writeResult } from "./lib/report.js";
import { twoToneFrames } from "./lib/tone.js";

type Codec = "PCMU" | "opus";
type Profile = "echo" | "voice";

interface RunSpec {
  codec: Codec;
  profile: Profile;
  calls: number;
  /** Between two INVITEs; 0: all at once (20 per 10 ms). */
  arrivalMs: number;
  /** From the first INVITE until the pacing window opens. */
  warmUpMs: number;
  /** The pacing and CPU window. */
  measureMs: number;
}

interface RunFigures {
  codec: Codec;
  profile: Profile;
  calls: number;
  arrivalMs: number;
  answered: number;
  measuredS: number;
  agentCpuPct: number;
  cpuPerCallPct: number;
  /** The agent's main thread alone (its event loop), per cent of one core. */
  loopCpuPct: number;
  /** The agent's child processes (speech workers, espeak-ng), per cent of one core. */
  childCpuPct: number;
  packets: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  gapsOver40: number;
  lost: number;
  /**
   * Share of the agent's frame-timer runs in the window that came more than 2 ms late (its own
   * wa_agent_frame_lateness_seconds, scraped before and after): when it is near 1 % or more, the
   * pacing error at the receiver is the agent's event loop being busy, not the send path.
   */
  timerLateOver2msPct: number;
  /** The agent's event loop, from the first INVITE to the BYEs. */
  loopMaxMs: number;
  loopStallSeconds: number;
  /**
   * The run's longest time between two runs of the agent's 5 ms check, and how much of it its
   * event loop's thread was on the CPU (its own work) and waiting for it (loop-delay.ts); null
   * where the agent cannot read its schedstat.
   */
  worstStall: Stall | null;
  /** The agent's garbage collections over the same window: how many, and the longest pause of each kind. */
  gc: GcPauses | null;
  /** This process's own worst event-loop delay in the window: pacing figures below it are noise. */
  benchLoopMaxMs: number;
  benchCpuPct: number;
  /** Echo runs: the machine's pacing floor for as many calls, measured just before (lib/pacing-floor.ts). */
  floor: PacingFloor | null;
}

const args = benchArgs();
const PAYLOAD_TYPE: Record<Codec, number> = { PCMU: 0, opus: 111 };
const FRAME_MS = 20;
/** The sender works in this many groups of calls, 2 ms apart, so no burst delays the receiver. */
const SEND_GROUPS = 10;

const CORES = availableParallelism();
/** The agent's core, and the caller's; null: one core, no pinning. */
const PINNING = CORES >= 2 && hasTaskset() ? { agent: String(CORES - 1), bench: `0-${CORES - 2}` } : null;
// -a: every thread of this process (its GC and libuv helpers too), not only the main one, or they share the agent's core.
if (PINNING) execFileSync("taskset", ["-apc", PINNING.bench, String(process.pid)], { stdio: "ignore" });

/**
 * AGENT_BENCH_REALTIME=1, for a machine shared with other work: the threads of the agent (its
 * event loop, V8's GC and compiler helpers, libuv's pool) and of this process run round-robin
 * real-time (priority 1), so that other processes do not show as the agent's stalls — the
 * event loop waits for GC helpers, and V8's profiler samples from a thread of its own. Not the
 * threads the agent runs at a low priority on purpose (its speech workers), nor what starts
 * later: with reset-on-fork, new threads and processes (espeak-ng) are ordinary. Root only.
 */
const REALTIME = process.env.AGENT_BENCH_REALTIME === "1";
const HEAP_PROF_DIR = process.env.AGENT_BENCH_HEAP_PROF;
if (REALTIME) realtime(process.pid);

function realtime(pid: number): void {
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
    const nice = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16]);
    if (nice <= 0) execFileSync("chrt", ["--rr", "--reset-on-fork", "-p", "1", tid], { stdio: ["ignore", "ignore", "inherit"] });
  }
}

function hasTaskset(): boolean {
  try {
    execFileSync("taskset", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

// ---------------------------------------------------------------- what the caller says

/** 20 ms payloads the caller cycles through (echo), or plays once then keeps the last (voice). */
interface Track {
  payloads: Uint8Array[];
  loop: boolean;
}

function encodeFrames(codec: Codec, frames: Int16Array[]): Uint8Array[] {
  if (codec === "PCMU") return frames.map((f) => encodeG711(f.filter((_, i) => i % 2 === 0), "ulaw"));
  const encoder = new Encoder({ channels: 1, sample_rate: 16000, application: "voip" });
  encoder.bitrate = 20000;
  return frames.map((f) => encoder.encode(f).slice());
}

const QUESTION = "What is the weather in Dusseldorf?";
const ANSWER = "It is sunny in Dusseldorf today. The temperature is twenty degrees, with a light wind. Is there anything else I can do for you?";
const GREETING = "Hello, this is the weather line. I can tell you the weather anywhere in the world. What would you like to know?";

function espeak(text: string): Int16Array {
  return readWav16k(execFileSync("espeak-ng", ["-v", "en-us", "--stdout", text]));
}

/** Voice: 6 s of silence (the greeting plays), the question, then silence. */
function voiceTrack(question: Int16Array): Track {
  const silence = (ms: number) => Array.from({ length: ms / FRAME_MS }, () => new Int16Array(FRAME_SAMPLES));
  return { payloads: encodeFrames("opus", [...silence(6000), ...toFrames(question), ...silence(200)]), loop: false };
}

// ---------------------------------------------------------------- the agent process

interface AgentProcess {
  /** The agent's RTP ports (what the capture listens to). */
  rtpPorts: { min: number; max: number };
  child: ChildProcess;
  sipPort: number;
  /** AGENT_API: its metrics are read there. */
  api: string;
  /** Per report: when, the worst delay (ms), and its worst stall split by what the loop's thread did. */
  loopDelays: Array<[number, number, Stall | null, GcPauses | null]>;
  stop(): Promise<void>;
}

async function startAgent(codec: Codec, kamailioPort: number, calls: number, extraEnv: Record<string, string>): Promise<AgentProcess> {
  const sipPort = await freePort();
  const api = `127.0.0.1:${await freePort()}`;
  const rtp = await freePortRange(Math.max(40, calls * 2 + 40));
  // AGENT_BENCH_CPU_PROF=<dir>: a V8 CPU profile of every agent run there, to see what holds the loop.
  const profiling = process.env.AGENT_BENCH_CPU_PROF ? ["--cpu-prof", "--cpu-prof-dir", process.env.AGENT_BENCH_CPU_PROF] : [];
  // AGENT_BENCH_HEAP_PROF=<dir>: a sampling heap profile of each run's window there, of what lives
  // until a mark-compact (lib/heap-profile-preload.ts); the run's line names the top sites.
  const heapProfiling = HEAP_PROF_DIR ? ["--import", join(BENCH_ROOT, "lib/heap-profile-preload.ts")] : [];
  // AGENT_BENCH_NODE_FLAGS: more flags for the agent's node (e.g. "--trace-gc-nvp", with AGENT_BENCH_AGENT_LOG to keep what it prints).
  const nodeFlags = process.env.AGENT_BENCH_NODE_FLAGS?.split(/\s+/).filter(Boolean) ?? [];
  const command = [process.execPath, ...AGENT_NODE_FLAGS, ...profiling, ...nodeFlags, "--import", "tsx", ...heapProfiling, join(BENCH_ROOT, "..", "media-agent/src/main.ts")];
  // taskset execs the agent, so the child's pid is the agent's.
  const [file, ...argv] = PINNING ? ["taskset", "-c", PINNING.agent, ...command] : command;
  const child = spawn(file, argv, {
    cwd: join(BENCH_ROOT, ".."),
    stdio: ["ignore", "pipe", "pipe"],
    env: {
      ...process.env,
      AGENT_SIP: `127.0.0.1:${sipPort}`,
      AGENT_KAMAILIO: `127.0.0.1:${kamailioPort}`,
      AGENT_RTP_PORTS: `${rtp.min}-${rtp.max}`,
      AGENT_API: api,
      AGENT_CODECS: codec,
      AGENT_PROFILES: "default=echo",
      AGENT_LOOP_DELAY_REPORT_MS: "1000",
      ...(HEAP_PROF_DIR ? { AGENT_HEAP_PROF_DIR: HEAP_PROF_DIR } : {}),
      AGENT_RTP_TIMEOUT_S: "60",
      ...extraEnv,
    },
  });
  const loopDelays: AgentProcess["loopDelays"] = [];
  let stderr = "";
  child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
  const ready = new Promise<void>((done, fail) => {
    let pending = "";
    child.stdout!.on("data", (c: Buffer) => {
      if (process.env.AGENT_BENCH_AGENT_LOG) appendFileSync(process.env.AGENT_BENCH_AGENT_LOG, c);
      pending += c.toString();
      const lines = pending.split("\n");
      pending = lines.pop()!;
      for (const line of lines) {
        if (line.includes('"call API listening"')) done();
        if (line.includes('"event loop delay"')) {
          const entry = JSON.parse(line) as { time: number; maxMs: number; worstStall?: Stall; gc?: GcPauses };
          loopDelays.push([entry.time, entry.maxMs, entry.worstStall ?? null, entry.gc ?? null]);
        }
      }
    });
    child.once("exit", (code) => fail(new Error(`agent exited ${code} before it was ready: ${stderr.slice(-500)}`)));
  });
  await ready;
  // A voice profile's speech workers (started before the agent is ready) go to the other cores,
  // and the espeak-ng processes they start with them: a TTS engine has cores of its own (Piper
  // is a server), and the agent's core is for its event loop.
  if (PINNING && extraEnv.AGENT_VOICE_PROFILES) for (const pid of childPids(child.pid!)) execFileSync("taskset", ["-apc", PINNING.bench, String(pid)], { stdio: "ignore" });
  if (REALTIME) realtime(child.pid!);
  return {
    child,
    rtpPorts: rtp,
    sipPort,
    api,
    loopDelays,
    stop: () =>
      new Promise<void>((done) => {
        if (child.exitCode !== null) return done();
        child.once("exit", () => done());
        child.kill("SIGTERM");
        setTimeout(() => child.kill("SIGKILL"), 3000).unref();
      }),
  };
}

/** The agent's frame-timer runs so far, and those at most 2 ms late (its metrics). */
async function agentFrameTimerRuns(api: string): Promise<{ count: number; within2ms: number }> {
  const runs = frameTimerRuns(await (await fetch(`http://${api}/metrics`)).text());
  if (Number.isNaN(runs.count) || Number.isNaN(runs.within2ms)) throw new Error(`the agent's /metrics at ${api} has no wa_agent_frame_lateness_seconds`);
  return runs;
}

// ---------------------------------------------------------------- the caller side (Kamailio)

interface BenchCall {
  callId: string;
  socket: Socket;
  port: number;
  agentRtpPort: number;
  toTag: string;
  answered: boolean;
  sequence: number;
  timestamp: number;
  sent: number;
  /** Arrival times (ms) and sequence numbers of the agent's packets in the window. */
  arrivals: Float64Array;
  sequences: Uint16Array;
  received: number;
}

function sdpOffer(codec: Codec, port: number): string {
  const rtpmap = codec === "opus" ? "a=rtpmap:111 opus/48000/2" : "a=rtpmap:0 PCMU/8000";
  return ["v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0", `m=audio ${port} RTP/AVP ${PAYLOAD_TYPE[codec]}`, rtpmap, "a=ptime:20", "a=sendrecv", ""].join("\r\n");
}

function sipRequest(method: string, kamailioPort: number, call: BenchCall, cseq: number, body = ""): string {
  return [
    `${method} sip:+15550001111@127.0.0.1 SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${kamailioPort};branch=z9hG4bK-${method.toLowerCase()}-${call.callId}`,
    "Max-Forwards: 69",
    "From: <sip:+15551234567@wa.meta.vc>;tag=bench",
    `To: <sip:+15550001111@127.0.0.1>${call.toTag ? `;tag=${call.toTag}` : ""}`,
    `Call-ID: ${call.callId}`,
    `CSeq: ${cseq} ${method}`,
    ...(method === "INVITE" ? [`Contact: <sip:bench@127.0.0.1:${kamailioPort}>`, "Content-Type: application/sdp"] : []),
    `Content-Length: ${Buffer.byteLength(body)}`,
    "",
    body,
  ].join("\r\n");
}

async function openCall(index: number, capacity: number): Promise<BenchCall> {
  const socket = createSocket("udp4");
  await new Promise<void>((done) => socket.bind(0, "127.0.0.1", done));
  socket.on("error", () => {
    /* ICMP port unreachable once the agent has closed the call's socket */
  });
  const call: BenchCall = {
    callId: `bench-${index}-${Date.now()}`,
    socket,
    port: socket.address().port,
    agentRtpPort: 0,
    toTag: "",
    answered: false,
    sequence: Math.floor(Math.random() * 65536),
    timestamp: Math.floor(Math.random() * 2 ** 32),
    sent: 0,
    arrivals: new Float64Array(capacity),
    sequences: new Uint16Array(capacity),
    received: 0,
  };
  return call;
}

/** Each call's packets in the window, in capture order, with the kernel's time of each. */
function recordArrivals(calls: BenchCall[], datagrams: UdpDatagram[], from: number, to: number, capacity: number): void {
  const byPort = new Map(calls.map((c) => [c.port, c]));
  for (const d of datagrams) {
    const call = byPort.get(d.dstPort);
    if (!call || d.at < from || d.at > to || call.received >= capacity || d.payload.length < 12) continue;
    call.arrivals[call.received] = d.at;
    call.sequences[call.received++] = d.payload.readUInt16BE(2);
  }
}

/** Clean-up of the captures if this process ends early (each is stopped after its run). */
const atExit: Array<() => unknown> = [];
process.once("exit", () => atExit.forEach((fn) => fn()));
const untilExit = { teardown: (fn: () => unknown) => void atExit.push(fn) };

/** Per-call figures from the packets that arrived in the window. */
function pacing(calls: BenchCall[]): { errors: number[]; gaps: number; lost: number; packets: number; worst: number } {
  const errors: number[] = [];
  let gaps = 0, lost = 0, packets = 0, worst = 0;
  for (const c of calls) {
    packets += c.received;
    for (let i = 1; i < c.received; i++) {
      const interval = c.arrivals[i] - c.arrivals[i - 1];
      const error = Math.abs(interval - FRAME_MS);
      errors.push(error);
      if (interval > 2 * FRAME_MS) gaps++;
      if (error > worst) worst = error;
    }
    if (c.received > 1) {
      const span = ((c.sequences[c.received - 1] - c.sequences[0]) & 0xffff) + 1;
      lost += Math.max(0, span - c.received);
    }
  }
  return { errors, gaps, lost, packets, worst };
}

async function run(spec: RunSpec, voiceEnv: Record<string, string>, track: Track): Promise<Omit<RunFigures, "floor">> {
  const kamailio = createSocket("udp4");
  await new Promise<void>((done) => kamailio.bind(0, "127.0.0.1", done));
  const kamailioPort = kamailio.address().port;
  const agent = await startAgent(spec.codec, kamailioPort, spec.calls, spec.profile === "voice" ? voiceEnv : {});
  // A run that throws would leave its agent (and the agent's speech workers) running after this process.
  untilExit.teardown(() => agent.child.kill("SIGTERM"));
  const capacity = Math.ceil(spec.measureMs / FRAME_MS) + 200;
  const calls = await Promise.all(Array.from({ length: spec.calls }, (_, i) => openCall(i, capacity)));
  const byId = new Map(calls.map((c) => [c.callId, c]));
  const byes = new Set<string>();
  kamailio.on("message", (buf: Buffer) => {
    const text = buf.toString();
    const callId = /\r\nCall-ID: *(\S+)/i.exec(text)?.[1];
    const call = callId ? byId.get(callId) : undefined;
    if (!call) return;
    if (/^SIP\/2\.0 200/.test(text) && /\r\nCSeq: *1 INVITE/i.test(text)) {
      call.toTag = /\r\nTo:[^\r]*;tag=([^;>\s]+)/i.exec(text)?.[1] ?? "";
      kamailio.send(sipRequest("ACK", kamailioPort, call, 1), agent.sipPort, "127.0.0.1");
      if (call.agentRtpPort) return; // a retransmitted 200
      call.agentRtpPort = Number(/\r\nm=audio (\d+)/.exec(text)?.[1] ?? 0);
      // Connected: no address lookup per packet, and only the agent's RTP is received.
      call.socket.connect(call.agentRtpPort, "127.0.0.1", () => (call.answered = true));
    } else if (/^SIP\/2\.0 200/.test(text) && /\r\nCSeq: *2 BYE/i.test(text)) byes.add(call.callId);
  });

  // The caller's RTP: every 20 ms one packet per answered call, groups of calls 2 ms apart.
  const payloadType = PAYLOAD_TYPE[spec.codec];
  const ticksPerFrame = spec.codec === "opus" ? 960 : 160;
  const sendOne = (call: BenchCall) => {
    const index = track.loop ? call.sent % track.payloads.length : Math.min(call.sent, track.payloads.length - 1);
    const payload = track.payloads[index];
    const packet = Buffer.allocUnsafe(12 + payload.length);
    packet[0] = 0x80;
    packet[1] = payloadType | (call.sent === 0 ? 0x80 : 0);
    packet.writeUInt16BE(call.sequence, 2);
    packet.writeUInt32BE(call.timestamp, 4);
    packet.writeUInt32BE(0x0b0c0000 + (call.callId.length << 8), 8);
    packet.set(payload, 12);
    call.socket.send(packet);
    call.sequence = (call.sequence + 1) & 0xffff;
    call.timestamp = (call.timestamp + ticksPerFrame) >>> 0;
    call.sent++;
  };
  let sending = true;
  const sendStart = performance.now();
  let step = 0;
  const sendLoop = () => {
    if (!sending) return;
    const now = performance.now();
    while (sendStart + step * (FRAME_MS / SEND_GROUPS) <= now) {
      const group = step % SEND_GROUPS;
      for (let i = group; i < calls.length; i += SEND_GROUPS) if (calls[i].answered) sendOne(calls[i]);
      step++;
    }
    setTimeout(sendLoop, Math.max(0, sendStart + step * (FRAME_MS / SEND_GROUPS) - performance.now()));
  };
  sendLoop();

  // A fresh agent's first /metrics runs code its process has not run (5–11 ms of its event loop,
  // 3–8 ms of it prom-client's first rendering; ~1 ms once warm): read once before the calls, as
  // Prometheus scrapes an agent from its start, so the window's two reads are not the first.
  await agentFrameTimerRuns(agent.api);

  // INVITEs, arrivalMs apart or 20 per 10 ms, retransmitted once after 1 s when unanswered.
  const runStartedAt = Date.now();
  for (let i = 0; i < calls.length; i++) {
    kamailio.send(sipRequest("INVITE", kamailioPort, calls[i], 1, sdpOffer(spec.codec, calls[i].port)), agent.sipPort, "127.0.0.1");
    if (spec.arrivalMs > 0) await sleep(spec.arrivalMs);
    else if (i % 20 === 19) await sleep(10);
  }
  await sleep(1000);
  for (const c of calls.filter((c) => !c.answered)) kamailio.send(sipRequest("INVITE", kamailioPort, c, 1, sdpOffer(spec.codec, c.port)), agent.sipPort, "127.0.0.1");
  await sleep(Math.max(0, spec.warmUpMs - (Date.now() - runStartedAt)));

  const benchLoop = monitorEventLoopDelay({ resolution: 5 });
  const timerBefore = await agentFrameTimerRuns(agent.api);
  const cpuBefore = cpuSeconds(agent.child.pid!);
  const splitBefore = cpuSplit(agent.child.pid!);
  const benchCpuBefore = cpuSeconds(process.pid);
  const capture = await captureUdp(untilExit, dir, `udp and src host 127.0.0.1 and src portrange ${agent.rtpPorts.min}-${agent.rtpPorts.max}`);
  const windowStartedAt = Date.now();
  const windowStart = performance.now();
  if (HEAP_PROF_DIR) agent.child.kill("SIGUSR2"); // the heap profile's window starts
  benchLoop.enable();
  await sleep(spec.measureMs);
  if (HEAP_PROF_DIR) agent.child.kill("SIGUSR2"); // … and ends
  const windowEndedAt = Date.now();
  benchLoop.disable();
  const measuredS = (performance.now() - windowStart) / 1000;
  const agentCpuPct = ((cpuSeconds(agent.child.pid!) - cpuBefore) / measuredS) * 100;
  const splitAfter = cpuSplit(agent.child.pid!);
  const benchCpuPct = ((cpuSeconds(process.pid) - benchCpuBefore) / measuredS) * 100;
  const timerAfter = await agentFrameTimerRuns(agent.api);
  const timerRuns = timerAfter.count - timerBefore.count;
  const runEndedAt = Date.now();
  recordArrivals(calls, await capture.stop(), windowStartedAt, windowEndedAt, capacity);

  for (const c of calls.filter((c) => c.answered)) kamailio.send(sipRequest("BYE", kamailioPort, c, 2), agent.sipPort, "127.0.0.1");
  const answered = calls.filter((c) => c.answered).length;
  for (let waited = 0; byes.size < answered && waited < 3000; waited += 50) await sleep(50);
  sending = false;
  await agent.stop();
  if (HEAP_PROF_DIR) printHeapProfile(join(HEAP_PROF_DIR, `agent-${agent.child.pid}.heapprofile`));
  for (const c of calls) c.socket.close();
  kamailio.close();

  const p = pacing(calls);
  // Echo: the pacing window. Voice: from the first INVITE, since the greeting is synthesised at the answer.
  const loopFrom = spec.profile === "voice" ? runStartedAt : windowStartedAt + 1000;
  const loopTo = spec.profile === "voice" ? runEndedAt + 1000 : runEndedAt;
  const loopPeriods = agent.loopDelays.filter(([at]) => at >= loopFrom && at <= loopTo);
  const loop = loopPeriods.map(([, ms]) => ms);
  const stalls = loopPeriods.map(([, , stall]) => stall).filter((x): x is Stall => x !== null);
  const gcPeriods = loopPeriods.map(([, , , gc]) => gc).filter((x): x is GcPauses => x !== null);
  const round1 = (x: number) => Math.round(x * 10) / 10;
  const round2 = (x: number) => Math.round(x * 100) / 100;
  return {
    codec: spec.codec,
    profile: spec.profile,
    calls: spec.calls,
    arrivalMs: spec.arrivalMs,
    answered,
    measuredS: round1(measuredS),
    agentCpuPct: round1(agentCpuPct),
    cpuPerCallPct: round2(agentCpuPct / spec.calls),
    loopCpuPct: round1(((splitAfter.mainThread - splitBefore.mainThread) / measuredS) * 100),
    childCpuPct: round1(((splitAfter.children - splitBefore.children) / measuredS) * 100),
    packets: p.packets,
    p50Ms: round2(percentile(p.errors, 50)),
    p99Ms: round2(percentile(p.errors, 99)),
    maxMs: round1(p.worst),
    gapsOver40: p.gaps,
    lost: p.lost,
    timerLateOver2msPct: timerRuns > 0 ? round2(((timerRuns - (timerAfter.within2ms - timerBefore.within2ms)) / timerRuns) * 100) : 0,
    loopMaxMs: round1(Math.max(0, ...loop)),
    loopStallSeconds: loop.filter((ms) => ms > 20).length,
    worstStall: stalls.length ? stalls.reduce((a, b) => (b.ms > a.ms ? b : a)) : null,
    gc: gcPeriods.length
      ? gcPeriods.reduce((a, b) => ({
          scavenges: a.scavenges + b.scavenges,
          scavengeMaxMs: Math.max(a.scavengeMaxMs, b.scavengeMaxMs),
          markCompacts: a.markCompacts + b.markCompacts,
          markCompactMaxMs: Math.max(a.markCompactMaxMs, b.markCompactMaxMs),
        }))
      : null,
    benchLoopMaxMs: round1(benchLoop.max / 1e6),
    benchCpuPct: round1(benchCpuPct),
  };
}

function printHeapProfile(file: string): void {
  if (!existsSync(file)) return console.log(`heap profile: none written (${file})`);
  const { totalMb, sites } = topAllocationSites(file, 8);
  console.log(`heap profile: ${file}: ${totalMb} MB sampled that lived until a mark-compact or the window's end, by allocation site:`);
  for (const { site, sharePct } of sites) console.log(`  ${sharePct.toFixed(1).padStart(5)} %  ${site}`);
}

/** The process's child processes (of any of its threads). /proc, Linux. */
function childPids(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`).flatMap((tid) => readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").split(" ").filter(Boolean).map(Number));
}

/**
 * CPU seconds of a process's main thread, and of its child processes: those it has reaped
 * (espeak-ng started by the agent itself) and those still running with all they have reaped
 * (the agent's speech workers and their espeak-ng). /proc, Linux.
 */
function cpuSplit(pid: number): { mainThread: number; children: number } {
  const fields = (path: string) => {
    const stat = readFileSync(path, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number);
  };
  const main = fields(`/proc/${pid}/task/${pid}/stat`);
  const all = fields(`/proc/${pid}/stat`);
  let children = (all[13] + all[14]) / 100;
  for (const child of childPids(pid)) {
    try {
      const c = fields(`/proc/${child}/stat`);
      children += (c[11] + c[12] + c[13] + c[14]) / 100;
    } catch {
      // ended between the two reads
    }
  }
  return { mainThread: (main[11] + main[12]) / 100, children };
}

// ---------------------------------------------------------------- the sweeps

function healthy(r: RunFigures): boolean {
  const paced = r.answered === r.calls && r.p99Ms < 2 && r.gapsOver40 === 0 && r.lost === 0;
  return r.profile === "voice" ? r.answered === r.calls && r.loopStallSeconds === 0 : paced;
}

async function voiceSetup(dir: string): Promise<{ env: Record<string, string>; close: () => Promise<void>; question: Int16Array }> {
  const cleanups: Array<() => unknown> = [];
  const t = { teardown: (fn: () => unknown) => void cleanups.push(fn) };
  const question = espeak(QUESTION);
  const stt = await startSttDouble(t, { phrases: [{ text: ` ${QUESTION}`, samples16k: question }] });
  const ollama = await startOllamaDouble(t, { script: () => ({ text: ANSWER }) });
  let tts: Record<string, string> = { engine: "espeak-ng", voice: "en-us" };
  if (process.env.AGENT_BENCH_VOICE_TTS === "piper") {
    const piper = await spawnPiperDouble();
    t.teardown(piper.stop);
    tts = { engine: "piper", url: piper.url };
  }
  const profiles = join(dir, "voice-profiles.json");
  writeFileSync(
    profiles,
    JSON.stringify({
      voice: {
        greeting: GREETING,
        systemPrompt: "You are the weather line.",
        language: "en",
        stt: { url: stt.url },
        llm: { url: ollama.url, model: "llama3.2:3b" },
        tts,
      },
    }),
  );
  return {
    env: { AGENT_VOICE_PROFILES: profiles, AGENT_DEFAULT_PROFILE: "voice", AGENT_TRACE_DIR: join(dir, "traces") },
    question,
    close: async () => {
      for (const fn of cleanups.reverse()) await fn();
    },
  };
}

/**
 * Voice calls arrive VOICE_ARRIVAL_MS apart (20 calls/s): real callers' turns end at scattered
 * moments, while calls answered in the same millisecond with the same greeting and question
 * end every turn in the same tick. That burst is run too, as the worst case (arrivalMs 0).
 */
const VOICE_ARRIVAL_MS = Number(process.env.AGENT_BENCH_VOICE_ARRIVAL_MS ?? 50);

type Sweep = { codec: Codec; profile: Profile; calls: number[]; arrivalMs: number };

/**
 * AGENT_BENCH_RUNS="opus voice 5,10,25,50,75; PCMU echo 100": only these runs, while working on
 * one kind (the knee table then covers only them).
 */
function sweepsFromEnv(text: string): Sweep[] {
  return text.split(";").map((part) => {
    const [codec, profile, counts, ...rest] = part.trim().split(/\s+/);
    const calls = (counts ?? "").split(",").map(Number);
    const kind = `${codec} ${profile}`;
    if (rest.length || !["PCMU echo", "opus echo", "opus voice"].includes(kind) || !calls.every((n) => Number.isInteger(n) && n > 0)) {
      throw new Error(`AGENT_BENCH_RUNS: '${part.trim()}' is not '<PCMU echo|opus echo|opus voice> <calls,calls,…>'`);
    }
    return { codec: codec as Codec, profile: profile as Profile, calls, arrivalMs: profile === "voice" ? VOICE_ARRIVAL_MS : 0 };
  });
}

const SWEEPS: Sweep[] = process.env.AGENT_BENCH_RUNS
  ? sweepsFromEnv(process.env.AGENT_BENCH_RUNS)
  : args.quick
  ? [
      { codec: "PCMU", profile: "echo", calls: [5], arrivalMs: 0 },
      { codec: "opus", profile: "echo", calls: [5], arrivalMs: 0 },
      { codec: "opus", profile: "voice", calls: [2], arrivalMs: VOICE_ARRIVAL_MS },
    ]
  : // Each sweep: the issue's target (200 G.711, 100 Opus, 50 voice calls), a step below it for
    // the knee and one above it; fewer steps keep the whole `npm run bench` under 10 minutes
    // (AGENT_BENCH_RUNS runs any others).
    [
      { codec: "PCMU", profile: "echo", calls: [100, 200, 300], arrivalMs: 0 },
      { codec: "opus", profile: "echo", calls: [50, 100, 150], arrivalMs: 0 },
      { codec: "opus", profile: "voice", calls: [25, 50, 100], arrivalMs: VOICE_ARRIVAL_MS },
      // One call alone first: the stall a fresh agent's first call costs whatever the load.
      { codec: "opus", profile: "voice", calls: [1, 50], arrivalMs: 0 },
    ];

// The machine's own floor, in the same run: before each echo run, the agent's frame clock on the
// agent's core for as many calls, each with a fixed 30 µs slice of busy work per frame (about the
// tick's share of a G.711 call) and nothing else: no media, no I/O, no garbage. The agent cannot
// pace better than this; on a VM it moves from minute to minute, hence right before each run.
const FLOOR_SLICE_US = 30;
const FLOOR_SECONDS = 3;
const pacingFloor = (calls: number, seconds: number) => measurePacingFloor({ calls, sliceUs: FLOOR_SLICE_US, seconds, core: PINNING?.agent ?? null });

const dir = mkdtempSync(join(tmpdir(), "bench-agent-"));
const voice = await voiceSetup(dir);
const tracks: Record<string, Track> = {
  "PCMU echo": { payloads: encodeFrames("PCMU", twoToneFrames(50)), loop: true },
  "opus echo": { payloads: encodeFrames("opus", twoToneFrames(50)), loop: true },
  "opus voice": voiceTrack(voice.question),
};
const results: RunFigures[] = [];
try {
  for (const sweep of SWEEPS) {
    for (const calls of sweep.calls) {
      const spec: RunSpec = {
        codec: sweep.codec,
        profile: sweep.profile,
        calls,
        arrivalMs: sweep.arrivalMs,
        // Voice: the window covers the greeting's synthesis and the question's answer.
        warmUpMs: 1500,
        measureMs: args.quick ? 3000 : sweep.profile === "voice" ? 10_000 : 4000,
      };
      // 3 s: 7,500 intervals at 50 calls, enough for a p99, and the floor moves with the minute anyway.
      const floor = sweep.profile === "echo" ? pacingFloor(calls, args.quick ? spec.measureMs / 1000 : FLOOR_SECONDS) : null;
      const r = { ...(await run(spec, voice.env, tracks[`${sweep.codec} ${sweep.profile}`])), floor };
      results.push(r);
      console.log(`agent: ${r.codec} ${r.profile} ${r.calls} calls${r.arrivalMs ? ` ${r.arrivalMs} ms apart` : ""}: cpu ${r.agentCpuPct}%, p99 ${r.p99Ms} ms${floor ? ` (floor ${floor.p99Ms})` : ""}, gaps ${r.gapsOver40}, lost ${r.lost}, timer late > 2 ms ${r.timerLateOver2msPct}%, loop max ${r.loopMaxMs} ms${r.worstStall ? ` (worst stall ${r.worstStall.ms} ms: ${r.worstStall.onCpuMs} on the CPU, ${r.worstStall.waitingMs} waiting for it)` : ""}${r.gc ? `, GC: ${r.gc.markCompacts} mark-compacts (longest ${r.gc.markCompactMaxMs} ms), ${r.gc.scavenges} scavenges (longest ${r.gc.scavengeMaxMs} ms)` : ""}`);
    }
  }
} finally {
  await voice.close();
  rmSync(dir, { recursive: true, force: true });
}

printTable(
  "media agent: N concurrent calls, one agent process (pacing error = |interval − 20 ms| at the receiver)",
  ["codec", "profile", "calls", "arrival ms", "answered", "agent CPU %", "CPU %/call", "loop thread CPU %", "child CPU %", "p50 ms", "p99 ms", "worst ms", "gaps>40ms", "lost", "timer >2ms late %", "floor p99 ms", "floor timer >2ms late %", "loop max ms", "stall s", "worst stall: on CPU / waiting ms", "mark-compacts (longest ms)", "scavenges (longest ms)", "bench loop ms", "bench CPU %"],
  results.map((r) => [r.codec, r.profile, r.calls, r.arrivalMs, r.answered, r.agentCpuPct, r.cpuPerCallPct, r.loopCpuPct, r.childCpuPct, r.p50Ms, r.p99Ms, r.maxMs, r.gapsOver40, r.lost, r.timerLateOver2msPct, r.floor?.p99Ms ?? "-", r.floor?.wakesLateOver2msPct ?? "-", r.loopMaxMs, r.loopStallSeconds, r.worstStall ? `${r.worstStall.onCpuMs} / ${r.worstStall.waitingMs}` : "-", r.gc ? `${r.gc.markCompacts} (${r.gc.markCompactMaxMs})` : "-", r.gc ? `${r.gc.scavenges} (${r.gc.scavengeMaxMs})` : "-", r.benchLoopMaxMs, r.benchCpuPct]),
);
console.log(
  `floor: the agent's frame clock alone on the agent's core just before each echo run, for as many calls, with ${FLOOR_SLICE_US} µs of busy work per call per frame and nothing else (no media, no I/O, no GC): the best pacing this machine gives at that moment`,
);
const knees = SWEEPS.map((s) => {
  const runs = results.filter((r) => r.codec === s.codec && r.profile === s.profile && r.arrivalMs === s.arrivalMs);
  const good = runs.filter(healthy).map((r) => r.calls);
  const knee = good.length ? Math.max(...good) : 0;
  const atKnee = runs.find((r) => r.calls === knee);
  return { codec: s.codec, profile: s.profile, arrivalMs: s.arrivalMs, knee, cpuPerCallPct: atKnee?.cpuPerCallPct ?? null, testedCalls: s.calls };
});
printTable(
  "knee: most calls with p99 < 2 ms, no gap > 40 ms, no loss (voice: no event-loop stall > 20 ms)",
  ["codec", "profile", "arrival ms", "knee (calls)", "CPU %/call there", "calls tested"],
  // No run good: the knee is below the sweep's first step (the JSON's knee is then 0).
  knees.map((k) => [k.codec, k.profile, k.arrivalMs, k.knee || `< ${Math.min(...k.testedCalls)}`, k.cpuPerCallPct ?? "-", k.testedCalls.join(", ")]),
);
// The agent inherits this process's environment: an AGENT_OPUS_COMPLEXITY set for the run is the agent's.
const opusComplexity = Number(process.env.AGENT_OPUS_COMPLEXITY || DEFAULT_OPUS_COMPLEXITY);
console.log(`Opus encoder complexity: ${opusComplexity} (AGENT_OPUS_COMPLEXITY)`);
writeResult(args, "agent", { pinning: PINNING, floorSliceUs: FLOOR_SLICE_US, opusComplexity, runs: results, knees });
