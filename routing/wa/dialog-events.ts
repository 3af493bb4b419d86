/**
 * ksr_dialog_event: what the dialog module tells the routing about a call's end.
 *
 * - "dialog:timeout": the call reached WA_MAX_CALL_SECONDS (startDialog asks for this event).
 *   dialog sends the BYEs itself, so no BYE passes the request route: the call's media and a
 *   business-initiated call's pair are freed here, before the BYEs go out. Kamailio 5.6's
 *   "dialog:end" after its own BYEs is no substitute: dlg_bye_all runs it with the dialog's
 *   state read after sending them, and when a BYE's 200 has already ended the dialog (the
 *   agent on loopback answers within a millisecond) the states are equal and no event runs.
 * - "dialog:end" / "dialog:failed": a dialog ended otherwise. A business-initiated call's pair
 *   is free again; a dialog that ended without a BYE through the request route (an operator's
 *   dlg.bye_all, for instance) still has media in rtpengine.
 *
 * The message of these events may be one the dialog module made up (Kamailio's faked OPTIONS),
 * so the call is named by the dialog ($dlg(callid)), never by the message ($ci).
 */
import { pvString } from "../ksr/pv";
import { updatePair } from "./callback-state";
import { deleteMediaOfDialog } from "./media";

/** The callback's name: main.ts exports it, kamailio.cfg names it (modparam dialog event_callback). */
export const DIALOG_EVENT_CALLBACK = "ksr_dialog_event";

/** Set on a dialog whose end the routing has handled (its timeout): its "dialog:end" is not handled again. */
const ENDED_VAR = "$dlg_var(wa_ended)";

export function dialogEvent(event?: string): void {
  if (event === "dialog:timeout") {
    KSR.pv.sets(ENDED_VAR, "timeout");
    freePair();
    deleteMediaOfDialog("dialog timeout");
    return;
  }
  if (event !== "dialog:end" && event !== "dialog:failed") return;
  if (pvString(ENDED_VAR)) return;
  freePair();
  if (event === "dialog:end" && !KSR.is_BYE()) deleteMediaOfDialog("dialog ended without a BYE");
}

function freePair(): void {
  const pair = pvString("$dlg_var(wa_pair)");
  if (pair) updatePair(pair, { type: "ended", callId: pvString("$dlg(callid)") });
}
