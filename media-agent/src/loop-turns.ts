/**
 * Work that may wait a little but must not hold up live calls: jobs run in later event-loop
 * turns, at most about TURN_BUDGET_MS of them per turn, so the timers (every call's frame
 * clock) run in between.
 *
 * Why: when many calls end at once (a mass hang-up; the BYEs all arrive in one poll of the
 * loop), each call writing its trace records and WAVs in its BYE's callback held the loop for
 * ~0.6 ms per call: 50 calls blocked it for ~30 ms, and the calls still up missed their ticks.
 * So a call's teardown after its BYE (agent.ts) and then its last trace records
 * (trace-observer.ts) are queued here.
 * setImmediate alone would not spread them: every immediate queued before the check phase
 * runs in that same phase. Jobs for up to TURN_BUDGET_MS per phase, the rest queued from it, do.
 */

/**
 * How long one turn runs queued jobs (at least one). Not one job per turn: on a loaded event
 * loop (100 echo calls, ~90 % of a core) a turn takes milliseconds, so one teardown per turn
 * fell behind 100 calls/s ending: the ended calls kept their RTP ports until the agent had none
 * left for new calls (the 10,000-call soak: 9,000 calls refused; a call's ports are now closed in
 * its BYE's callback, agent.ts, and only the rest waits here). Now that a call's files are
 * written off the loop a teardown is short, so a turn takes several, and a mass hang-up still
 * holds the frame clocks for no more than about this long at a time.
 */
const TURN_BUDGET_MS = 1;
const jobs: Array<() => void> = [];
let scheduled = false;

/** Runs `job` in a later loop turn, after the jobs queued before it; resolves (or rejects) with it. */
export function inLaterLoopTurn(job: () => void): Promise<void> {
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
      setImmediate(runJobs);
    }
  });
}

function runJobs(): void {
  const until = performance.now() + TURN_BUDGET_MS;
  do jobs.shift()!();
  while (jobs.length && performance.now() < until);
  if (jobs.length) setImmediate(runJobs);
  else scheduled = false;
}
