/** Meta's callback rules with a fake clock. */
import t from "tap";
import {
  applyPairEvent, callbackDecision, classifyMetaFailure, DAY, emptyPairState, lastingPairState, type PairEvent, type PairState,
} from "../../routing/policy/callback-rules.js";

const T0 = 1_800_000_000;
const limits = { dailyLimit: 2, unansweredLimit: 2 };
const run = (events: Array<[number, PairEvent]>, start: PairState | null = null) =>
  events.reduce<PairState>((s, [at, e]) => applyPairEvent(s, e, at), start ?? emptyPairState());
const decide = (s: PairState | null, now: number) => callbackDecision(s, now, limits);

t.test("no permission on record: refused locally", async (t) => {
  t.match(decide(null, T0), { allow: false, code: 403, reason: "No Call Permission" });
  t.match(decide(run([[T0, { type: "granted", kind: "permanent" }], [T0 + 1, { type: "revoked" }]]), T0 + 2), { reason: "No Call Permission" });
});

t.test("temporary permission lasts 7 days, permanent until revoked", async (t) => {
  const temp = run([[T0, { type: "granted", kind: "temporary" }]]);
  t.same(decide(temp, T0 + 7 * DAY - 1), { allow: true });
  t.match(decide(temp, T0 + 7 * DAY), { allow: false, reason: "No Call Permission", cause: /expired/ });
  const perm = run([[T0, { type: "granted", kind: "permanent" }]]);
  t.same(decide(perm, T0 + 400 * DAY), { allow: true });
});

t.test("connected calls per rolling 24 h", async (t) => {
  const s = run([
    [T0, { type: "granted", kind: "permanent" }],
    [T0 + 10, { type: "call-started", callId: "a" }], [T0 + 20, { type: "answered", callId: "a" }], [T0 + 90, { type: "ended", callId: "a" }],
    [T0 + 100, { type: "call-started", callId: "b" }], [T0 + 110, { type: "answered", callId: "b" }], [T0 + 200, { type: "ended", callId: "b" }],
  ]);
  t.match(decide(s, T0 + 300), { allow: false, code: 403, reason: "Daily Call Limit Reached", cause: /2 connected calls/ });
  t.match(decide(s, T0 + 20 + DAY - 1), { allow: false }, "the first call is still inside the window");
  t.same(decide(s, T0 + 20 + DAY + 1), { allow: true }, "the first call has left the window");
});

t.test("one active call per pair", async (t) => {
  const s = run([[T0, { type: "granted", kind: "permanent" }], [T0 + 1, { type: "call-started", callId: "a" }]]);
  t.match(decide(s, T0 + 2), { allow: false, code: 486, reason: "Busy Here - One Call Per User" });
  t.same(decide(applyPairEvent(s, { type: "failed", callId: "a" }, T0 + 3), T0 + 4), { allow: true });
  t.match(decide(applyPairEvent(s, { type: "ended", callId: "other" }, T0 + 3), T0 + 4), { allow: false }, "another call's end does not free it");
});

t.test("what outlives a restart: all but the call in progress", async (t) => {
  const s = run([[T0, { type: "granted", kind: "permanent" }], [T0 + 1, { type: "call-started", callId: "a" }], [T0 + 2, { type: "answered", callId: "a" }]]);
  t.same(lastingPairState(s), { ...s, activeCall: null });
  t.equal(s.activeCall, "a", "the state itself is left as it is");
});

t.test("consecutive unanswered calls stop further calls until the user calls or a new permission", async (t) => {
  let s = run([
    [T0, { type: "granted", kind: "permanent" }],
    [T0 + 1, { type: "call-started", callId: "a" }], [T0 + 2, { type: "unanswered", callId: "a" }],
  ]);
  t.same(decide(s, T0 + 3), { allow: true });
  s = run([[T0 + 4, { type: "call-started", callId: "b" }], [T0 + 5, { type: "unanswered", callId: "b" }]], s);
  t.match(decide(s, T0 + 6), { allow: false, reason: "Too Many Unanswered Calls" });
  t.same(decide(applyPairEvent(s, { type: "user-called" }, T0 + 7), T0 + 8), { allow: true });
  t.same(decide(applyPairEvent(s, { type: "granted", kind: "temporary" }, T0 + 7), T0 + 8), { allow: true });
  t.same(decide(run([[T0 + 9, { type: "call-started", callId: "c" }], [T0 + 10, { type: "answered", callId: "c" }], [T0 + 11, { type: "ended", callId: "c" }]], applyPairEvent(s, { type: "user-called" }, T0 + 7)), T0 + 12), { allow: true }, "an answered call resets the count");
});

t.test("Meta's answers update the state", async (t) => {
  const granted = run([[T0, { type: "granted", kind: "permanent" }], [T0 + 1, { type: "call-started", callId: "a" }]]);
  const noPerm = applyPairEvent(granted, { type: "meta-no-permission", callId: "a" }, T0 + 2);
  t.match(decide(noPerm, T0 + 3), { reason: "No Call Permission" });
  const limited = applyPairEvent(granted, { type: "meta-daily-limit", callId: "a" }, T0 + 2);
  t.match(decide(limited, T0 + 3), { reason: "Daily Call Limit Reached", cause: /Meta reported/ });
  t.same(decide(limited, T0 + 2 + DAY), { allow: true }, "until the window passes");
  t.equal(classifyMetaFailure(403, "No Approved Call Permission Found"), "meta-no-permission");
  t.equal(classifyMetaFailure(403, "Business Initiated Connected Call Per Day Limit Hit"), "meta-daily-limit");
  for (const code of [480, 408, 487]) t.equal(classifyMetaFailure(code, "x"), "unanswered");
  t.equal(classifyMetaFailure(486, "Busy Here"), "failed");
  t.equal(classifyMetaFailure(503, "Service Unavailable"), "failed");
});
