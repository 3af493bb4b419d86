/**
 * `npm run bench -- soak [--quick]`: many calls through the whole stack, and what they leave
 * behind. The stack is what `npm start` runs (stack/stack.ts through bench/lib/bench-stack.ts:
 * rtpengine, Kamailio with kamailio/kamailio.cfg and the routing bundle, the media agent as its
 * own process with the echo profile); this process plays Meta's edge (bench/lib/meta-caller.ts:
 * TLS from 127.0.0.2, SDES-SRTP Opus). Each call: INVITE → 200 → ACK, 1 s of SRTP audio, the
 * agent's echo of it coming back (packets that authenticate, and among them the echoed tone:
 * larger than the agent's Opus silence), then BYE — from us, or for one call in
 * AGENT_BYE_EVERY from the agent (its call API's DELETE), which Kamailio brings to us as Meta
 * would get it.
 *
 * A warm-up batch first, then the soak, with a fixed number of calls in progress at all times
 * (closed loop). After warm-up and after the soak, once nothing is up: rtpengine's sessions,
 * Kamailio's active dialogs and its shm/pkg memory in use, the agent's calls in progress and
 * its records of the last AGENT_CALL_HISTORY calls not ended (through its call API), and each
 * daemon's open file descriptors. During the soak each daemon's memory is sampled once a second
 * and its least-squares slope (KiB per 1,000 calls) reported, after the first tenth of the soak
 * and over its second half: Kamailio as the sum of Pss over its processes (its shared memory
 * counted once), rtpengine and the agent as their RSS. A call fails on a non-200, a timeout, an
 * SRTP packet that does not authenticate, too little echo, an early end, or a BYE without 200;
 * every failure is listed with its reason. SOAK_CALLS / SOAK_CONCURRENT size a run.
 */
import { readdirSync, readFileSync } from "node:fs";
import { Agent as HttpAgent, request as httpRequest } from "node:http";
import { monitorEventLoopDelay } from "node:perf_hooks";
import type { CallRecord } from "../media-agent/src/calls/call.js";
import { listCalls } from "../build/rtpengine-ng.js";
import { MetaEdge, opusToneFrames, type CallFailed, type MetaCall } from "./lib/meta-caller.js";
import { BUSINESS, groupCpuSeconds } from "./native/stand.js";
import { benchArgs, cpuSeconds, percentile, printTable, writeResult } from "./lib/report.js";
import { startBenchStack } from "./lib/bench-stack.js";

const args = benchArgs();
const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

/** A whole number ≥ 1 from the environment variable `name`, or `fallback` when it is unset. */
function countFromEnv(name: string, fallback: number): number {
  const text = process.env[name];
  if (text === undefined || text === "") return fallback;
  if (!/^[1-9]\d*$/.test(text)) throw new Error(`${name}: expected a whole number of at least 1, got '${text}'`);
  return Number(text);
}

// SOAK_CALLS, SOAK_CONCURRENT: another size, e.g. while finding what a machine carries.
const DEFAULT_PLAN = args.quick ? { warmUpCalls: 20, calls: 150, concurrent: 20 } : { warmUpCalls: 500, calls: 10_000, concurrent: 100 };
const PLAN = { ...DEFAULT_PLAN, calls: countFromEnv("SOAK_CALLS", DEFAULT_PLAN.calls), concurrent: countFromEnv("SOAK_CONCURRENT", DEFAULT_PLAN.concurrent) };
/** Audio the caller sends per call, 20 ms frames (1 s). */
const MEDIA_FRAMES = 50;
/**
 * After the last frame the call stays up until the echo is back (the echo profile's 200 ms delay
 * and the agent's jitter buffer: ~250 ms on a quiet machine), at most this long.
 */
