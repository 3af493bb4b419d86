/**
 * Transfer legs: the media agent hands a WhatsApp caller to a person by calling that person
 * itself and joining the two calls' audio (Meta's side has no REFER). Such an INVITE comes
 * from the internal side, marked with X-WA-Transfer (the caller's Call-ID, for the log).
 *
 *   X-WA-Transfer ─► WA_TRANSFER_PROXY set? ─► plain RTP through rtpengine ─► dialog
 *     + Record-Route ─► relay to the PBX (failure/reply routes free or answer the media)
 *
 * Meta never sees this leg, so no callback rules and no Meta header rules apply.
 */
import type { RoutingConfig } from "../config";
import { pvString } from "../ksr/pv";
import { startDialog } from "./dialog-peers";
import { refuse } from "../sip/reply";
import { relay } from "../sip/relay";
import { LOCAL_CALLEE_FAILURE_ROUTE, LOCAL_CALLEE_REPLY_ROUTE, offerMedia, requireSdpOffer } from "./media";

export const TRANSFER_HEADER = "X-WA-Transfer";

export function isTransferLeg(): boolean {
  return KSR.hdr.is_present(TRANSFER_HEADER) > 0;
}

export function transferCall(cfg: RoutingConfig): void {
  const caller = pvString(`$hdr(${TRANSFER_HEADER})`);
  if (!cfg.transferProxy) {
    refuse(503, "Service Unavailable - No Transfer Proxy", `transfer leg for call ${caller}: WA_TRANSFER_PROXY is not set`);
  }
  KSR.hdr.remove(TRANSFER_HEADER);
  KSR.pv.sets("$du", cfg.transferProxy);
  requireSdpOffer("transfer");
  offerMedia("transfer", cfg.media);
  startDialog("transfer");
  KSR.rr.record_route();
  KSR.tm.t_on_reply(LOCAL_CALLEE_REPLY_ROUTE);
  KSR.tm.t_on_failure(LOCAL_CALLEE_FAILURE_ROUTE);
  KSR.info(`transfer leg of call ${caller} to ${pvString("$ru")} → ${cfg.transferProxy}\n`);
  relay();
}
