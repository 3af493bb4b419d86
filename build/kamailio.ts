/**
 * Starts and stops a real Kamailio running kamailio/kamailio.cfg with the routing bundle.
 * Used by the KEMI type generator, `npm start` and the integration tests.
 *
 * Kamailio runs in the foreground (-DD) in its own process group, logging to stderr (-E),
 * with its run directory, ctl socket and ports all chosen by the caller, so several
 * instances can run side by side. stop() ends the whole group and waits for it.
 */
import { spawn, execFile, execFileSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, createWriteStream, readFileSync, writeFileSync, type WriteStream } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { promisify } from "node:util";
import { REPO_ROOT } from "./bundle.js";
import { sipPing } from "./sip-ping.js";
import { GroupProcess, killGroup } from "./process-group.js";
import { DEFAULT_AGENT_URI, dispatcherList, parseAgentUris } from "../routing/policy/agent-pool.js";

const execFileP = promisify(execFile);
export const KAMAILIO_CFG = resolve(REPO_ROOT, "kamailio/kamailio.cfg");
export const TLS_CFG_TEMPLATE = resolve(REPO_ROOT, "kamailio/tls.cfg");
export const SYSTEM_CA_LIST = "/etc/ssl/certs/ca-certificates.crt";
/** Per-process memory: TLS contexts and the JavaScript heap need more than the 8 MB default. */
export const PKG_MEMORY_MB = 32;

export interface KamailioOptions {
  /** Directory for pid, ctl socket, JSON-RPC FIFO and the log file. */
  runDir: string;
  /** WA_* settings (see kamailio.cfg); WA_RUN_DIR and WA_CTL_SOCKET are set from runDir. */
  env: Record<string, string>;
  cfg?: string;
  /** How long to wait for the ctl socket to answer. */
  startTimeoutMs?: number;
  /** Also copy every log line here (e.g. process.stdout for `npm start`). */
  echo?: NodeJS.WritableStream;
  /** UDP listener that must answer OPTIONS before it counts as ready (default: WA_INTERNAL_*). */
  probe?: { host: string; port: number };
}

export class KamailioProcess extends GroupProcess {
  readonly ctlSocket: string;
  readonly logFile: string;

  constructor(
    child: ChildProcess,
    runDir: string,
    private readonly logStream: WriteStream,
  ) {
    super(child);
    this.ctlSocket = `unix:${join(runDir, "kamailio_ctl")}`;
    this.logFile = join(runDir, "kamailio.log");
  }

  override appendLog(chunk: string): void {
    super.appendLog(chunk);
    this.logStream.write(chunk);
  }

  /** Runs `kamcmd` against this instance's ctl socket. */
  async rpc(command: string, ...args: string[]): Promise<string> {
    const { stdout } = await execFileP("kamcmd", ["-s", this.ctlSocket, command, ...args], { timeout: 10_000 });
    return stdout;
  }

  /** Waits until the log matches, or fails with the log's tail. */
  async waitForLog(pattern: RegExp, timeoutMs = 5000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.logText().match(pattern);
      if (m) return m;
      if (Date.now() > deadline) {
        throw new Error(`Kamailio log did not show ${pattern} within ${timeoutMs} ms; log tail:\n${this.logText().slice(-3000)}`);
      }
      await sleep(50);
    }
  }

  /** SIGTERM to the whole process group, SIGKILL if it is still there after 5 s. */
  async stop(): Promise<void> {
    if (!this.running) return;
    await this.stopGroup();
    await new Promise<void>((done) => this.logStream.end(done));
  }

  /** Kills the whole group at once, as a crash would (nothing is flushed on the way out). */
  async crash(): Promise<void> {
    if (!this.running) return;
    killGroup(this.pid, "SIGKILL");
    await this.exited;
    await new Promise<void>((done) => this.logStream.end(done));
  }

  /** Resolves when the main process exits. */
  whenExited(): Promise<number | null> {
    return this.exited;
  }
}

/** Writes kamailio/tls.cfg with the @WA_…@ values filled in; an unknown one is an error. */
export function renderTlsConfig(values: Record<string, string | undefined>, outFile: string): string {
  const text = readFileSync(TLS_CFG_TEMPLATE, "utf8").replace(/@(WA_[A-Z_]+)@/g, (_, key: string) => {
    const v = key === "WA_META_CA_LIST" ? (values[key] ?? SYSTEM_CA_LIST) : values[key];
    if (!v) throw new Error(`kamailio/tls.cfg needs ${key}`);
    return v;
  });
  writeFileSync(outFile, text);
  return outFile;
}