const ECHO_WAIT_MS = 2000;
/** One call in this many is hung up by the agent (its call API), the others by us. */
const AGENT_BYE_EVERY = 10;
/** The agent's AGENT_CALL_HISTORY (set, not left to its default): the records checked at the end. */
const AGENT_CALL_HISTORY = 1000;
/** The echo counts as back at this share of the frames sent (the first and last few are blurred by Opus), … */
const ECHO_COMPLETE = 0.8;
/** … or once no echoed frame has come for this long (frames the agent dropped do not come back). */
const ECHO_QUIET_MS = 300;
/**
 * Fewer echoed frames than this share of those sent fails the call: media did not cross both
 * ways. How much of it came back is reported (an agent short of CPU drops frames from its
 * jitter buffer: its records' jitter.overflow), not held against the call.
 */
const MIN_ECHO_SHARE = 0.2;
/** The agent's Opus silence is 8–10 bytes a frame; echoed tone frames are larger. */
const ECHO_MIN_BYTES = 20;
const FRAME_MS = 20;
/** Frames a call may send at once after this process was late (more: the stream is stretched). */
const MAX_CATCH_UP_FRAMES = 2;
/** The agent's RTP timeout is 30 s. */
const SETTLE_LIMIT_MS = 35_000;
/** tm's wait timer (kamailio.cfg leaves wt_timer at its default) and a second. */
const TM_WAIT_WINDOW_MS = 5000 + 1000;

type Outcome = "ok: caller BYE" | "ok: agent BYE";

interface CallResult {
  outcome: Outcome | "failed";
  reason?: string;
  callId?: string;
  answerMs?: number;
  received: number;
  echoed: number;
  /** Packets from another relay port than the call's (bench/lib/meta-caller.ts MediaStats). */
  stray: number;
}

interface Daemon {
  name: "kamailio" | "rtpengine" | "media-agent";
  /** The main process (Kamailio: its process group's leader). */
  pid: number;
  /** Every process of the daemon. */
  pids: number[];
}

// ---------------------------------------------------------------- /proc readings

/** Pids of a process group (Kamailio's main process and its children: fixed once it has started). */
function groupPids(pgid: number): number[] {
  const pids: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]) === pgid) pids.push(Number(name));
    } catch {
      /* gone meanwhile */
    }
  }
  return pids;
}

function openFds(d: Daemon): number {
  return d.pids.reduce((n, pid) => n + readdirSync(`/proc/${pid}/fd`).length, 0);
}

/** KiB: Kamailio's processes share its shm (and the fork's pages): Pss counts each page once. */
function memoryKiB(d: Daemon): number {
  const field = d.name === "kamailio" ? "Pss" : "Rss";
  return d.pids.reduce((n, pid) => n + Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"))?.[1] ?? 0), 0);
}

function daemonCpu(d: Daemon): number {
  return d.name === "kamailio" ? groupCpuSeconds(d.pid) : cpuSeconds(d.pid);
}

/** Least-squares slope of y over x. */
function slope(points: Array<[number, number]>): number {
  const n = points.length;
  if (n < 2) return NaN;
  const mx = points.reduce((s, p) => s + p[0], 0) / n;
  const my = points.reduce((s, p) => s + p[1], 0) / n;
  const sxy = points.reduce((s, p) => s + (p[0] - mx) * (p[1] - my), 0);
  const sxx = points.reduce((s, p) => s + (p[0] - mx) ** 2, 0);
  return sxx === 0 ? NaN : sxy / sxx;
}

// ---------------------------------------------------------------- the agent's call API

/**
 * GET and DELETE on the agent's call API over a few kept-alive connections of our own, which
 * close() ends: the agent's open descriptors are counted without our connections in them.
 */
class AgentApi {
  private agent = new HttpAgent({ keepAlive: true, maxSockets: 8 });

  constructor(private readonly base: { host: string; port: number }) {}

  request(method: "GET" | "DELETE", path: string, retried = false): Promise<{ status: number; body: string }> {
    return new Promise((done, fail) => {
      const req = httpRequest({ ...this.base, method, path, agent: this.agent }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () => done({ status: res.statusCode ?? 0, body }));
      });
      req.on("error", (err: NodeJS.ErrnoException) => {
        // The agent closed an idle kept-alive connection just as we reused it: nothing reached it, ask again.
        if (req.reusedSocket && !retried && (err.code === "ECONNRESET" || err.message === "socket hang up")) this.request(method, path, true).then(done, fail);
        else fail(err);
      });
      req.end();
    });
  }

  /** Ends the kept-alive connections; the next request opens new ones. */
  async close(): Promise<void> {
    this.agent.destroy();
    this.agent = new HttpAgent({ keepAlive: true, maxSockets: 8 });
    await sleep(100); // the agent sees the FINs and closes its side
  }
}

