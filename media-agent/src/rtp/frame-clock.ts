/**
 * The 20 ms heartbeat of a call. Ticks are scheduled against the start time (tick n at
 * start + n·20 ms), so timer lateness never accumulates into drift; after a stall the overdue
 * ticks run back to back (at most MAX_CATCH_UP, then the clock skips ahead).
 */
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

export class FrameClock {
  private startedAt = 0;
  private index = 0;
  private timer: unknown = null;
  private running = false;

  constructor(
    private readonly onFrame: (index: number) => void,
    private readonly clock: Clock = systemClock,
    private readonly frameMs = 20,
  ) {}

  /** The first tick runs now: the first packet must leave as soon as the call is answered. */
  start(): void {
    this.running = true;
    this.startedAt = this.clock.now();
    this.index = 0;
    this.run();
  }

  stop(): void {
    this.running = false;
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
  }

  private run(): void {
    if (!this.running) return;
    const due = Math.floor((this.clock.now() - this.startedAt) / this.frameMs);
    if (due - this.index > MAX_CATCH_UP) this.index = due - MAX_CATCH_UP;
    while (this.running && this.index <= due) this.onFrame(this.index++);
    if (!this.running) return;
    const next = this.startedAt + this.index * this.frameMs;
    this.timer = this.clock.setTimeout(() => this.run(), Math.max(0, next - this.clock.now()));
  }
}
