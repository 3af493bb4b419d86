/**
 * CSeq shift after a digest re-send. The re-sent INVITE toward Meta must be a new transaction
 * (CSeq + 1). dialog's track_cseq_updates only follows re-sends marked by uac_auth(), which the
 * routing does not use (it answers only the first of Meta's challenges; Kamailio 5.6 has no way
 * to set that mark from KEMI), so the routing keeps the shift itself, in the dialog variable
 * wa_cseq_shift:
 *   - the re-sent INVITE carries CSeq + shift;
 *   - Meta's replies go back to the agent with the agent's own CSeq;
 *   - the agent's in-dialog requests toward Meta (ACK, BYE, …) carry CSeq + shift, and their
 *     replies come back with the agent's CSeq.
 */
import { pvString } from "../ksr/pv";
import { exportReplyRoute } from "../runtime/callbacks";

const SHIFT_VAR = "$dlg_var(wa_cseq_shift)";
const RESTORE_ROUTE = "ksr_onreply_cseq_restore";

function setCseq(value: number, method: string): void {
  KSR.hdr.remove("CSeq");
  KSR.hdr.append(`CSeq: ${value} ${method}\r\n`);
}

/** In the failure route: the next branch of the INVITE goes out as a new transaction. */
export function shiftResentInvite(): void {
  setCseq(parseInt(pvString("$cs"), 10) + 1, "INVITE");
  KSR.pv.sets(SHIFT_VAR, "1");
  KSR.pv.seti("$avp(wa_cseq_shift)", 1);
}

/** In an onreply route of a shifted transaction: the agent gets its own CSeq back. */
export function restoreReplyCseq(): void {
  const shift = parseInt(pvString("$avp(wa_cseq_shift)"), 10);
  if (!(shift > 0)) return;
  const [num, method] = pvString("$hdr(CSeq)").split(/\s+/);
  setCseq(parseInt(num, 10) - shift, method);
}

/** In-dialog requests from the agent toward Meta, after loose_route. */
export function shiftInDialogRequest(): void {
  const shift = parseInt(pvString(SHIFT_VAR), 10);
  if (!(shift > 0)) return;
  setCseq(parseInt(pvString("$cs"), 10) + shift, pvString("$rm"));
  if (!KSR.is_ACK()) {
    KSR.pv.seti("$avp(wa_cseq_shift)", shift);
    KSR.tm.t_on_reply(RESTORE_ROUTE);
  }
}

exportReplyRoute(RESTORE_ROUTE, restoreReplyCseq);