// ---------------------------------------------------------------- the calls

/** Paces every call's audio from one 20 ms timer: each call gets the frames due since its start. */
class MediaClock {
  private readonly playing = new Map<MetaCall, { startedAt: number; done: () => void }>();
  /** Stalls stretched over the calls' audio, ms (how much this process held the stream back). */
  stretchedMs = 0;
  private readonly timer = setInterval(() => this.tick(), FRAME_MS);

  constructor(private readonly frames: Uint8Array[]) {}

  /** Resolves once all frames of the track went out (or the call ended). */
  play(call: MetaCall): Promise<void> {
    return new Promise((done) => this.playing.set(call, { startedAt: performance.now(), done }));
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private tick(): void {
    const now = performance.now();
    for (const [call, p] of this.playing) {
      let due = Math.min(this.frames.length, Math.floor((now - p.startedAt) / FRAME_MS) + 1);
      if (due - call.stats.sent > MAX_CATCH_UP_FRAMES) {
        // This process stalled: resume the stream at its pace instead of bursting what is overdue
        // into the agent's jitter buffer (which would drop it: a stall of ours, not the stack's).
        p.startedAt += (due - call.stats.sent - MAX_CATCH_UP_FRAMES) * FRAME_MS;
        this.stretchedMs += (due - call.stats.sent - MAX_CATCH_UP_FRAMES) * FRAME_MS;
        due = call.stats.sent + MAX_CATCH_UP_FRAMES;
      }
      while (call.stats.sent < due && !call.endReason) call.sendRtp(this.frames[call.stats.sent], { marker: call.stats.sent === 0 });
      if (call.stats.sent >= this.frames.length || call.endReason) {
        this.playing.delete(call);
        p.done();
      }
    }
  }
}

async function oneCall(edge: MetaEdge, clock: MediaClock, agentApi: AgentApi, caller: string, agentHangsUp: boolean): Promise<CallResult> {
  let call: MetaCall;
  try {
    call = await edge.call({ business: BUSINESS, caller });
  } catch (err) {
    return { outcome: "failed", reason: (err as Error).message, callId: (err as CallFailed).callId, received: 0, echoed: 0, stray: 0 };
  }
  let echoed = 0;
  let lastEchoAt = 0;
  call.onRtp = (payload, _header, arrivedAt) => {
    if (payload.length <= ECHO_MIN_BYTES) return;
    echoed++;
    lastEchoAt = arrivedAt;
  };
  const result = (outcome: CallResult["outcome"], reason?: string): CallResult => ({ outcome, reason, callId: call.callId, answerMs: call.answerMs, received: call.stats.received, echoed, stray: call.stats.strayPackets });
  await clock.play(call);
  const lastFrameAt = performance.now();
  for (;;) {
    const now = performance.now();
    const quiet = now - Math.max(lastEchoAt, lastFrameAt) > ECHO_QUIET_MS;
    if (echoed >= ECHO_COMPLETE * MEDIA_FRAMES || quiet || now - lastFrameAt > ECHO_WAIT_MS || call.endReason) break;
    await sleep(FRAME_MS);
  }
  if (call.endReason) return result("failed", `the call ended before its BYE (${call.endReason})`);
  try {
    if (agentHangsUp) {
      const res = await agentApi.request("DELETE", `/calls/${encodeURIComponent(call.callId)}`);
      if (res.status !== 200) throw new Error(`DELETE /calls/{id} answered ${res.status} ${res.body}`);
      const reason = await Promise.race([call.ended, sleep(5000).then(() => "no BYE from the agent within 5 s")]);
      if (reason !== "remote BYE") throw new Error(reason);
    } else await call.hangUp();
  } catch (err) {
    call.close("failed");
    return result("failed", (err as Error).message);
  }
  if (call.stats.authFailures) return result("failed", `${call.stats.authFailures} SRTP packets did not authenticate`);
  if (echoed < MIN_ECHO_SHARE * MEDIA_FRAMES) return result("failed", `too little echo: ${echoed} echoed frames of ${MEDIA_FRAMES} sent (${call.stats.received} packets authenticated)`);
  return result(agentHangsUp ? "ok: agent BYE" : "ok: caller BYE");
}

/** `count` calls, `concurrent` at a time (closed loop); `onDone` after each. */
async function runCalls(count: number, concurrent: number, place: (i: number) => Promise<CallResult>, onDone: (r: CallResult) => void): Promise<void> {
  let next = 0;
  const worker = async (w: number) => {
    // Spread the workers' first calls over one call's length, so call phases do not march in step.
    await sleep((w / concurrent) * MEDIA_FRAMES * FRAME_MS * 1.3);
    while (next < count) onDone(await place(next++));
  };
  await Promise.all(Array.from({ length: concurrent }, (_, w) => worker(w)));
}

// ---------------------------------------------------------------- leftovers

interface Leftovers {
  rtpengineSessions: number;
  kamailioActiveDialogs: number;
  /** Calls the agent holds in progress (its call API's `active`). */
  agentLiveCalls: number;
  /** Agent calls not ended, among the records checked. */
  agentCallsNotEnded: number;
  agentRecordsChecked: number;
  /** Answered calls the agent has no record of. */
  agentRecordsMissing: number;
  fds: Record<Daemon["name"], number>;
  /** Kamailio's allocators, in bytes: shared memory (core.shmmem) and every process's own (pkg.stats). */
  kamailioShmUsed: number;
  kamailioPkgUsed: number;
}

async function leftovers(
  daemons: Daemon[],
  ng: { host: string; port: number },
  rpc: (cmd: string, ...a: string[]) => Promise<string>,
  agentApi: AgentApi,
  callIds: string[],
): Promise<{ left: Leftovers; agentRecords: CallRecord[] }> {
  await agentApi.close();
  const fds = Object.fromEntries(daemons.map((d) => [d.name, openFds(d)])) as Leftovers["fds"];
  const shm = /\bused: (\d+)/.exec(await rpc("core.shmmem"));
  const pkg = [...(await rpc("pkg.stats")).matchAll(/\bused: (\d+)/g)];
  if (!shm || !pkg.length) throw new Error("kamcmd core.shmmem / pkg.stats gave no 'used'");
  const stat = await rpc("stats.get_statistics", "active_dialogs");
  const dialogs = /dialog:active_dialogs = (\d+)/.exec(stat);
  if (!dialogs) throw new Error(`kamcmd stats.get_statistics active_dialogs gave no count: ${stat}`);
  const records: CallRecord[] = [];
  let missing = 0;
  // The agent keeps the records of its last AGENT_CALL_HISTORY ended calls.
  const recent = callIds.slice(-AGENT_CALL_HISTORY);
  for (let i = 0; i < recent.length; i += 25) {
    await Promise.all(recent.slice(i, i + 25).map(async (id) => {
      const res = await agentApi.request("GET", `/calls/${encodeURIComponent(id)}`);
      if (res.status === 200) records.push(JSON.parse(res.body) as CallRecord);
      else if (res.status === 404) missing++;
      else throw new Error(`GET /calls/${id} answered ${res.status} ${res.body}`);
    }));
  }
  // The latest records too: a call the agent has that we did not place would show there.
  const { active, calls: latest } = JSON.parse((await agentApi.request("GET", "/calls")).body) as { active: number; calls: CallRecord[] };
  const notEnded = new Set([...records, ...latest].filter((r) => r.status !== "ended" && r.status !== "failed").map((r) => r.callId));
  return {
    left: { rtpengineSessions: (await listCalls(ng)).length, kamailioActiveDialogs: Number(dialogs[1]), agentLiveCalls: active, agentCallsNotEnded: notEnded.size, agentRecordsChecked: records.length, agentRecordsMissing: missing, fds,
      kamailioShmUsed: Number(shm[1]), kamailioPkgUsed: pkg.reduce((n, m) => n + Number(m[1]), 0) },
    agentRecords: records,
  };
}

/**
 * Waits until no call is up any more in rtpengine, Kamailio (dialogs and transactions) and on our side, at most
 * SETTLE_LIMIT_MS (enough for the agent's RTP timeout to end a call whose ACK never came):
 * the leftovers are what stays after that. Returns how long it took.
 *
 * A finished transaction stays in tm for its wait timer (5 s) before its memory is freed, and
 * Kamailio always has some: dispatcher's probe of the agent is a transaction of its own every
 * WA_AGENT_PROBE_INTERVAL (1 s). So the calls' transactions are gone once tm holds no more than
 * the local ones (tm.stats total_local) it started within the last wait period and a bit.
 */
async function settle(edges: MetaEdge[], ng: { host: string; port: number }, rpc: (cmd: string, ...a: string[]) => Promise<string>): Promise<number> {
  const started = performance.now();
  const localStarted: Array<[number, number]> = [];
  while (performance.now() - started < SETTLE_LIMIT_MS) {
    const now = performance.now();
    const dialogs = /= (\d+)/.exec(await rpc("stats.get_statistics", "active_dialogs"))?.[1];
    const tm = await rpc("tm.stats");
    const transactions = Number(/current: (\d+)/.exec(tm)?.[1]);
    localStarted.push([now, Number(/total_local: (\d+)/.exec(tm)?.[1])]);
    const before = localStarted.find(([at]) => now - at <= TM_WAIT_WINDOW_MS)!;
    const recentLocal = localStarted[localStarted.length - 1][1] - before[1];
    if (edges.every((e) => e.activeCalls === 0) && dialogs === "0" && now - started >= TM_WAIT_WINDOW_MS && transactions <= recentLocal && (await listCalls(ng)).length === 0) break;
    await sleep(100);
  }
  return performance.now() - started;
}

/** Has the agent (started with --heapsnapshot-signal=SIGUSR2) write a heap snapshot, and waits for it. */
async function heapSnapshot(pid: number, dir: string): Promise<void> {
  const count = () => readdirSync(dir).filter((f) => f.endsWith(".heapsnapshot")).length;
  const before = count();
  process.kill(pid, "SIGUSR2");
  for (let i = 0; i < 600 && count() === before; i++) await sleep(100);
  await sleep(2000); // written in one go after the file appears
  process.stderr.write(`soak: agent heap snapshot ${before + 1} in ${dir}\n`);
}

// ---------------------------------------------------------------- main

const round = (v: number, digits = 1) => Math.round(v * 10 ** digits) / 10 ** digits;

async function main(): Promise<void> {
  const started = performance.now();
  // SOAK_AGENT_HEAP_SNAPSHOTS=<dir>: the agent writes a V8 heap snapshot there after warm-up and
  // after the soak (SIGUSR2), to see what holds its memory when its slope is not flat.
  const snapshots = process.env.SOAK_AGENT_HEAP_SNAPSHOTS;
  const s = await startBenchStack({
    calls: PLAN.concurrent,
    kamailioEnv: { WA_NUMBERS: `${BUSINESS}=default` },
    agentEnv: { AGENT_PROFILES: "default=echo", AGENT_CALL_HISTORY: String(AGENT_CALL_HISTORY), ...(snapshots ? { NODE_OPTIONS: `--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${snapshots}` } : {}) },
  });
  const exits: string[] = [];
  s.stack.supervisor.on("exit", (e) => exits.push(`${e.name} (pid ${e.pid}) exited: code ${e.code} signal ${e.signal} after ${e.ranMs} ms`));
  const kamailio = s.stack.kamailio()!.kamailio;
  const rpc = (cmd: string, ...a: string[]) => kamailio.rpc(cmd, ...a);
  const daemons: Daemon[] = (["kamailio", "rtpengine", "media-agent"] as const).map((name) => {
    const pid = s.stack.supervisor.pid(name)!;
    return { name, pid, pids: name === "kamailio" ? groupPids(pid) : [pid] };
  });
  const agentApi = new AgentApi(s.agentApi);
  const clock = new MediaClock(opusToneFrames(MEDIA_FRAMES));
  // Calls spread over a few TLS connections, as Meta's edge opens several.
  const edges = await Promise.all(Array.from({ length: 4 }, () => MetaEdge.connect({ target: s.tls })));
  // The callers are the warm-up's: the routing keeps state per business+user pair (callback
  // rules), so new callers during the soak would grow Kamailio's memory by design, not by a leak.
  const caller = (i: number) => `+1555${String(2000000 + (i % PLAN.warmUpCalls))}`;
  const place = (i: number) => oneCall(edges[i % edges.length], clock, agentApi, caller(i), i % AGENT_BYE_EVERY === AGENT_BYE_EVERY - 1);
  try {
    // Warm-up: every Kamailio worker has its bundle and TLS state, the agent's JIT is warm.
    const warmUp: CallResult[] = [];
    await runCalls(PLAN.warmUpCalls, PLAN.concurrent, place, (r) => warmUp.push(r));
    const settledAfterWarmUpMs = await settle(edges, s.ng, rpc);
    const before = await leftovers(daemons, s.ng, rpc, agentApi, []);
    if (snapshots) await heapSnapshot(daemons[2].pid, snapshots);

    const results: CallResult[] = [];
    const memory: Record<Daemon["name"], Array<[number, number]>> = { kamailio: [], rtpengine: [], "media-agent": [] };
    const sample = () => {
      for (const d of daemons) memory[d.name].push([results.length / 1000, memoryKiB(d)]);
    };
    clock.stretchedMs = 0;
    const cpu0 = daemons.map(daemonCpu);
    const benchCpu0 = cpuSeconds(process.pid);
    // This process's own delays: when they are large, the figures say more about the caller than the stack.
    const benchLoop = monitorEventLoopDelay({ resolution: 10 });
    benchLoop.enable();
    const t0 = performance.now();
    sample();
    const sampler = setInterval(sample, 1000);
    let lastReport = t0;
    await runCalls(PLAN.calls, PLAN.concurrent, place, (r) => {
      results.push(r);
      if (performance.now() - lastReport > 10_000) {
        lastReport = performance.now();
        const failed = results.filter((x) => x.outcome === "failed");
        const last = failed.length ? `, last: ${failed[failed.length - 1].reason}` : "";
        process.stderr.write(`soak: ${results.length}/${PLAN.calls} calls, ${failed.length} failed${last}, ${round(results.length / ((lastReport - t0) / 1000))} calls/s\n`);
      }
    });
    clearInterval(sampler);
    sample();
    const seconds = (performance.now() - t0) / 1000;
    const cpu = daemons.map((d, i) => daemonCpu(d) - cpu0[i]);
    const benchCpu = cpuSeconds(process.pid) - benchCpu0;
    benchLoop.disable();
    const settledMs = await settle(edges, s.ng, rpc);
    const after = await leftovers(daemons, s.ng, rpc, agentApi, results.flatMap((r) => (r.answerMs !== undefined ? [r.callId!] : [])));
    if (snapshots) await heapSnapshot(daemons[2].pid, snapshots);

    // ------------------------------------------------------------ figures
    const count = (o: string) => results.filter((r) => r.outcome === o).length;
    const failures: Record<string, number> = {};
    for (const r of results.filter((x) => x.outcome === "failed")) failures[r.reason!] = (failures[r.reason!] ?? 0) + 1;
    const answered = results.flatMap((r) => (r.answerMs === undefined ? [] : [r.answerMs]));
    const echoed = results.filter((r) => r.outcome !== "failed").map((r) => r.echoed);
    const received = results.filter((r) => r.outcome !== "failed").map((r) => r.received);
    const agentPacketsIn = after.agentRecords.map((r) => r.media?.packetsIn ?? 0);
    const warmedUpAt = memory.kamailio.length > 10 ? memory.kamailio[Math.floor(memory.kamailio.length / 10)][0] : 0;
    const perDaemon = daemons.map((d, i) => {
      // The slope after the first tenth of the soak (allocators and caches still filling).
      const points = memory[d.name].filter((p) => p[0] >= warmedUpAt);
      return {
        daemon: d.name,
        memoryKind: d.name === "kamailio" ? "Pss summed over its processes" : "RSS",
        memoryStartKiB: memory[d.name][0][1],
        memoryEndKiB: memory[d.name][memory[d.name].length - 1][1],
        memoryPeakKiB: Math.max(...memory[d.name].map((p) => p[1])),
        // [thousand calls done, KiB], about 40 points over the soak.
        memorySamples: memory[d.name].filter((_, k, all) => k % Math.max(1, Math.floor(all.length / 40)) === 0 || k === all.length - 1),
        slopeKiBPer1000Calls: round(slope(points)),
        // Allocators and V8's heap keep growing to their working size for a while (the agent's
        // for ~2,500 calls here); flat means flat once there: the second half of the soak.
        slopeSecondHalfKiBPer1000Calls: round(slope(memory[d.name].filter((p) => p[0] >= memory[d.name][memory[d.name].length - 1][0] / 2))),
        fdsAfterWarmUp: before.left.fds[d.name],
        fdsAfterSoak: after.left.fds[d.name],
        cpuSeconds: round(cpu[i], 2),
        cpuPerCallMs: round((cpu[i] / results.length) * 1000, 3),
      };
    });
    const figures = {
      plan: { ...PLAN, mediaFramesPerCall: MEDIA_FRAMES, echoWaitMs: ECHO_WAIT_MS, agentByeEvery: AGENT_BYE_EVERY, tlsConnections: edges.length },
      seconds: round(seconds),
      callsPerSecond: round(results.length / seconds),
      outcomes: { "ok: caller BYE": count("ok: caller BYE"), "ok: agent BYE": count("ok: agent BYE"), failed: count("failed") },
      failures,
      // The first failures with what the agent saw of them (its packets in, jitter buffer, concealment).
      failedCalls: results.filter((r) => r.outcome === "failed").slice(0, 20).map((r) => ({
        callId: r.callId ?? null, reason: r.reason, agentMedia: after.agentRecords.find((a) => a.callId === r.callId)?.media ?? null,
      })),
      warmUpFailed: warmUp.filter((r) => r.outcome === "failed").length,
      answerMs: { p50: round(percentile(answered, 50)), p99: round(percentile(answered, 99)), max: round(Math.max(...answered)) },
      strayPackets: results.reduce((n, r) => n + r.stray, 0),
      packetsBackPerCall: { min: Math.min(...received), p50: percentile(received, 50) },
      echoedFramesPerCall: { min: Math.min(...echoed), p50: percentile(echoed, 50), of: MEDIA_FRAMES },
      echoShare: { p1: round(percentile(echoed, 1) / MEDIA_FRAMES, 2), p50: round(percentile(echoed, 50) / MEDIA_FRAMES, 2) },
      agentJitterOverflowFrames: after.agentRecords.reduce((n, r) => n + (r.media?.jitter.overflow ?? 0), 0),
      agentPacketsInPerCall: { min: Math.min(...agentPacketsIn), p50: percentile(agentPacketsIn, 50), callsShort: agentPacketsIn.filter((n) => n < MEDIA_FRAMES).length, of: MEDIA_FRAMES },
      settledAfterWarmUpMs: Math.round(settledAfterWarmUpMs),
      settledAfterSoakMs: Math.round(settledMs),
      // INVITEs without an answer in time: CANCELled; those answered after all were ACKed and BYEd.
      invitesGivenUp: edges.reduce((n, e) => n + e.givenUp.cancelled, 0),
      lateAnswersEnded: edges.reduce((n, e) => n + e.givenUp.answeredLateAndEnded, 0),
      leftAfterWarmUp: before.left,
      leftAfterSoak: after.left,
      daemonExits: exits,
      daemons: perDaemon,
      benchCpuSeconds: round(benchCpu, 2),
      benchLoopDelayMs: { p99: round(benchLoop.percentile(99) / 1e6), max: round(benchLoop.max / 1e6) },
      // Audio this process sent late (its stalls) and stretched instead of bursting, summed over calls.
      benchStalledAudioMs: Math.round(clock.stretchedMs),
      totalSeconds: round((performance.now() - started) / 1000),
    };

    printTable(`soak: ${results.length} calls, ${PLAN.concurrent} at a time, ${figures.callsPerSecond} calls/s over ${figures.seconds} s`, ["outcome", "calls"], [
      ...Object.entries(figures.outcomes).map(([k, v]) => [k, v]),
      ...Object.entries(failures).map(([k, v]) => [`  ${k}`, v]),
    ]);
    printTable(`soak: what is left once every call has ended (all down ${round(settledMs / 1000)} s after the last call)`, ["", "after warm-up", "after soak"], [
      ["rtpengine sessions", before.left.rtpengineSessions, after.left.rtpengineSessions],
      ["Kamailio active dialogs", before.left.kamailioActiveDialogs, after.left.kamailioActiveDialogs],
      ["agent calls in progress", before.left.agentLiveCalls, after.left.agentLiveCalls],
      [`agent records not ended (the last ${after.left.agentRecordsChecked} calls)`, before.left.agentCallsNotEnded, after.left.agentCallsNotEnded],
      ...daemons.map((d) => [`${d.name} open fds`, before.left.fds[d.name], after.left.fds[d.name]]),
      ["Kamailio shm used (KiB)", round(before.left.kamailioShmUsed / 1024), round(after.left.kamailioShmUsed / 1024)],
      ["Kamailio pkg used, all processes (KiB)", round(before.left.kamailioPkgUsed / 1024), round(after.left.kamailioPkgUsed / 1024)],
    ]);
    printTable("soak: daemons during the soak", ["daemon", "memory (KiB) start → end", "slope KiB / 1k calls (after the first tenth)", "slope, second half", "CPU s", "CPU ms / call"], perDaemon.map((d) => [
      `${d.daemon} (${d.memoryKind})`, `${d.memoryStartKiB} → ${d.memoryEndKiB}`, d.slopeKiBPer1000Calls, d.slopeSecondHalfKiBPer1000Calls, d.cpuSeconds, d.cpuPerCallMs,
    ]));
    console.log(`answer (INVITE → 200) p50 ${figures.answerMs.p50} ms, p99 ${figures.answerMs.p99} ms; echoed frames per call min ${figures.echoedFramesPerCall.min}, p50 ${figures.echoedFramesPerCall.p50} of ${MEDIA_FRAMES}; agent got all ${MEDIA_FRAMES} frames in ${agentPacketsIn.length - figures.agentPacketsInPerCall.callsShort} of ${agentPacketsIn.length} calls; this process ${figures.benchCpuSeconds} CPU s, event-loop delay p99 ${figures.benchLoopDelayMs.p99} ms`);
    writeResult(args, "soak", figures);

    const problems = [
      ...(figures.outcomes.failed ? [`${figures.outcomes.failed} calls failed`] : []),
      ...(after.left.rtpengineSessions ? [`${after.left.rtpengineSessions} rtpengine sessions left`] : []),
      ...(after.left.kamailioActiveDialogs ? [`${after.left.kamailioActiveDialogs} Kamailio dialogs left`] : []),
      ...(after.left.agentLiveCalls ? [`${after.left.agentLiveCalls} agent calls in progress`] : []),
      ...(after.left.agentCallsNotEnded ? [`${after.left.agentCallsNotEnded} agent records not ended`] : []),
      ...daemons.filter((d) => after.left.fds[d.name] > before.left.fds[d.name]).map((d) => `${d.name} fds ${before.left.fds[d.name]} → ${after.left.fds[d.name]}`),
      ...exits,
    ];
    if (problems.length) {
      console.error(`soak: FAILED: ${problems.join("; ")}`);
      process.exitCode = 1;
    }
  } finally {
    clock.stop();
    for (const e of edges) e.close();
    await s.stop();
  }
}

await main();
