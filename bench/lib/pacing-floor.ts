/**
 * The pacing floor of the machine itself: what a perfect agent would measure on the agent's core.
 * A Node process pinned there runs the agent's own frame clocks (rtp/frame-clock.ts: one timer for
 * all calls) for `calls` calls answered 20 per 10 ms, and each call's frame is a slice of fixed
 * CPU work (busy-waiting: no allocation, no I/O, so no garbage collection) instead of the media
 * work. A slice's send time is when it starts; its pacing error is |interval − 20 ms| against the
 * same slice one tick earlier, as the benchmark computes it for the agent's packets. What remains
 * is the machine's: timer granularity, the scheduler, and on a VM the host taking the virtual CPU
 * away.
 *
 * Run as a script: `tsx bench/lib/pacing-floor.ts <calls> <slice µs> <seconds>` prints one JSON line.
 */
import { execFileSync } from "node:child_process";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { registry } from "../../media-agent/src/metrics.js";
import { FrameClock } from "../../media-agent/src/rtp/frame-clock.js";
import { percentile } from "./report.js";

/**
 * The frame timer's runs so far, and those within 2 ms of their time, from the agent's
 * `wa_agent_frame_lateness_seconds` histogram in Prometheus text (its /metrics, or this probe's own).
 */
export function frameTimerRuns(metricsText: string): { count: number; within2ms: number } {
  const value = (pattern: RegExp) => Number(pattern.exec(metricsText)?.[1] ?? NaN);
  return { count: value(/^wa_agent_frame_lateness_seconds_count (\S+)$/m), within2ms: value(/^wa_agent_frame_lateness_seconds_bucket\{le="0\.002"\} (\S+)$/m) };
}

const frameLateness = async () => frameTimerRuns(await registry.getSingleMetricAsString("wa_agent_frame_lateness_seconds"));

export interface PacingFloor {
  calls: number;
  sliceUs: number;
  seconds: number;
  p50Ms: number;
  p99Ms: number;
  worstMs: number;
  /** Per cent of the timer's wakes more than 2 ms after their time. */
  wakesLateOver2msPct: number;
}

/** Runs the probe for `seconds`, pinned to `core` when given (taskset). */
export function measurePacingFloor(opts: { calls: number; sliceUs: number; seconds: number; core: string | null }): PacingFloor {
  const command = [process.execPath, "--import", "tsx", fileURLToPath(import.meta.url), String(opts.calls), String(opts.sliceUs), String(opts.seconds)];
  const [file, ...argv] = opts.core === null ? command : ["taskset", "-c", opts.core, ...command];
  return JSON.parse(execFileSync(file, argv, { encoding: "utf8" })) as PacingFloor;
}

async function probe(calls: number, sliceUs: number, seconds: number): Promise<PacingFloor> {
  const spin = (until: number) => {
    while (performance.now() < until);
  };
  // Preallocated: the probe itself must leave no garbage to collect.
  const errors = new Float64Array(calls * Math.ceil(seconds * 50));
  let count = 0;
  let worst = 0;
  const clocks: FrameClock[] = [];
  const measureFrom = performance.now() + 1000; // every call started and settled
  for (let k = 0; k < calls; k++) {
    let previous = 0;
    const clock = new FrameClock(() => {
      const sentAt = performance.now();
      if (previous > measureFrom) {
        const error = Math.abs(sentAt - previous - 20);
        if (count < errors.length) errors[count++] = error;
        if (error > worst) worst = error;
      }
      previous = sentAt;
      spin(sentAt + sliceUs / 1000);
    });
    clocks.push(clock);
    clock.start();
    // Answered as the benchmark's calls are: 20 per 10 ms.
    if (k % 20 === 19) await new Promise((done) => setTimeout(done, 10));
  }
  await new Promise((done) => setTimeout(done, measureFrom - performance.now()));
  const lateBefore = await frameLateness();
  await new Promise((done) => setTimeout(done, seconds * 1000));
  const late = await frameLateness();
  for (const clock of clocks) clock.stop();
  const round = (ms: number) => Math.round(ms * 100) / 100;
  const measured = Array.from(errors.subarray(0, count));
  return {
    calls,
    sliceUs,
    seconds,
    p50Ms: round(percentile(measured, 50)),
    p99Ms: round(percentile(measured, 99)),
    worstMs: round(worst),
    wakesLateOver2msPct: round((100 * (late.count - late.within2ms - (lateBefore.count - lateBefore.within2ms))) / (late.count - lateBefore.count)),
  };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [calls, sliceUs, seconds] = process.argv.slice(2).map(Number);
  console.log(JSON.stringify(await probe(calls, sliceUs, seconds)));
}
