/**
 * The silent-caller stage alone (idle-watch.ts): caller frames every 20 ms, some of them while
 * the agent waits for the caller, and what each brings. The conversation around it (what is
 * said, the BYE after the goodbye) is agent-voice-stages.test.ts's.
 */
import t from "tap";
import { IdleWatch, type IdleStep } from "../../media-agent/src/pipeline/idle-watch.js";

/** Feeds `ms` of caller frames from `fromMs`, all waiting or all not; the steps they brought, with when. */
function frames(watch: IdleWatch, fromMs: number, ms: number, waiting: boolean): Array<{ atMs: number; step: NonNullable<IdleStep> }> {
  const steps: Array<{ atMs: number; step: NonNullable<IdleStep> }> = [];
  for (let at = fromMs; at < fromMs + ms; at += 20) {
    const step = watch.frame(at, waiting);
    if (step) steps.push({ atMs: at, step });
  }
  return steps;
}

t.test("silence brings a reprompt after repromptAfterMs, each as many ms after the last, then the goodbye, then nothing", async (t) => {
  const watch = new IdleWatch({ repromptAfterMs: 8000, maxReprompts: 2 });
  t.same(frames(watch, 0, 40_000, true), [
    { atMs: 8000, step: { type: "reprompt", count: 1 } },
    { atMs: 16_020, step: { type: "reprompt", count: 2 } },
    { atMs: 24_040, step: { type: "goodbye" } },
  ]);
});

t.test("the silence counts only while the agent waits: speaking, a turn being worked on or the caller in a turn start it afresh", async (t) => {
  const watch = new IdleWatch({ repromptAfterMs: 2000, maxReprompts: 1 });
  t.same(frames(watch, 0, 1900, true), [], "1.9 s of waiting");
  t.same(frames(watch, 1900, 1000, false), [], "the agent speaks for 1 s");
  t.same(frames(watch, 2900, 2020, true), [{ atMs: 4900, step: { type: "reprompt", count: 1 } }], "2 s after the agent stopped, not 2 s after the first silence");
});

t.test("a caller who answered is reprompted afresh; one who only made noise is not", async (t) => {
  const answered = new IdleWatch({ repromptAfterMs: 1000, maxReprompts: 1 });
  t.same(frames(answered, 0, 1020, true), [{ atMs: 1000, step: { type: "reprompt", count: 1 } }]);
  answered.callerAnswered();
  t.same(frames(answered, 1020, 1020, true), [{ atMs: 2020, step: { type: "reprompt", count: 1 } }]);

  const noise = new IdleWatch({ repromptAfterMs: 1000, maxReprompts: 1 });
  frames(noise, 0, 1020, true);
  frames(noise, 1020, 500, false); // speech the transcript filter threw away: no callerAnswered()
  t.same(frames(noise, 1520, 1020, true), [{ atMs: 2520, step: { type: "goodbye" } }]);
});

t.test("during the goodbye nothing more is decided; a caller who speaks up during it gets the goodbye again at the next silence", async (t) => {
  const watch = new IdleWatch({ repromptAfterMs: 1000, maxReprompts: 0 });
  t.same(frames(watch, 0, 1020, true), [{ atMs: 1000, step: { type: "goodbye" } }], "no reprompts: the goodbye at once");
  t.same(frames(watch, 1020, 5000, true), [], "the goodbye is on its way: silence brings nothing");
  watch.goodbyeInterrupted();
  t.same(frames(watch, 6020, 1020, true), [{ atMs: 7020, step: { type: "goodbye" } }]);
});
