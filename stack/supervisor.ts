/**
 * A small supervisor for the stack's daemons (Kamailio, rtpengine, the media agent), the
 * foreground twin of the systemd units in deploy/systemd/: each daemon is its own child process
 * in its own process group; when one exits on its own, the exit is logged (which daemon, exit
 * code or signal, its last log lines) and it is started again after a short delay while the
 * others keep running. A daemon that keeps failing backs off (doubling delays up to a cap, each
 * logged) instead of spinning. stop() ends them all, last started first.
 */
import { EventEmitter } from "node:events";
import { readdirSync, readFileSync } from "node:fs";
import { killGroup } from "../build/process-group.js";

/** One running instance of a daemon, returned by its start() once it is ready. */
export interface DaemonHandle {
  readonly pid: number;
  /** Settles when the main process has exited. */
  readonly exited: Promise<unknown>;
  /** How it ended, once it has. */
  exitStatus(): { code: number | null; signal: NodeJS.Signals | null };
  /** Ends the daemon's whole process group and waits for it. */
  stop(): Promise<void>;
  /** The last lines it logged. */
  logTail(lines: number): string[];
}

export interface DaemonSpec {
  name: string;
  /** Starts one instance and resolves once it is ready (or rejects, having cleaned up). */
  start(): Promise<DaemonHandle>;
}

export interface SupervisorOptions {
  /** Where the supervisor's own lines go (default: stderr). */
  log?: (line: string) => void;
  /** Delay before the first restart after a crash (ms). */
  restartDelayMs?: number;
  /** The longest delay a crash loop backs off to (ms). */
  maxRestartDelayMs?: number;
  /** A daemon that ran this long counts as healthy again: its next crash restarts at once. */
  stableAfterMs?: number;
  /** How many of the daemon's last log lines an exit report shows. */
  tailLines?: number;
}

export interface ExitEvent {
  name: string;
  pid: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  ranMs: number;
}

export interface RestartEvent {
  name: string;
  pid: number;
  previousPid: number;
  /** From the exit to the new instance being ready. */
  downMs: number;
  /** From the exit to the new process being spawned. */
  respawnMs: number;
  attempt: number;
}

interface Slot {
  spec: DaemonSpec;
  handle?: DaemonHandle;
  startedAt: number;
  /** Failures in a row (crashes soon after a start, or failed starts). */
  failures: number;
}

export class Supervisor extends EventEmitter<{ exit: [ExitEvent]; restart: [RestartEvent]; gaveUp: [string] }> {
  private readonly slots: Slot[];
  private stopping = false;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly opts: Required<SupervisorOptions>;

  constructor(specs: DaemonSpec[], opts: SupervisorOptions = {}) {
    super();
    this.slots = specs.map((spec) => ({ spec, startedAt: 0, failures: 0 }));
    this.opts = {
      log: opts.log ?? ((line) => console.error(line)),
      restartDelayMs: opts.restartDelayMs ?? 250,
      maxRestartDelayMs: opts.maxRestartDelayMs ?? 30_000,
      stableAfterMs: opts.stableAfterMs ?? 30_000,
      tailLines: opts.tailLines ?? 15,
    };
  }

  /** Starts every daemon in order, each ready before the next; a failure stops those started. */
  async start(): Promise<void> {
    for (const slot of this.slots) {
      const began = Date.now();
      try {
        slot.handle = await slot.spec.start();
      } catch (err) {
        await this.stop();
        throw err;
      }
      slot.startedAt = Date.now();
      this.watch(slot, slot.handle);
      this.say(`${slot.spec.name} started (pid ${slot.handle.pid}), ready after ${Date.now() - began} ms`);
    }
  }

  /** The running instance of a daemon (undefined while it is down). */
  handle(name: string): DaemonHandle | undefined {
    return this.slot(name).handle;
  }

  pid(name: string): number | undefined {
    return this.slot(name).handle?.pid;
  }

  get names(): string[] {
    return this.slots.map((s) => s.spec.name);
  }

