/**
 * The agent's helper threads (V8's compiler and task workers, libuv's pool that writes the
 * trace files) run below normal priority, as its speech workers do: where they share a core
 * with the event loop that paces every call's RTP, the event loop must not wait for them.
 *
 * Measured with the agent alone on one core (bench/agent.ts, 50 voice calls): in the worst
 * event-loop stalls the loop's thread had waited up to 18 ms for the core (its schedstat) while
 * a helper ran. Threads started later (a Worker, the inspector) keep normal priority. Linux
 * only: threads are found in /proc/self/task; elsewhere nothing changes.
 */
import { readdirSync } from "node:fs";
import { stat } from "node:fs/promises";
import { constants, getPriority, setPriority } from "node:os";

const BELOW_NORMAL = constants.priority.PRIORITY_BELOW_NORMAL;

/** Lowers every thread of this process but the event loop's (none is raised); returns how many it lowered. */
export async function lowerHelperThreads(): Promise<number> {
  // libuv starts its pool with the first request that needs it: one now, so its threads exist.
  await stat(".");
  let tids: string[];
  try {
    tids = readdirSync("/proc/self/task");
  } catch {
    return 0;
  }
  let lowered = 0;
  for (const tid of tids.map(Number)) {
    // The main thread's id is the process id.
    if (tid === process.pid) continue;
    try {
      if (getPriority(tid) >= BELOW_NORMAL) continue;
      setPriority(tid, BELOW_NORMAL);
      lowered++;
    } catch {
      // The thread ended meanwhile.
    }
  }
  return lowered;
}
