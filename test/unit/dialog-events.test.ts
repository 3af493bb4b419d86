/**
 * A call's end that passes no BYE through the request route. dialog's own BYEs (its timeout,
 * an operator's dlg.end_dlg) reach the routing through tm's "tm:local-request"; the dialog's
 * events may carry a message the module made up (Kamailio's faked OPTIONS), so the call is the
 * event's dialog.
 */
import t from "tap";
import { dialogEvent, localRequestEvent } from "../../routing/wa/dialog-events.js";
import { createKsrDouble, runRoute, type DoubleOptions } from "../support/ksr-double.js";
import { LIVE_USER_CALL } from "../support/fixtures.js";

const PAIR = "+15550001111|+15551234567";
const CALL_ID = "3c1f0a9e-agent";
const DIALOG = { callId: CALL_ID, fromTag: "a1", toTag: "b2", vars: { wa_pair: PAIR, wa_call: "business-initiated" } };

/** Kamailio's faked_msg.c: the message of a dialog event that has none of its own. */
const FAKED_OPTIONS = [
  "OPTIONS sip:you@kamailio.org SIP/2.0",
  "Via: SIP/2.0/UDP 127.0.0.1",
  "From: <sip:you@kamailio.org>;tag=123",
  "To: <sip:you@kamailio.org>",
  "Call-ID: 123",
  "CSeq: 1 OPTIONS",
  "Content-Length: 0",
  "",
  "",
].join("\r\n");

/** A BYE as it passes the request route (from the agent's side of a business-initiated call). */
const BYE = [
  "BYE sip:+15551234567@wa.meta.vc SIP/2.0",
  "Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK1",
  "From: <sip:+15550001111@sip.example.com>;tag=a1",
  "To: <sip:+15551234567@wa.meta.vc>;tag=b2",
  `Call-ID: ${CALL_ID}`,
  "CSeq: 2 BYE",
  "Content-Length: 0",
  "",
  "",
].join("\r\n");

/** dialog's own BYE toward one leg, as tm hands it to tm:local-request (the callee leg's here: tags swapped). */
function dialogBye(dialog: { callId: string; fromTag: string; toTag?: string } = DIALOG): string {
  return [
    "BYE sip:+15550001111@127.0.0.1:5080 SIP/2.0",
    "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKdlg1",
    `From: <sip:+15551234567@wa.meta.vc>;tag=${dialog.toTag}`,
    `To: <sip:+15550001111@sip.example.com>;tag=${dialog.fromTag}`,
    `Call-ID: ${dialog.callId}`,
    "CSeq: 11 BYE",
    "Content-Length: 0",
    "",
    "",
  ].join("\r\n");
}

/** dialog's DLG_FLAG_EXPIRED: its timeout was reached. */
const EXPIRED = 1 << 10;

/** The routing's callback run on `message` with `dialog` held and the pair's call in progress. */
function run(callback: () => void, message: string, dialog: DoubleOptions["dialog"], dialogInContext: boolean) {
  const d = createKsrDouble({ message, dialog, dialogInContext, htables: { wa_callback: {}, wa_callactive: { [PAIR]: CALL_ID } } });
  runRoute(d, callback);
  return d;
}

function event(name: string, message: string, dialog: DoubleOptions["dialog"] = DIALOG) {
  return run(() => dialogEvent(name), message, dialog, true);
}

/** tm's event callback for a request Kamailio makes itself; its dialog is found by the message. */
function localRequest(message: string, dialog: DoubleOptions["dialog"] = DIALOG, name = "tm:local-request") {
  return run(() => localRequestEvent(name), message, dialog, false);
}

t.test("dialog's BYE at its timeout (WA_MAX_CALL_SECONDS): the pair and the media are freed as it leaves, and the dialog is marked", async (t) => {
  const d = localRequest(dialogBye(), { ...DIALOG, flags: EXPIRED | 1 });
  t.same(d.htables.wa_callactive, {}, "the pair has no call in progress: its next call is not refused as busy");
  t.same(d.rtpengine, [{ fn: "rtpengine_delete", flags: `call-id=${CALL_ID} from-tag=a1` }], "the call's media, named by its dialog (caller's tag)");
  t.match(d.logs, [{ level: "info", text: `media of call ${CALL_ID} deleted (dialog timeout)\n` }]);
  t.equal(d.vars.get("$dlg_var(wa_ended)"), "dialog timeout", "the dialog is marked as handled");
});

