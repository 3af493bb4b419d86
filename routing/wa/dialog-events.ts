/** ksr_dialog_event: a business-initiated call's dialog ended, so the pair is free again. */
import { pvString } from "../ksr/pv";
import { updatePair } from "./callback-state";

export function dialogEvent(event?: string): void {
  if (event !== "dialog:end" && event !== "dialog:failed") return;
  const pair = pvString("$dlg_var(wa_pair)");
  if (pair) updatePair(pair, { type: "ended", callId: pvString("$ci") });
}