  /** Stops every daemon (last started first); nothing is restarted from here on. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    for (const slot of [...this.slots].reverse()) {
      const h = slot.handle;
      slot.handle = undefined;
      if (!h) continue;
      await h.stop();
      this.say(`${slot.spec.name} (pid ${h.pid}) stopped`);
    }
  }

  private slot(name: string): Slot {
    const slot = this.slots.find((s) => s.spec.name === name);
    if (!slot) throw new Error(`no daemon '${name}' (have ${this.names.join(", ")})`);
    return slot;
  }

  private say(line: string): void {
    this.opts.log(`supervisor: ${line}`);
  }

  private watch(slot: Slot, handle: DaemonHandle): void {
    void handle.exited.then(() => {
      if (this.stopping || slot.handle !== handle) return;
      const exitedAt = Date.now();
      const { code, signal } = handle.exitStatus();
      const ranMs = exitedAt - slot.startedAt;
      // Whatever the main process left behind in its group (Kamailio's workers) goes too, so the
      // new instance finds its ports free.
      killGroup(handle.pid, "SIGKILL");
      slot.handle = undefined;
      const how = signal ? `killed by ${signal}` : `exit code ${code}`;
      const tail = handle.logTail(this.opts.tailLines).map((l) => `    ${l}`);
      this.say(
        `${slot.spec.name} (pid ${handle.pid}) exited (${how}) after ${(ranMs / 1000).toFixed(1)} s; the others keep running` +
          (tail.length ? `; its last log lines:\n${tail.join("\n")}` : ""),
      );
      this.emit("exit", { name: slot.spec.name, pid: handle.pid, code, signal, ranMs });
      if (ranMs >= this.opts.stableAfterMs) slot.failures = 0;
      this.scheduleRestart(slot, exitedAt, handle.pid);
    });
  }

  private scheduleRestart(slot: Slot, exitedAt: number, previousPid: number): void {
    slot.failures++;
    const delay = Math.min(this.opts.maxRestartDelayMs, this.opts.restartDelayMs * 2 ** (slot.failures - 1));
    if (slot.failures > 1) {
      this.say(`${slot.spec.name} failed ${slot.failures} times in a row (crash loop?): backing off, next start in ${(delay / 1000).toFixed(2)} s`);
    } else {
      this.say(`restarting ${slot.spec.name} in ${delay} ms`);
    }
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      void this.restart(slot, exitedAt, previousPid);
    }, delay);
    this.timers.add(timer);
  }

  private async restart(slot: Slot, exitedAt: number, previousPid: number): Promise<void> {
    if (this.stopping) return;
    await groupGone(previousPid, 1000);
    const respawnMs = Date.now() - exitedAt;
    let handle: DaemonHandle;
    try {
      handle = await slot.spec.start();
    } catch (err) {
      if (this.stopping) return;
      this.say(`${slot.spec.name} did not start again: ${String((err as Error).message ?? err).split("\n").slice(0, 6).join("\n    ")}`);
      this.scheduleRestart(slot, exitedAt, previousPid);
      return;
    }
    if (this.stopping) {
      await handle.stop();
      return;
    }
    slot.handle = handle;
    slot.startedAt = Date.now();
    const downMs = Date.now() - exitedAt;
    this.say(`${slot.spec.name} restarted (pid ${handle.pid}, was ${previousPid}): spawned ${respawnMs} ms after the exit, ready after ${downMs} ms`);
    this.emit("restart", { name: slot.spec.name, pid: handle.pid, previousPid, downMs, respawnMs, attempt: slot.failures });
    this.watch(slot, handle);
  }
}

/**
 * Waits (briefly) until no live process is left in the group, so the new instance finds the
 * ports free. Zombies (dead, waiting for init to reap them) hold no sockets and do not count.
 */
async function groupGone(pgid: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && liveMembers(pgid) > 0) await new Promise((done) => setTimeout(done, 20));
}

function liveMembers(pgid: number): number {
  let n = 0;
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return 0; // no /proc: nothing to wait for
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // pid (comm) state ppid pgrp …; comm may contain spaces and parentheses.
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(pgrp) === pgid && state !== "Z" && state !== "X") n++;
    } catch {
      /* gone meanwhile */
    }
  }
  return n;
}
