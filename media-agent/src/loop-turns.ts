/**
 * Work that may wait a little but must not hold up live calls: each job runs in an event-loop
 * turn of its own, so the timers (every call's frame clock) run between two jobs.
 *
 * Why: when many calls end at once (a mass hang-up; the BYEs all arrive in one poll of the
 * loop), each call writing its trace records and WAVs in its BYE's callback held the loop for
 * ~0.6 ms per call: 50 calls blocked it for ~30 ms, and the calls still up missed their ticks.
 * So a call's teardown after its BYE (agent.ts) and then its last trace records
 * (trace-observer.ts) each take a turn of their own.
 * setImmediate alone would not spread them: every immediate queued before the check phase
 * runs in that same phase. One job per phase, the next one queued from it, does.
 */
const jobs: Array<() => void> = [];
let scheduled = false;

/** Runs `job` in a loop turn of its own, after the jobs queued before it; resolves (or rejects) with it. */
export function inOwnLoopTurn(job: () => void): Promise<void> {
  return new Promise((done, fail) => {
    jobs.push(() => {
      try {
        job();
        done();
      } catch (err) {
        fail(err);
      }
    });
    if (!scheduled) {
      scheduled = true;
      setImmediate(runOne);
    }
  });
}

function runOne(): void {
  jobs.shift()!();
  if (jobs.length) setImmediate(runOne);
  else scheduled = false;
}
