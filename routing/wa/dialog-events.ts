/**
 * ksr_dialog_event: a dialog ended. A business-initiated call's pair is free again; a dialog
 * that ended without a BYE through the request route (the dialog timeout, where dialog sends
 * the BYEs itself) still has media in rtpengine.
 */
import { pvString } from "../ksr/pv";
import { updatePair } from "./callback-state";
import { deleteMediaOfDialog } from "./media";

export function dialogEvent(event?: string): void {
  if (event !== "dialog:end" && event !== "dialog:failed") return;
  const pair = pvString("$dlg_var(wa_pair)");
  if (pair) updatePair(pair, { type: "ended", callId: pvString("$ci") });
  if (event === "dialog:end" && !KSR.is_BYE()) deleteMediaOfDialog("dialog timeout");
}
