/**
 * Callback rules in the real Kamailio with the Meta-edge peer: the permission API, refusals
 * that never reach Meta, state kept by the calls and written to the database at each change,
 * and state that survives a restart.
 */
import t, { type Test } from "tap";
import { execFileSync } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { runSipp, startSipp } from "../support/sipp.js";
import { answerCall, businessCallHeldUntilBye, businessCallRefused, businessCallsUser } from "../support/wa-scenarios.js";
import { listCalls } from "../../build/rtpengine-ng.js";
import { BUSINESS, grantPermission, startInterconnect, WA_USER, type Interconnect } from "../support/wa-interconnect.js";

const pairUrl = (w: Interconnect, user = WA_USER) => `${w.us.api}/permissions/${encodeURIComponent(BUSINESS)}/${encodeURIComponent(user)}`;

/** The pair's row in the callback-state database as Kamailio left it (sqlite3 CLI); null: no row. */
function storedPair(w: Interconnect, user = WA_USER): unknown {
  const value = execFileSync("sqlite3", ["-bail", w.us.stateDb, `SELECT key_value FROM wa_callback WHERE key_name='${BUSINESS}|${user}';`], { encoding: "utf8" });
  return value.trim() === "" ? null : JSON.parse(value);
}

async function businessCall(w: Interconnect, scenarioXml: string, user = WA_USER) {
  return runSipp({ scenarioXml, target: w.us.internal, workDir: w.us.workDir, service: user, keys: { business: BUSINESS }, timeoutS: 15 });
}

t.test("callback rules with the Meta-edge peer", async (t) => {
  const w = await startInterconnect(t, { env: { WA_CALLBACK_DAILY_LIMIT: "1" } });

  t.test("without a permission the call is refused locally and never reaches Meta", async (t) => {
    const run = await businessCall(w, businessCallRefused(403));
    t.equal(run.exitCode, 0, run.output);
    t.equal(run.received.find((m) => m.status === 403)?.reason, "No Call Permission");
    t.notMatch(w.edge.logText(), /INVITE/, "the edge saw no INVITE");
  });

  t.test("the permission API grants, shows and validates", async (t) => {
    const granted = await grantPermission(w, WA_USER, "temporary");
    t.match(granted, { business: BUSINESS, user: WA_USER, permission: "temporary", connectedLast24h: 0 });
    t.ok((granted as { permissionExpires: number }).permissionExpires > Date.now() / 1000 + 6.9 * 86400, "expires in 7 days");
    const list = await (await fetch(`${w.us.api}/permissions`)).json();
    t.match(list, [{ business: BUSINESS, user: WA_USER, permission: "temporary" }]);
    const bad = await fetch(pairUrl(w, "12345"), { method: "PUT", body: '{"kind":"temporary"}' });
    t.equal(bad.status, 400);
    t.match(await bad.json(), { error: /neither E\.164 with \+ nor a business-scoped user id/ });
    const badKind = await fetch(pairUrl(w), { method: "PUT", body: '{"kind":"forever"}' });
    t.equal(badKind.status, 400);
  });

  t.test("a permitted call connects and counts; the daily limit (1 here) then refuses locally", async (t) => {
    const user = await startSipp({ scenarioXml: answerCall("WhatsApp user"), target: w.waUser, local: w.waUser, workDir: w.us.workDir, timeoutS: 15 });
    const call = await businessCall(w, businessCallsUser());
    t.equal(call.exitCode, 0, call.output);
    t.equal((await user.done).exitCode, 0);
    const state = await (await fetch(pairUrl(w))).json();
    t.match(state, { connectedLast24h: 1, activeCall: null, unansweredInARow: 0 }, "answered, then freed at BYE");
    t.match(storedPair(w), { permission: "temporary", connected: [Number], activeCall: null }, "the database row holds it too");
    const second = await businessCall(w, businessCallRefused(403));
    t.equal(second.received.find((m) => m.status === 403)?.reason, "Daily Call Limit Reached");
  });

  t.test("Meta's 403 No Approved Call Permission Found clears our permission", async (t) => {
    const user = "+15550000403";
    await grantPermission(w, user);
    const run = await businessCall(w, businessCallRefused(403), user);
    t.equal(run.received.find((m) => m.status === 403)?.reason, "No Approved Call Permission Found", "Meta's reason passed back");
    t.match(await (await fetch(pairUrl(w, user))).json(), { permission: null, activeCall: null });
    const next = await businessCall(w, businessCallRefused(403), user);
    t.equal(next.received.find((m) => m.status === 403)?.reason, "No Call Permission", "the next call stops here");
  });

  t.test("unanswered calls (480) are counted; at the limit calls stop locally", async (t) => {
    const user = "+15550000480";
    await grantPermission(w, user);
    for (let i = 1; i <= 2; i++) {
      const run = await businessCall(w, businessCallRefused(480), user);
      t.equal(run.exitCode, 0, run.output);
      t.match(await (await fetch(pairUrl(w, user))).json(), { unansweredInARow: i, activeCall: null });
    }
    const third = await businessCall(w, businessCallRefused(403), user);
    t.equal(third.received.find((m) => m.status === 403)?.reason, "Too Many Unanswered Calls", "our reason: it stopped here");
  });

  t.test("state survives Kamailio being killed and restarted; the call in progress does not", async (t) => {
    // A call in progress at the crash: its dialog dies with Kamailio, and no end is ever reported.
    const held = "+15550000888";
    await grantPermission(w, held);
    const user = await startSipp({ scenarioXml: answerCall("WhatsApp user"), target: w.waUser, local: w.waUser, workDir: w.us.workDir, timeoutS: 8 });
    const call = await startSipp({ scenarioXml: businessCallsUser(60_000), target: w.us.internal, workDir: w.us.workDir, service: held, keys: { business: BUSINESS }, timeoutS: 8 });
    const connected = async () => ((await (await fetch(pairUrl(w, held))).json()) as { connectedLast24h?: number }).connectedLast24h;
    for (let i = 0; i < 50 && (await connected()) !== 1; i++) await sleep(100);
    t.match(await (await fetch(pairUrl(w, held))).json(), { activeCall: String, connectedLast24h: 1 }, "answered, in progress");
    await w.us.crashAndRestart();
    const state = await (await fetch(pairUrl(w))).json();
    t.match(state, { permission: "temporary", connectedLast24h: 1 });
    t.match(await (await fetch(pairUrl(w, held))).json(), { permission: "permanent", connectedLast24h: 1, activeCall: null });
    const next = await businessCall(w, businessCallRefused(403), held);
    t.equal(next.received.find((m) => m.status === 403)?.reason, "Daily Call Limit Reached", "refused by the count, not as busy (486)");
    await Promise.all([user.done, call.done]); // both end by their timeout: the BYE found no dialog
    const revoked = await (await fetch(pairUrl(w), { method: "DELETE" })).json();
    t.match(revoked, { permission: null });
    t.match(storedPair(w), { permission: null, connected: [Number] }, "revoked in the database; today's call still counts");
  });

  t.test("the database row follows each change at once; a revoked pair with nothing else has none", async (t) => {
    const user = "+15550000480"; // the edge answers 480: two unanswered calls counted above
    t.match(storedPair(w, user), { permission: "permanent", unanswered: 2 });
    await grantPermission(w, user, "permanent");
    t.match(storedPair(w, user), { permission: "permanent", unanswered: 0 }, "a new permission clears the count");
    const run = await businessCall(w, businessCallRefused(480), user);
    t.equal(run.exitCode, 0, run.output);
    t.match(await (await fetch(pairUrl(w, user))).json(), { unansweredInARow: 1, activeCall: null });
    t.match(storedPair(w, user), { permission: "permanent", unanswered: 1, activeCall: null });
    await fetch(pairUrl(w, user), { method: "DELETE" });
    t.match(storedPair(w, user), { permission: null, unanswered: 1 }, "revoked; the count stays");

    const fresh = "+15550000777";
    t.equal(storedPair(w, fresh), null);
    await grantPermission(w, fresh, "temporary");
    t.match(storedPair(w, fresh), { permission: "temporary", permissionExpires: Number });
    const revoked = await fetch(pairUrl(w, fresh), { method: "DELETE" });
    t.match(await revoked.json(), { permission: null });
    t.equal(storedPair(w, fresh), null, "nothing left to record: the row is gone");
    t.equal((await fetch(pairUrl(w, fresh))).status, 404, "and so is the pair");
  });
});

