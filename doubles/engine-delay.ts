/**
 * How long an engine double takes to answer: fixed, or drawn per request (the latency benchmark
 * draws from the documented ranges of real engines). Counted from the request's arrival, so the
 * double's own work is part of it, as a real engine's is.
 */
export type EngineDelay = number | (() => number);

/** Resolves `delay` after `arrivedAt` (a performance.now() time); at once when that has passed. */
export async function untilDue(arrivedAt: number, delay: EngineDelay | undefined): Promise<void> {
  const ms = typeof delay === "function" ? delay() : (delay ?? 0);
  const wait = arrivedAt + ms - performance.now();
  if (wait > 0) await new Promise((done) => setTimeout(done, wait));
}