t.test("dialog's BYE for an operator's dlg.end_dlg: the same, with that reason", async (t) => {
  const d = localRequest(dialogBye());
  t.same(d.htables.wa_callactive, {});
  t.same(d.rtpengine, [{ fn: "rtpengine_delete", flags: `call-id=${CALL_ID} from-tag=a1` }]);
  t.match(d.logs, [{ text: /deleted \(dialog's BYEs: dlg\.end_dlg or dlg\.terminate_dlg\)/ }]);
});

t.test("the second of dialog's BYEs, the dialog already gone, another call's dialog, or another local request: nothing", async (t) => {
  const marked = localRequest(dialogBye(), { ...DIALOG, vars: { ...DIALOG.vars, wa_ended: "dialog timeout" } });
  t.same([marked.rtpengine, marked.htables.wa_callactive, marked.logs], [[], { [PAIR]: CALL_ID }, []], "already handled (the first BYE)");
  const gone = run(() => localRequestEvent("tm:local-request"), dialogBye(), undefined, false);
  t.same([gone.rtpengine, gone.htables.wa_callactive], [[], { [PAIR]: CALL_ID }], "no dialog left");
  const other = run(() => localRequestEvent("tm:local-request"), dialogBye({ ...DIALOG, callId: "another-call" }), DIALOG, true);
  t.same([other.rtpengine, other.htables.wa_callactive], [[], { [PAIR]: CALL_ID }], "a context dialog that is not this BYE's");
  const probe = localRequest(FAKED_OPTIONS.replace("Call-ID: 123", `Call-ID: ${CALL_ID}`));
  t.same([probe.rtpengine, probe.htables.wa_callactive], [[], { [PAIR]: CALL_ID }], "dispatcher's OPTIONS probe");
  const response = localRequest(dialogBye(), DIALOG, "tm:local-response");
  t.same(response.rtpengine, [], "another event");
});

t.test("the dialog:end that may follow dialog's BYEs does nothing more", async (t) => {
  const d = event("dialog:end", FAKED_OPTIONS, { ...DIALOG, vars: { ...DIALOG.vars, wa_ended: "dialog timeout" } });
  t.same(d.rtpengine, [], "no second delete (it would log that rtpengine had no media)");
  t.same(d.htables.wa_callactive, { [PAIR]: CALL_ID }, "the pair is not touched again");
  t.same(d.logs, []);
});

t.test("dialog:end after a BYE through the request route frees the pair; the route already freed the media", async (t) => {
  const d = event("dialog:end", BYE);
  t.same(d.htables.wa_callactive, {});
  t.same(d.rtpengine, []);
});

t.test("dialog:end without any BYE: the pair and the media are freed", async (t) => {
  const d = event("dialog:end", FAKED_OPTIONS);
  t.same(d.htables.wa_callactive, {});
  t.same(d.rtpengine, [{ fn: "rtpengine_delete", flags: `call-id=${CALL_ID} from-tag=a1` }]);
  t.match(d.logs, [{ text: /deleted \(dialog ended without a BYE\)/ }]);
});

t.test("dialog:failed frees the pair; a user-initiated call has no pair; dialog:start changes nothing", async (t) => {
  t.same(event("dialog:failed", FAKED_OPTIONS).htables.wa_callactive, {});
  const user = localRequest(dialogBye(LIVE_USER_CALL), { ...LIVE_USER_CALL, vars: { wa_call: "user-initiated" } });
  t.same(user.htables.wa_callactive, { [PAIR]: CALL_ID }, "no pair to free");
  t.equal(user.rtpengine.length, 1, "its media is freed");
  const start = event("dialog:start", FAKED_OPTIONS);
  t.same([start.rtpengine, start.htables.wa_callactive, start.logs], [[], { [PAIR]: CALL_ID }, []]);
});
