/**
 * Event-loop delay, for measuring (AGENT_LOOP_DELAY_REPORT_MS, unset in production): every
 * period one log line "event loop delay" with the worst and the 99th-percentile delay (ms) seen
 * in that period, then the histogram starts over. A delay is how late the loop was for a
 * 5 ms check, so a line with maxMs 100 means something held the loop for about 100 ms.
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import type { Logger } from "pino";

export function reportLoopDelay(log: Logger, periodMs: number): () => void {
  const histogram = monitorEventLoopDelay({ resolution: 5 });
  histogram.enable();
  const timer = setInterval(() => {
    log.info({ maxMs: round(histogram.max / 1e6), p99Ms: round(histogram.percentile(99) / 1e6), meanMs: round(histogram.mean / 1e6) }, "event loop delay");
    histogram.reset();
  }, periodMs);
  return () => {
    clearInterval(timer);
    histogram.disable();
  };
}

const round = (ms: number) => Math.round(ms * 10) / 10;
