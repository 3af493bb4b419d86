/**
 * Event-loop delay, for measuring (AGENT_LOOP_DELAY_REPORT_MS, unset in production): every
 * period one log line "event loop delay" with the worst and the 99th-percentile delay (ms) seen
 * in that period, then the histogram starts over. A delay is how late the loop was for a
 * 5 ms check, so a line with maxMs 100 means something held the loop for about 100 ms.
 *
 * The line also splits the period's worst stall (`worstStall`: the longest time between two
 * runs of a 5 ms timer) by what the loop's thread did meanwhile, from its schedstat: on the CPU
 * (the agent's own work: JavaScript, GC) and waiting for the CPU (another thread or process had
 * it); the rest is the thread asleep until the check was due, or the machine's host holding the
 * CPU. Linux only; elsewhere the line has no worstStall.
 *
 * And the period's garbage collections (`gc`): how many young-generation collections
 * (scavenges) and mark-compacts ran, and the longest pause of each kind — the event loop's
 * pauses that its own work does not explain.
 */
import { readFileSync } from "node:fs";
import { constants, monitorEventLoopDelay, PerformanceObserver } from "node:perf_hooks";
import type { Logger } from "pino";

const CHECK_MS = 5;

/** A stall, and how much of it the loop's thread spent on the CPU and waiting for it (ms). */
export interface Stall {
  ms: number;
  onCpuMs: number;
  waitingMs: number;
}

/** A period's garbage collections: count and longest pause (ms) of each kind. */
export interface GcPauses {
  scavenges: number;
  scavengeMaxMs: number;
  markCompacts: number;
  markCompactMaxMs: number;
}

export function reportLoopDelay(log: Logger, periodMs: number): () => void {
  const histogram = monitorEventLoopDelay({ resolution: CHECK_MS });
  histogram.enable();
  const stalls = schedstatReadable() ? worstStallProbe() : null;
  const gcs = gcCounter();
  const timer = setInterval(() => {
    const worstStall = stalls?.takeWorst();
    log.info({ maxMs: round(histogram.max / 1e6), p99Ms: round(histogram.percentile(99) / 1e6), meanMs: round(histogram.mean / 1e6), worstStall, gc: gcs.take() }, "event loop delay");
    histogram.reset();
  }, periodMs);
  return () => {
    clearInterval(timer);
    stalls?.stop();
    gcs.stop();
    histogram.disable();
  };
}

function gcCounter(): { take(): GcPauses; stop(): void } {
  const empty = (): GcPauses => ({ scavenges: 0, scavengeMaxMs: 0, markCompacts: 0, markCompactMaxMs: 0 });
  let period = empty();
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = (entry as unknown as { detail?: { kind?: number } }).detail?.kind;
      if (kind === constants.NODE_PERFORMANCE_GC_MINOR) {
        period.scavenges++;
        period.scavengeMaxMs = Math.max(period.scavengeMaxMs, round(entry.duration));
      } else if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) {
        period.markCompacts++;
        period.markCompactMaxMs = Math.max(period.markCompactMaxMs, round(entry.duration));
      }
    }
  });
  observer.observe({ entryTypes: ["gc"] });
  return {
    take() {
      const taken = period;
      period = empty();
      return taken;
    },
    stop: () => observer.disconnect(),
  };
}

/** The loop thread's time on the CPU and waiting for it, ms (/proc/thread-self/schedstat: ns ns count). */
function schedstat(): { runMs: number; waitMs: number } {
  const [run, wait] = readFileSync("/proc/thread-self/schedstat", "latin1").split(" ").map(Number);
  return { runMs: run / 1e6, waitMs: wait / 1e6 };
}

function schedstatReadable(): boolean {
  try {
    return Number.isFinite(schedstat().runMs);
  } catch {
    return false;
  }
}

function worstStallProbe(): { takeWorst(): Stall; stop(): void } {
  let worst: Stall = { ms: 0, onCpuMs: 0, waitingMs: 0 };
  let last = performance.now();
  let lastSched = schedstat();
  const probe = setInterval(() => {
    const now = performance.now();
    const sched = schedstat();
    if (now - last > worst.ms) worst = { ms: round(now - last), onCpuMs: round(sched.runMs - lastSched.runMs), waitingMs: round(sched.waitMs - lastSched.waitMs) };
    last = now;
    lastSched = sched;
  }, CHECK_MS);
  return {
    takeWorst() {
      const taken = worst;
      worst = { ms: 0, onCpuMs: 0, waitingMs: 0 };
      return taken;
    },
    stop: () => clearInterval(probe),
  };
}

const round = (ms: number) => Math.round(ms * 10) / 10;