/**
 * Two business-initiated calls in a row to one user, each ended by Kamailio's dialog module
 * (BYE both ways) by `end`: each must be answered (the second is refused 486 while the first
 * holds the pair), and each leaves no media and no call in progress behind.
 */
async function callsEndedByKamailio(t: Test, w: Interconnect, end: () => Promise<void>, reason: RegExp) {
  await grantPermission(w, WA_USER);
  for (const attempt of ["first", "second"]) {
    const user = await startSipp({ scenarioXml: answerCall("WhatsApp user"), target: w.waUser, local: w.waUser, workDir: w.us.workDir, timeoutS: 15 });
    const running = businessCall(w, businessCallHeldUntilBye());
    const [call] = await Promise.all([running, end()]);
    t.equal(call.exitCode, 0, `${attempt} call: answered, then ended by Kamailio's BYE`);
    if (call.exitCode !== 0) t.comment(call.output);
    t.equal((await user.done).exitCode, 0, `${attempt} call: the WhatsApp user got Kamailio's BYE too`);
    let left = await listCalls(w.us.rtpengine.ng);
    for (let i = 0; i < 20 && left.length > 0; i++) left = (await sleep(100), await listCalls(w.us.rtpengine.ng));
    t.same(left, [], `${attempt} call: no rtpengine session left`);
    t.match(await (await fetch(pairUrl(w))).json(), { activeCall: null }, `${attempt} call: the pair has no call in progress`);
  }
  const log = w.us.kamailio.logText();
  t.equal(log.match(new RegExp(`media of call \\S+ deleted \\(${reason.source}\\)`, "g"))?.length, 2, "each call's media was freed as dialog's BYE left");
  t.notMatch(log, /rtpengine had no media/, "once: neither the second BYE nor the dialog's end freed it again");
}

t.test("a business-initiated call that Kamailio ends at WA_MAX_CALL_SECONDS frees its pair and its media: the next call to that user connects", async (t) => {
  const w = await startInterconnect(t, { env: { WA_MAX_CALL_SECONDS: "2" } });
  await callsEndedByKamailio(t, w, async () => {}, /dialog timeout/);
});

t.test("a call an operator ends with kamcmd dlg.end_dlg frees its pair and its media: the next call to that user connects", async (t) => {
  const w = await startInterconnect(t);
  const endOnceAnswered = async () => {
    // The dialog once confirmed (state 4), by its hash entry and id, as an operator reads them from dlg.list.
    for (let i = 0; i < 100; i++) {
      const list = await w.us.kamailio.rpc("dlg.list");
      const m = /h_entry: (\d+)\s+h_id: (\d+)[\s\S]*?state: 4\b/.exec(list);
      if (m) {
        await w.us.kamailio.rpc("dlg.end_dlg", m[1], m[2]);
        return;
      }
      await sleep(100);
    }
    throw new Error("no confirmed dialog to end");
  };
  await callsEndedByKamailio(t, w, endOnceAnswered, /dialog's BYEs: dlg\.end_dlg or dlg\.terminate_dlg/);
});
