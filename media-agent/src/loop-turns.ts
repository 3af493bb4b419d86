/**
 * Work that may wait a little but must not hold up live calls: jobs run in later event-loop
 * turns, at most about TURN_BUDGET_MS of them per turn, so the timers (every call's frame
 * clock) run in between (inLaterLoopTurn); work that goes on in promise continuations waits
 * for a share of a later turn (ownLoopTurn, below).
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

/**
 * Resolves in a later event-loop turn, after those asked for before it, so the timers run in
 * between: each turn releases a sixteenth of those waiting (at least one), and their promise
 * continuations finish before the next turn. For work that many calls start in the same poll of
 * the loop and that goes on in promise continuations, which a time budget around a synchronous
 * job (inLaterLoopTurn) would not see: the answer to an INVITE, an engine request (undici's fetch
 * to the STT or the LLM), a trace file's write.
 * Why: 50 voice calls set up at once, then their callers stopping in the same frame, held every
 * call's frame clock for 100–140 ms at a time (bench/agent.ts, voice calls at once): each call's
 * answer ~2 ms, each request ~1 ms, each file opened a fraction of one, all in one poll.
 * Why a share of the queue and not one per turn: on a loaded loop a turn takes milliseconds, and
 * 300 INVITEs at once to an agent carrying 300 echo calls, answered one per turn, were not all
 * answered after 5 s (and Opus 140 of 150); a sixteenth per turn answered them all, and empties
 * a queue of 300 in about 60 turns. A larger share (an eighth) left the voice calls' stalls
 * longer (set-up 45–48 ms, turns 33–54 ms, against 41–43 and 29–43 ms).
 */
export function ownLoopTurn(): Promise<void> {
  return new Promise((done) => {
    waiting.push(done);
    if (waiting.length === 1) setImmediate(releaseWaiting);
  });
}

const SHARE_PER_TURN = 1 / 16;
const waiting: Array<() => void> = [];

function releaseWaiting(): void {
  for (let n = Math.ceil(waiting.length * SHARE_PER_TURN); n > 0; n--) waiting.shift()!();
  // Scheduled from the check phase: it runs in the next turn, after the timers.
  if (waiting.length) setImmediate(releaseWaiting);
}

function runJobs(): void {
  const until = performance.now() + TURN_BUDGET_MS;
  do jobs.shift()!();
  while (jobs.length && performance.now() < until);
  if (jobs.length) setImmediate(runJobs);
  else scheduled = false;
}
