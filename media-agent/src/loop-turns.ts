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

/**
 * Jobs run in order, for up to `budgetMs` per loop turn (at least one), the rest in later turns.
 * With `atOnce`, a job runs at once while none waits and the jobs run at once in this turn have
 * taken less than `budgetMs`.
 */
class TurnQueue {
  private readonly jobs: Array<() => void> = [];
  private scheduled = false;
  private spentAtOnce = 0;
  private turnEndScheduled = false;

  constructor(
    private readonly budgetMs: number,
    private readonly atOnce: boolean,
  ) {}

  run(job: () => void): Promise<void> {
    if (this.atOnce && this.jobs.length === 0 && this.spentAtOnce < this.budgetMs) return this.runNow(job);
    return new Promise((done, fail) => {
      this.jobs.push(() => {
        try {
          job();
          done();
        } catch (err) {
          fail(err);
        }
      });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(this.runQueued);
      }
    });
  }

  private runNow(job: () => void): Promise<void> {
    if (!this.turnEndScheduled) {
      this.turnEndScheduled = true;
      setImmediate(() => {
        this.spentAtOnce = 0;
        this.turnEndScheduled = false;
      });
    }
    const started = performance.now();
    try {
      job();
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err as Error);
    } finally {
      this.spentAtOnce += performance.now() - started;
    }
  }

  private readonly runQueued = (): void => {
    const until = performance.now() + this.budgetMs;
    do this.jobs.shift()!();
    while (this.jobs.length && performance.now() < until);
    if (this.jobs.length) setImmediate(this.runQueued);
    else this.scheduled = false;
  };
}

const later = new TurnQueue(TURN_BUDGET_MS, false);

/** Runs `job` in a later loop turn, after the jobs queued before it; resolves (or rejects) with it. */
export function inLaterLoopTurn(job: () => void): Promise<void> {
  return later.run(job);
}

/**
 * SIP messages: handled as they are read for up to SIP_BUDGET_MS per turn, the rest in order in
 * later turns, for up to as long per turn. Why not always later: 50 INVITEs that arrive in one
 * poll, each parsed and its call started there, held every call's frame clock ~25 ms; but each
 * message a turn later, behind the teardowns' queue, made a loaded agent's answers wait: on a
 * loop at 95 % (the soak: 100 echo calls, 85 new calls a second) a turn takes 5–20 ms, and the
 * INVITEs waited 40–110 ms there.
 */
const SIP_BUDGET_MS = 2;
const sip = new TurnQueue(SIP_BUDGET_MS, true);

/** Handles a SIP message now or, in a burst, in a later loop turn (SIP_BUDGET_MS); resolves (or rejects) with it. */
export function sipMessageTurn(job: () => void): Promise<void> {
  return sip.run(job);
}

/**
 * Resolves at once while none waits and fewer than four went on in this turn; else in a later
 * event-loop turn, after those asked for before it, so the timers run in between: each turn
 * releases a sixteenth of those waiting (at least four, less those gone on at once in it), and
 * their promise continuations finish before the next turn. For work that many calls start in
 * the same poll of the loop and that goes on in promise continuations, which a time budget
 * around a synchronous job (inLaterLoopTurn) would not see: the answer to an INVITE, an engine
 * request (undici's fetch to the STT or the LLM), a trace file's write.
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
  if (waiting.length === 0 && passedThisTurn < AT_LEAST_PER_TURN) {
    passedThisTurn++;
    scheduleTurnEnd();
    return Promise.resolve();
  }
  return new Promise((done) => {
    waiting.push(done);
    scheduleTurnEnd();
  });
}

const SHARE_PER_TURN = 1 / 16;
/**
 * But at least this many per turn (or all there are), and as many go on in the turn they ask in
 * while none waits. One per turn, and always a turn later, throttled steady traffic: on a loop
 * at 95 % (the soak: 100 echo calls, 85 new calls a second) a turn takes 5–20 ms, the queue
 * settled at ~16 (where a sixteenth is one), and every INVITE waited ~16 turns for its answer:
 * 150–400 ms (p50 170 ms against 12 ms before the queue). With four, and at once while none
 * waits, an INVITE's time in the agent there is 2 ms at p50 (one turn waited: 11–13 ms).
 */
const AT_LEAST_PER_TURN = 4;
const waiting: Array<() => void> = [];
/** Gone on at once in this turn (ownLoopTurn), counted against what the turn's end releases. */
let passedThisTurn = 0;
let turnEndScheduled = false;

function scheduleTurnEnd(): void {
  if (turnEndScheduled) return;
  turnEndScheduled = true;
  setImmediate(turnEnd);
}

/** In the check phase, after the turn's I/O and before the next turn's timers: releases a share of those waiting. */
function turnEnd(): void {
  turnEndScheduled = false;
  const share = Math.max(AT_LEAST_PER_TURN, Math.ceil(waiting.length * SHARE_PER_TURN)) - passedThisTurn;
  passedThisTurn = 0;
  for (let n = Math.min(share, waiting.length); n > 0; n--) waiting.shift()!();
  // Scheduled from the check phase: it runs in the next turn, after the timers.
  if (waiting.length) scheduleTurnEnd();
}
