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
