/**
 * The 20 ms heartbeat of a call. Ticks are scheduled against a fixed anchor (tick n at
 * anchor + n·20 ms), so timer lateness never accumulates into drift; after a stall the overdue
 * ticks run back to back (at most MAX_CATCH_UP, then the clock skips ahead).
 *
 * All frame clocks on the same Clock share one timer (`Ticker`): it wakes when the earliest
 * call is due and runs every call that is due then. Calls are put on a 5 ms grid (SLOT_MS), so
 * however many calls there are the timer wakes at most four times per frame. A call's first
 * tick runs at once (the first packet must leave as soon as the call is answered); its second
 * comes 20 to 35 ms later, in the quarter of the frame that carries the fewest calls. Why the
 * fewest: calls answered at a steady rate (one every 50 ms, say) would otherwise all land in
 * the same two quarters, and each wake would encode and send for half of the calls at once
 * instead of a quarter; every wake's work adds to whatever else holds the loop then.
 */
import { observeFrameLateness } from "../metrics.js";

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

const MAX_CATCH_UP = 5;
/** The grid calls' ticks are aligned to: a quarter of a frame. */
export const SLOT_MS = 5;

export class FrameClock {
  /** Tick n (n ≥ 1) is due at anchor + n·frameMs. */
  private anchor = 0;
  private index = 0;
  private running = false;
  private readonly ticker: Ticker;

  constructor(
    private readonly onFrame: (index: number) => void,
    clock: Clock = systemClock,
    private readonly frameMs = 20,
  ) {
    this.ticker = Ticker.of(clock);
  }

  /** The first tick runs now: the first packet must leave as soon as the call is answered. */
  start(): void {
    this.running = true;
    this.anchor = this.ticker.quietestSlot(this.frameMs);
    this.index = 0;
    this.onFrame(this.index++);
    if (this.running) this.ticker.add(this);
  }

  stop(): void {
    this.running = false;
    this.ticker.remove(this);
  }

  /** Where in the frame its ticks fall (ms after a multiple of `frameMs`; clock times are never negative). */
  phaseIn(frameMs: number): number {
    return this.anchor % frameMs;
  }

  /** When the next tick is due (clock time). */
  get nextDueAt(): number {
    return this.anchor + this.index * this.frameMs;
  }

  /** Runs the ticks that are due at `now` (called by the ticker). */
  runDue(now: number): void {
    const due = Math.floor((now - this.anchor) / this.frameMs);
    if (due - this.index > MAX_CATCH_UP) this.index = due - MAX_CATCH_UP;
    while (this.running && this.index <= due) this.onFrame(this.index++);
  }
}

/** One timer for every frame clock on a Clock. */
export class Ticker {
  private static readonly byClock = new WeakMap<Clock, Ticker>();
  private readonly clocks = new Set<FrameClock>();
  private timer: unknown = null;
  private wakeAt = Infinity;

  private constructor(readonly clock: Clock) {}

  static of(clock: Clock): Ticker {
    let ticker = Ticker.byClock.get(clock);
    if (!ticker) {
      ticker = new Ticker(clock);
      Ticker.byClock.set(clock, ticker);
    }
    return ticker;
  }

  /** How many frame clocks it drives (tests). */
  get size(): number {
    return this.clocks.size;
  }

  /**
   * The grid point within the next `frameMs` whose place in the frame the fewest running clocks
   * share (the earliest of equals).
   */
  quietestSlot(frameMs: number): number {
    const sharing = new Map<number, number>();
    for (const fc of this.clocks) {
      const phase = fc.phaseIn(frameMs);
      sharing.set(phase, (sharing.get(phase) ?? 0) + 1);
    }
    const callsAt = (at: number) => sharing.get(at % frameMs) ?? 0;
    const first = Math.ceil(this.clock.now() / SLOT_MS) * SLOT_MS;
    let quietest = first;
    for (let at = first + SLOT_MS; at < first + frameMs; at += SLOT_MS) if (callsAt(at) < callsAt(quietest)) quietest = at;
    return quietest;
  }

  add(fc: FrameClock): void {
    this.clocks.add(fc);
    if (fc.nextDueAt < this.wakeAt) this.schedule(fc.nextDueAt);
  }

  remove(fc: FrameClock): void {
    this.clocks.delete(fc);
    if (this.clocks.size === 0) this.schedule(Infinity);
  }

  private wake(): void {
    const now = this.clock.now();
    observeFrameLateness(now - this.wakeAt);
    this.timer = null;
    this.wakeAt = Infinity;
    try {
      for (const fc of this.clocks) if (fc.nextDueAt <= now) fc.runDue(now);
    } finally {
      // Even if a call's tick threw, the other calls keep their clock.
      let next = Infinity;
      for (const fc of this.clocks) if (fc.nextDueAt < next) next = fc.nextDueAt;
      if (this.timer === null || next < this.wakeAt) this.schedule(next);
    }
  }

  private schedule(at: number): void {
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
    this.wakeAt = at;
    if (at === Infinity) return;
    this.timer = this.clock.setTimeout(() => this.wake(), Math.max(0, at - this.clock.now()));
  }
}
