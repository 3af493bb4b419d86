/**
 * ksr_dialog_event: a call's end as the dialog module reports it. Its message may be one the
 * module made up (Kamailio's faked OPTIONS), so the call is the event's dialog.
 */
import t from "tap";
import { dialogEvent } from "../../routing/wa/dialog-events.js";
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

function event(name: string, message: string, dialog: DoubleOptions["dialog"] = DIALOG) {
  const d = createKsrDouble({ message, dialog, dialogInContext: true, htables: { wa_callback: {}, wa_callactive: { [PAIR]: CALL_ID } } });
  runRoute(d, () => dialogEvent(name));
  return d;
}

t.test("dialog:timeout (WA_MAX_CALL_SECONDS): the pair and the media are freed, the call named by its dialog, not by the faked message", async (t) => {
  const d = event("dialog:timeout", FAKED_OPTIONS);
  t.same(d.htables.wa_callactive, {}, "the pair has no call in progress: its next call is not refused as busy");
  t.same(d.rtpengine, [{ fn: "rtpengine_delete", flags: `call-id=${CALL_ID} from-tag=a1` }], "the call's media");
  t.match(d.logs, [{ level: "info", text: `media of call ${CALL_ID} deleted (dialog timeout)\n` }]);
  t.equal(d.vars.get("$dlg_var(wa_ended)"), "timeout", "the dialog is marked as handled");
});

t.test("the dialog:end that may follow a timeout (after dialog's own BYEs) does nothing more", async (t) => {
  const d = event("dialog:end", FAKED_OPTIONS, { ...DIALOG, vars: { ...DIALOG.vars, wa_ended: "timeout" } });
  t.same(d.rtpengine, [], "no second delete (it would log that rtpengine had no media)");
  t.same(d.htables.wa_callactive, { [PAIR]: CALL_ID }, "the pair is not touched again");
  t.same(d.logs, []);
});

t.test("dialog:end after a BYE through the request route frees the pair; the route already freed the media", async (t) => {
  const d = event("dialog:end", BYE);
  t.same(d.htables.wa_callactive, {});
  t.same(d.rtpengine, []);
});

t.test("dialog:end without a BYE (an operator's dlg.bye_all): the pair and the media are freed", async (t) => {
  const d = event("dialog:end", FAKED_OPTIONS);
  t.same(d.htables.wa_callactive, {});
  t.same(d.rtpengine, [{ fn: "rtpengine_delete", flags: `call-id=${CALL_ID} from-tag=a1` }]);
  t.match(d.logs, [{ text: /deleted \(dialog ended without a BYE\)/ }]);
});

t.test("dialog:failed frees the pair; a user-initiated call has no pair; dialog:start changes nothing", async (t) => {
  t.same(event("dialog:failed", FAKED_OPTIONS).htables.wa_callactive, {});
  const user = event("dialog:timeout", FAKED_OPTIONS, { ...LIVE_USER_CALL, vars: { wa_call: "user-initiated" } });
  t.same(user.htables.wa_callactive, { [PAIR]: CALL_ID }, "no pair to free");
  t.equal(user.rtpengine.length, 1, "its media is freed");
  const start = event("dialog:start", FAKED_OPTIONS);
  t.same([start.rtpengine, start.htables.wa_callactive, start.logs], [[], { [PAIR]: CALL_ID }, []]);
});
