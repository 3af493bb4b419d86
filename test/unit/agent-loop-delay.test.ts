/**
 * The agent's measuring report (AGENT_LOOP_DELAY_REPORT_MS, read by `npm run bench -- agent`):
 * a stall of the event loop and a garbage collection show up in the period's line.
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { pino } from "pino";
import t from "tap";
import { reportLoopDelay, type GcPauses, type Stall } from "../../media-agent/src/loop-delay.js";

interface Line {
  msg: string;
  maxMs: number;
  worstStall?: Stall;
  gc: GcPauses;
}

t.test("a period's line: the loop held 60 ms, and a full collection, counted as a mark-compact", async (t) => {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  const lines: Line[] = [];
  const log = pino({ base: null }, { write: (s: string) => void lines.push(JSON.parse(s) as Line) });
  const stop = reportLoopDelay(log, 300);
  t.teardown(stop);
  await new Promise((done) => setTimeout(done, 50));
  const until = performance.now() + 60;
  while (performance.now() < until); // the loop held
  gc();
  await new Promise((done) => setTimeout(done, 400));
  const line = lines.find((l) => l.maxMs >= 50);
  t.ok(line, `a line with the 60 ms stall: ${JSON.stringify(lines)}`);
  t.equal(line?.msg, "event loop delay");
  t.ok((line?.gc.markCompacts ?? 0) >= 1, "the forced collection counted");
  t.ok((line?.gc.markCompactMaxMs ?? 0) > 0, "with its pause");
  if (line?.worstStall) t.ok(line.worstStall.ms >= 50 && line.worstStall.onCpuMs >= 40, "the stall was the loop's own work, on the CPU");
});
