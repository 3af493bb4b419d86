/**
 * Runs redis-server (Debian's) in the foreground in its own process group, on loopback, with its
 * data in `dir`, and stops it. For the KEMI type generator (ndb_redis will not start without a
 * Redis to talk to) and the scale-out tests; production runs the distribution's redis service.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdirSync } from "node:fs";
import { promisify } from "node:util";
import { GroupProcess } from "./process-group.js";
import { sleep } from "./kamailio.js";

const execFileP = promisify(execFile);

export class RedisProcess extends GroupProcess {
  constructor(
    child: ChildProcess,
    readonly port: number,
  ) {
    super(child);
  }

  /** The WA_STATE_REDIS_URL that reaches it. */
  get url(): string {
    return `redis://127.0.0.1:${this.port}/0`;
  }

  /** Runs one command through redis-cli (raw output, trimmed). */
  async cli(...args: string[]): Promise<string> {
    const { stdout } = await execFileP("redis-cli", ["-h", "127.0.0.1", "-p", String(this.port), "--raw", ...args], { timeout: 5000 });
    return stdout.replace(/\n$/, "");
  }

  stop(): Promise<void> {
    return this.stopGroup();
  }
}

export async function startRedis(opts: { dir: string; port: number }): Promise<RedisProcess> {
  mkdirSync(opts.dir, { recursive: true });
  // Append-only file, fsynced every second: state survives a restart of Redis too.
  const child = spawn(
    "redis-server",
    ["--bind", "127.0.0.1", "--port", String(opts.port), "--dir", opts.dir, "--save", "", "--appendonly", "yes", "--daemonize", "no", "--loglevel", "warning"],
    { detached: true, stdio: ["ignore", "pipe", "pipe"] },
  );
  const r = new RedisProcess(child, opts.port);
  for (const stream of [child.stdout!, child.stderr!]) {
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => r.appendLog(chunk));
  }
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (!r.running) throw new Error(`redis-server exited during start-up: ${r.logText().slice(-2000)}`);
    try {
      if ((await r.cli("PING")) === "PONG") return r;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      await r.stop();
      throw new Error(`redis-server did not answer PING on 127.0.0.1:${opts.port}: ${r.logText().slice(-2000)}`);
    }
    await sleep(50);
  }
}
