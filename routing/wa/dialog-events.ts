/**
 * A call's end that passes no BYE through the request route: the dialog module ends it itself,
 * or tells the routing that it ended.
 *
 * - ksr_tm_event "tm:local-request" with a BYE: Kamailio's dialog module is ending the call —
 *   at WA_MAX_CALL_SECONDS (its timeout, send_bye), or an operator's `kamcmd dlg.end_dlg` /
 *   `dlg.terminate_dlg`. The call's media and a business-initiated call's pair are freed as its
 *   first BYE leaves; the dialog is marked, so its second BYE and its "dialog:end" do nothing
 *   more. Not left to "dialog:end": Kamailio 5.6's dlg_bye_all runs it with the dialog's state
 *   read after sending the BYEs, and when a BYE's 200 has already ended the dialog (the agent on
 *   loopback answers within a millisecond) the states are equal and no event runs.
 * - ksr_dialog_event "dialog:end" / "dialog:failed": a dialog ended otherwise. A
 *   business-initiated call's pair is free again; a dialog that ended without any BYE (neither
 *   through the request route nor one of dialog's own) still has media in rtpengine.
 *
 * Trust: a tm:local-request message is one Kamailio built itself (dialog's BYE, dispatcher's
 * OPTIONS probes); no peer writes it. Its dialog is found by its Call-ID and tags, and must be
 * that Call-ID's. The message of a dialog event may be one the dialog module made up (Kamailio's
 * faked OPTIONS), so there the call is named by the dialog ($dlg(callid)), never by the message.
 */
import { pvString } from "../ksr/pv";
import { updatePair } from "./callback-state";
import { deleteMediaOfDialog } from "./media";

/** kamailio.cfg names them: modparam dialog event_callback, modparam tm event_callback. */
export const DIALOG_EVENT_CALLBACK = "ksr_dialog_event";
export const TM_EVENT_CALLBACK = "ksr_tm_event";

/** Set on a dialog whose end the routing has handled (dialog's own BYE): not handled again. */
const ENDED_VAR = "$dlg_var(wa_ended)";

export function dialogEvent(event?: string): void {
  if (event !== "dialog:end" && event !== "dialog:failed") return;
  if (pvString(ENDED_VAR)) return;
  freePair(pvString("$dlg(callid)"));
  if (event === "dialog:end" && !KSR.is_BYE()) deleteMediaOfDialog("dialog ended without a BYE");
}

/** tm's event callback: only a BYE that dialog sends for one of our calls concerns the routing. */
export function localRequestEvent(event?: string): void {
  if (event !== "tm:local-request" || !KSR.is_BYE()) return;
  const callId = pvString("$dlg(callid)");
  // No dialog (already gone after the first BYE's answer), or not this BYE's: nothing to free.
  if (!callId || callId !== pvString("$ci")) return;
  if (pvString(ENDED_VAR)) return;
  const reason = endedByTimeout(Number(pvString("$dlg(dflags)"))) ? "dialog timeout" : "dialog's BYEs: dlg.end_dlg or dlg.terminate_dlg";
  KSR.pv.sets(ENDED_VAR, reason);
  freePair(callId);
  deleteMediaOfDialog(reason);
}

/** dialog's DLG_FLAG_EXPIRED (dlg_hash.h; dialog's DMQ sync, not used here, shares the bit). */
const DIALOG_EXPIRED = 1 << 10;

/**
 * Whether dialog's BYE is its timeout's (WA_MAX_CALL_SECONDS) rather than an operator's: dialog
 * marks the dialog expired before its timeout sends the BYEs.
 */
function endedByTimeout(dialogFlags: number): boolean {
  return (dialogFlags & DIALOG_EXPIRED) !== 0;
}

function freePair(callId: string): void {
  const pair = pvString("$dlg_var(wa_pair)");
  if (pair) updatePair(pair, { type: "ended", callId });
}