/** The SQLite database behind the callback-state htable, created from the schema when missing. */
export function ensureStateDb(file: string): string {
  if (!existsSync(file)) {
    mkdirSync(dirname(file), { recursive: true });
    execFileSync("sqlite3", [file], { input: readFileSync(resolve(REPO_ROOT, "kamailio/callback-state.sql")) });
  }
  return `sqlite://${file}`;
}

/** The ndb_redis server name the routing uses (routing/wa/callback-state-redis.ts). */
export const STATE_REDIS_SERVER = "wa_state";

/**
 * ndb_redis's server definition for WA_STATE_REDIS_URL (redis://[:password@]host[:port][/db]),
 * which the cfg language cannot take apart; a malformed URL is an error naming the key.
 */
export function redisServerDefinition(url: string): string {
  const m = /^redis:\/\/(?:(?:[^:@/]*):([^@/]*)@)?([0-9A-Za-z.-]+)(?::(\d{1,5}))?(?:\/(\d{1,2}))?\/?$/.exec(url);
  if (!m) throw new Error(`WA_STATE_REDIS_URL: '${url}' is not redis://[:password@]host[:port][/db]`);
  const parts = [`name=${STATE_REDIS_SERVER}`, `addr=${m[2]}`, `port=${m[3] ?? "6379"}`, `db=${m[4] ?? "0"}`];
  if (m[1]) parts.push(`pass=${decodeURIComponent(m[1])}`);
  return parts.join(";");
}

/** Writes dispatcher's list of the agents in WA_AGENT_URI (routing/policy/agent-pool.ts). */
export function writeAgentList(agentUris: string, file: string): string {
  const errors: string[] = [];
  const agents = parseAgentUris(agentUris, errors);
  if (errors.length) throw new Error(errors.join("; "));
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, dispatcherList(agents));
  return file;
}

export async function startKamailio(opts: KamailioOptions): Promise<KamailioProcess> {
  mkdirSync(opts.runDir, { recursive: true });
  const cfg = opts.cfg ?? KAMAILIO_CFG;
  const ours = cfg === KAMAILIO_CFG;
  const derived: Record<string, string> = {};
  if (ours && !opts.env.WA_TLS_CONFIG) derived.WA_TLS_CONFIG = renderTlsConfig(opts.env, join(opts.runDir, "tls.cfg"));
  if (ours) {
    const url = opts.env.WA_STATE_DB_URL ?? `sqlite://${join(opts.runDir, "callback.sqlite")}`;
    if (url.startsWith("sqlite://")) derived.WA_STATE_DB_URL = ensureStateDb(url.slice("sqlite://".length));
    if (opts.env.WA_STATE_REDIS_URL) derived.WA_STATE_REDIS_SERVER = redisServerDefinition(opts.env.WA_STATE_REDIS_URL);
    if (!opts.env.WA_DISPATCHER_LIST) {
      derived.WA_DISPATCHER_LIST = writeAgentList(opts.env.WA_AGENT_URI ?? DEFAULT_AGENT_URI, join(opts.runDir, "dispatcher.list"));
    }
  }
  const ctlPath = join(opts.runDir, "kamailio_ctl");
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...opts.env,
    ...derived,
    WA_RUN_DIR: opts.runDir,
    WA_CTL_SOCKET: `unix:${ctlPath}`,
  };
  const child = spawn(
    "kamailio",
    ["-f", cfg, "-DD", "-E", "-M", String(PKG_MEMORY_MB), "-Y", opts.runDir, "-P", join(opts.runDir, "kamailio.pid")],
    { env, detached: true, stdio: ["ignore", "pipe", "pipe"] },
  );
  const k = new KamailioProcess(child, opts.runDir, createWriteStream(join(opts.runDir, "kamailio.log")));
  for (const stream of [child.stdout!, child.stderr!]) {
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => {
      k.appendLog(chunk);
      opts.echo?.write(chunk);
    });
  }
  const deadline = Date.now() + (opts.startTimeoutMs ?? 15_000);
  for (;;) {
    if (!k.running) {
      throw new Error(`Kamailio exited during start-up (cfg ${cfg}); log tail:\n${k.logText().slice(-4000)}`);
    }
    try {
      // Ready means SIP is answered: workers can still be in their start-up after ctl answers.
      await k.rpc("core.uptime");
      const probe = opts.probe ?? { host: env.WA_INTERNAL_IP ?? "127.0.0.1", port: Number(env.WA_INTERNAL_PORT ?? 5070) };
      await sipPing(probe.host, probe.port, 500);
      return k;
    } catch {
      if (Date.now() > deadline) {
        await k.stop();
        throw new Error(`Kamailio did not answer on ${ctlPath} in time; log tail:\n${k.logText().slice(-4000)}`);
      }
      await sleep(100);
    }
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}
