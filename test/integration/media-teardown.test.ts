/**
 * No leaked rtpengine sessions, however a call ends: the agent refusing it (failure route),
 * the caller cancelling it while it rings (CANCEL), and Kamailio's maximum call duration
 * (dialog timeout: dialog sends the BYEs itself and the routing frees the media).
 */
import t from "tap";
import { tempDir } from "../support/temp-dir.js";
import { sleep } from "../../build/kamailio.js";
import { listCalls } from "../../build/rtpengine-ng.js";
import { businessUri, setUpMediaCall } from "../support/media-call.js";


/** rtpengine needs a moment after the last SIP message to process the delete. */
async function callsLeft(ng: { host: string; port: number }): Promise<string[]> {
  for (let i = 0; i < 20; i++) {
    const calls = await listCalls(ng);
    if (calls.length === 0) return calls;
    await sleep(100);
  }
  return listCalls(ng);
}

t.test("the agent refuses a call (no profile for the number): the failure route frees the media", async (t) => {
  const s = await setUpMediaCall(t, tempDir(t, "wa-media-"), { agentEnv: { AGENT_PROFILES: "default=echo" } });
  const ended = s.nextEnded();
  s.baresip.dial(businessUri(s.w, "+15550002222"));
  const record = await ended;
  t.match(record.endReason, /^404 Not Found - No Agent Profile 'support'/);
  await s.baresip.waitForEvent("CALL_CLOSED");
  t.same(await callsLeft(s.w.us.rtpengine.ng), [], "no rtpengine session left");
  t.match(s.w.us.kamailio.logText(), /media of call \S+ deleted \(the agent answered 404\)/);
});

t.test("the caller cancels while the agent rings: CANCEL frees the media", async (t) => {
  const s = await setUpMediaCall(t, tempDir(t, "wa-media-"), { agentEnv: { AGENT_ANSWER_DELAY_MS: "3000" } });
  const ended = s.nextEnded();
  s.baresip.dial(businessUri(s.w));
  await s.baresip.waitForEvent("CALL_RINGING");
  t.equal((await listCalls(s.w.us.rtpengine.ng)).length, 1, "the offer created a session");
  s.baresip.hangup();
  const record = await ended;
  t.same([record.status, record.endReason], ["failed", "CANCEL"]);
  t.same(await callsLeft(s.w.us.rtpengine.ng), [], "no rtpengine session left");
  t.match(s.w.us.kamailio.logText(), /media of call \S+ deleted \(CANCEL\)/);
});

t.test("WA_MAX_CALL_SECONDS: Kamailio ends a long call with BYEs both ways and frees the media", async (t) => {
  const s = await setUpMediaCall(t, tempDir(t, "wa-media-"), { env: { WA_MAX_CALL_SECONDS: "3" } });
  const ended = s.nextEnded();
  s.baresip.dial(businessUri(s.w));
  await s.baresip.waitForEvent("CALL_ESTABLISHED", 15_000);
  const record = await ended;
  t.equal(record.endReason, "remote BYE", "the agent got Kamailio's BYE");
  await s.baresip.waitForEvent("CALL_CLOSED", 5000);
  const seconds = (Date.parse(record.endedAt!) - Date.parse(record.answeredAt!)) / 1000;
  t.ok(seconds > 2 && seconds < 6, `ended after ${seconds.toFixed(1)} s`);
  t.same(await callsLeft(s.w.us.rtpengine.ng), [], "no rtpengine session left");
  t.match(s.w.us.kamailio.logText(), /media of call \S+ deleted \(dialog timeout\)/);
});
