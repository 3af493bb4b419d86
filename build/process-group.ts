/**
 * Kamailio and rtpengine run in their own process groups (so a stop reaches every child) and
 * would outlive us: every group started here is killed when we exit, and when a signal ends us
 * (a test runner's timeout) unless the program handles that signal itself.
 */
const live = new Set<number>();

export function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    /* already gone */
  }
}

/** Registers a group leader's pid until its exit promise settles. */
export function trackGroup(pid: number, exited: Promise<unknown>): void {
  live.add(pid);
  void exited.then(() => live.delete(pid));
}

const killAll = () => {
  for (const pid of live) killGroup(pid, "SIGKILL");
};
process.on("exit", killAll);
for (const [signal, code] of [["SIGTERM", 143], ["SIGINT", 130], ["SIGHUP", 129]] as const) {
  process.on(signal, () => {
    if (process.listenerCount(signal) > 1) return;
    killAll();
    process.exit(code);
  });
}

/**
 * A daemon we run in the foreground in its own process group (Kamailio, rtpengine): its exit,
 * its collected output, and a stop that reaches every child.
 */
export class GroupProcess {
  readonly exited: Promise<number | null>;
  private exitCode: number | null | undefined;
  private log = "";

  constructor(protected readonly child: import("node:child_process").ChildProcess) {
    this.exited = new Promise((done) =>
      child.on("exit", (code) => {
        this.exitCode = code;
        done(code);
      }),
    );
    trackGroup(child.pid!, this.exited);
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.exitCode === undefined;
  }

  /** The signal that ended the main process (null while it runs or when it exited by itself). */
  get exitSignal(): NodeJS.Signals | null {
    return this.child.signalCode;
  }

  /** Called from the output pipes. */
  appendLog(chunk: string): void {
    this.log += chunk;
  }

  /** Everything it printed so far. */
  logText(): string {
    return this.log;
  }

  /** SIGTERM to the whole group, SIGKILL if it is still there after 5 s. */
  protected async stopGroup(): Promise<void> {
    if (!this.running) return;
    killGroup(this.pid, "SIGTERM");
    const timer = setTimeout(() => killGroup(this.pid, "SIGKILL"), 5000);
    await this.exited;
    clearTimeout(timer);
    killGroup(this.pid, "SIGKILL"); // children that outlived the main process
  }
}
