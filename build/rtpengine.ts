/**
 * Runs rtpengine in userspace (no kernel module: `--table=-1`) in the foreground, in its own
 * process group, with its own ng port and media port range, and stops it. Used by `npm start`
 * and by the tests, so both run the daemon the same way.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, mkdirSync } from "node:fs";
import { join } from "node:path";
import { GroupProcess } from "./process-group.js";
import { ngCommand } from "./rtpengine-ng.js";
import { sleep } from "./kamailio.js";

export interface RtpengineOptions {
  runDir: string;
  /** `name/address` pairs; the first is the default. E.g. ["external/203.0.113.5", "internal/127.0.0.1"]. */
  interfaces: string[];
  ng: { host: string; port: number };
  portMin: number;
  portMax: number;
  /** Seconds without media before rtpengine drops a call on its own. */
  timeoutSeconds?: number;
  /** address:port of rtpengine's HTTP listener, which serves Prometheus text at /metrics. */
  metrics?: string;
  logLevel?: number;
  echo?: NodeJS.WritableStream;
}

export class RtpengineProcess extends GroupProcess {
  constructor(
    child: ChildProcess,
    readonly ng: { host: string; port: number },
    readonly logFile: string,
  ) {
    super(child);
  }

  /** The `udp:host:port` Kamailio's rtpengine module talks to. */
  get sock(): string {
    return `udp:${this.ng.host}:${this.ng.port}`;
  }

  stop(): Promise<void> {
    return this.stopGroup();
  }
}

export async function startRtpengine(opts: RtpengineOptions): Promise<RtpengineProcess> {
  mkdirSync(opts.runDir, { recursive: true });
  const args = [
    "--config-file=none",
    "--table=-1",
    ...opts.interfaces.map((i) => `--interface=${i}`),
    `--listen-ng=${opts.ng.host}:${opts.ng.port}`,
    ...(opts.metrics ? [`--listen-http=${opts.metrics}`] : []),
    `--port-min=${opts.portMin}`,
    `--port-max=${opts.portMax}`,
    `--timeout=${opts.timeoutSeconds ?? 60}`,
    // A deleted call leaves at once, so "no session left" can be checked right after a BYE.
    "--delete-delay=0",
    "--no-fallback",
    "--foreground",
    "--log-stderr",
    `--log-level=${opts.logLevel ?? 6}`,
    `--pidfile=${join(opts.runDir, "rtpengine.pid")}`,
  ];
  const child = spawn("rtpengine", args, { detached: true, stdio: ["ignore", "pipe", "pipe"] });
  const logFile = join(opts.runDir, "rtpengine.log");
  const logStream = createWriteStream(logFile);
  const r = new RtpengineProcess(child, opts.ng, logFile);
  for (const stream of [child.stdout!, child.stderr!]) {
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => {
      r.appendLog(chunk);
      logStream.write(chunk);
      opts.echo?.write(chunk);
    });
  }
  void r.exited.then(() => logStream.end());
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (!r.running) throw new Error(`rtpengine exited during start-up: ${r.logText().slice(-2000)}`);
    try {
      const pong = await ngCommand(opts.ng, { command: "ping" }, 300);
      if (pong.result === "pong") return r;
    } catch {
      if (Date.now() > deadline) {
        await r.stop();
        throw new Error(`rtpengine did not answer ng ping on ${opts.ng.host}:${opts.ng.port}: ${r.logText().slice(-2000)}`);
      }
      await sleep(100);
    }
  }
}
