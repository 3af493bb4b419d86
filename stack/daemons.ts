/**
 * The three daemons as the supervisor sees them: how each is started, when it counts as ready,
 * where it logs. Kamailio and rtpengine are started by build/kamailio.ts and build/rtpengine.ts
 * (the same code the tests use); the media agent runs as `node --single-threaded-gc
 * --max-semi-space-size=2 --import tsx media-agent/src/main.ts` with its AGENT_* settings, its output appended to a log file.
 */
import { spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { REPO_ROOT } from "../build/bundle.js";
import { sleep, startKamailio, type KamailioProcess } from "../build/kamailio.js";
import { GroupProcess } from "../build/process-group.js";
import { startRtpengine, type RtpengineOptions } from "../build/rtpengine.js";
import type { DaemonHandle, DaemonSpec } from "./supervisor.js";

export const AGENT_MAIN = join(REPO_ROOT, "media-agent/src/main.ts");

/**
 * V8 flags the media agent runs with (here, in bench/agent.ts and in
 * deploy/systemd/wa-media-agent.service), measured with a voice profile at 50 calls
 * (`npm run bench -- agent`, bench/HISTORY.md, "The media agent"):
 * - `--single-threaded-gc`: the collector works on the event loop's thread only. An agent has a
 *   core to itself (one process per core), so V8's parallel helpers have no core to run on in
 *   parallel: the event loop waited for helpers that were waiting for its core. p99 pacing
 *   error 19-21 ms (96-263 gaps > 40 ms) -> 5-11 ms (0-22); worst event-loop stall 35-57 ms ->
 *   20-44 ms.
 * - `--max-semi-space-size=2` (MB; V8's default here is 16): with the default young generation
 *   the agent allocates ~8 MB between two mark-compacts, so it is never scavenged and every
 *   young object is evacuated in the mark-compact's final pause (7-20 ms on one thread). With
 *   2 MB, scavenges of ~2 ms (at most 3.5-6.5) clear it, half as many mark-compacts run and their
 *   pause is 6-9 ms. Worst stall 25-36 ms -> 16-29 ms (five runs each, alternating), p99 pacing
 *   error 8-11 -> 5.5-11 ms; at 75 calls gaps > 40 ms 674-1,058 -> 70-263.
 */
export const AGENT_NODE_FLAGS = ["--single-threaded-gc", "--max-semi-space-size=2"];

/** Keeps the previous instance's log beside the new one (`x.log` → `x.prev.log`). */
function keepPreviousLog(file: string): void {
  if (existsSync(file) && statSync(file).size > 0) renameSync(file, file.replace(/\.log$/, ".prev.log"));
}

function tailOf(text: string, lines: number): string[] {
  return text.split("\n").filter((l) => l.trim()).slice(-lines);
}

export interface KamailioHandle extends DaemonHandle {
  /** For kamcmd (rpc) and its log. */
  kamailio: KamailioProcess;
}

/** Kamailio with kamailio/kamailio.cfg; ready when SIP OPTIONS on the internal listener is answered. */
export function kamailioDaemon(opts: { runDir: string; env: Record<string, string>; name?: string }): DaemonSpec {
  return {
    name: opts.name ?? "kamailio",
    async start() {
      mkdirSync(opts.runDir, { recursive: true });
      keepPreviousLog(join(opts.runDir, "kamailio.log"));
      const k = await startKamailio({ runDir: opts.runDir, env: opts.env });
      return { ...handleOf(k, (n) => tailOf(k.logText(), n)), kamailio: k } satisfies KamailioHandle;
    },
  };
}

/** rtpengine in userspace; ready when it answers an ng ping. */
export function rtpengineDaemon(opts: RtpengineOptions & { name?: string }): DaemonSpec {
  return {
    name: opts.name ?? "rtpengine",
    async start() {
      mkdirSync(opts.runDir, { recursive: true });
      keepPreviousLog(join(opts.runDir, "rtpengine.log"));
      const r = await startRtpengine(opts);
      return handleOf(r, (n) => tailOf(r.logText(), n));
    },
  };
}

class AgentProcess extends GroupProcess {
  stop(): Promise<void> {
    return this.stopGroup();
  }
}

/**
 * The media agent as its own process (`media-agent/src/main.ts`) with `env` (AGENT_*) on top of
 * ours; its output is appended to logFile. Ready when its call API answers GET /calls.
 */
export function mediaAgentDaemon(opts: {
  env: Record<string, string>;
  logFile: string;
  api: { host: string; port: number };
  startTimeoutMs?: number;
  name?: string;
}): DaemonSpec {
  return {
    name: opts.name ?? "media-agent",
    async start() {
      mkdirSync(dirname(opts.logFile), { recursive: true });
      keepPreviousLog(opts.logFile);
      const fd = openSync(opts.logFile, "a");
      const child = spawn(process.execPath, [...AGENT_NODE_FLAGS, "--import", import.meta.resolve("tsx"), AGENT_MAIN], {
        env: { ...process.env, ...opts.env },
        detached: true,
        stdio: ["ignore", fd, fd],
      });
      closeSync(fd);
      const agent = new AgentProcess(child);
      const logTail = (n: number) => (existsSync(opts.logFile) ? tailOf(readFileSync(opts.logFile, "utf8"), n) : []);
      const deadline = Date.now() + (opts.startTimeoutMs ?? 20_000);
      for (;;) {
        if (!agent.running) throw new Error(`the media agent exited during start-up (${opts.logFile}):\n${logTail(20).join("\n")}`);
        if (await callApiAnswers(opts.api)) break;
        if (Date.now() > deadline) {
          await agent.stop();
          throw new Error(`the media agent's call API did not answer on http://${opts.api.host}:${opts.api.port}/calls in time:\n${logTail(20).join("\n")}`);
        }
        await sleep(100);
      }
      return handleOf(agent, logTail);
    },
  };
}

/** GET /calls → 200 within a short timeout. */
export async function callApiAnswers(api: { host: string; port: number }): Promise<boolean> {
  try {
    const res = await fetch(`http://${api.host}:${api.port}/calls`, { signal: AbortSignal.timeout(500) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

/** A running group process as the supervisor sees it; exitStatus is read after it exited. */
function handleOf(p: GroupProcess & { stop(): Promise<void> }, logTail: (lines: number) => string[]): DaemonHandle {
  let code: number | null = null;
  void p.exited.then((c) => (code = c));
  return { pid: p.pid, exited: p.exited, exitStatus: () => ({ code, signal: p.exitSignal }), stop: () => p.stop(), logTail };
}
