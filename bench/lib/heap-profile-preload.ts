/**
 * Preloaded into the agent by bench/agent.ts when AGENT_BENCH_HEAP_PROF=<dir> is set (a
 * measuring knob, never in production): V8's sampling heap profiler over the benchmark's
 * measured window, counting only objects that live until a mark-compact: what the old generation
 * has to collect, the allocations behind the event loop's longest garbage-collection pauses
 * (young garbage, cheap to collect, is left out). The benchmark's SIGUSR2 at the window's start
 * starts it; the next one writes <dir>/agent-<pid>.heapprofile (Chrome DevTools opens it;
 * bench/lib/heap-profile.ts summarises it).
 */
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import { join } from "node:path";

const dir = process.env.AGENT_HEAP_PROF_DIR;
if (dir) {
  const session = new Session();
  session.connect();
  let sampling = false;
  process.on("SIGUSR2", () => {
    if (!sampling) {
      sampling = true;
      session.post("HeapProfiler.enable");
      session.post("HeapProfiler.startSampling", { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true });
      return;
    }
    sampling = false;
    session.post("HeapProfiler.stopSampling", (err, result) => {
      if (err) console.error(`heap profile: ${err.message}`);
      else writeFileSync(join(dir, `agent-${process.pid}.heapprofile`), JSON.stringify(result.profile));
    });
  });
}
