/**
 * User-initiated calls: Meta's INVITE over TLS → checks → the media agent on loopback.
 *
 *   isFromMeta ─► business number ─► per-number call limit ─► dialog + Record-Route
 *     ─► profile header ─► relay to the agent
 */
import type { RoutingConfig } from "../config";
import { isFromMeta } from "../policy/meta-edge";
import { lookupBusinessNumber } from "../policy/numbers";
import { pvString } from "../ksr/pv";
import { refuse } from "../sip/reply";
import { relay } from "../sip/relay";
import { pairKey, updateExistingPair } from "./callback-state";

/** Dialog profile counting active calls per business number (kamailio.cfg). */
const CALLS_PER_NUMBER = "calls_per_number";
/** Header carrying the agent profile to the media agent; never accepted from outside. */
export const PROFILE_HEADER = "X-WA-Profile";

export function userInitiatedCall(cfg: RoutingConfig): void {
  const edge = isFromMeta(
    {
      proto: pvString("$pr"),
      srcIp: pvString("$si"),
      externalDomain: KSR.hdr.is_present("X-FB-External-Domain") > 0 ? pvString("$hdr(X-FB-External-Domain)") : null,
    },
    cfg,
  );
  if (!edge.fromMeta) refuse(edge.code, edge.reason, edge.cause);

  const business = lookupBusinessNumber(pvString("$rU"), cfg.numbers);
  if (!business) refuse(404, "Not Found - Unknown Business Number", `${pvString("$rU")} is not in WA_NUMBERS`);

  // The user calling the business clears the unanswered-calls guard for that pair.
  updateExistingPair(pairKey(business.number, pvString("$fU")), { type: "user-called" });

  KSR.dialog.get_profile_size(CALLS_PER_NUMBER, business.number, "$var(active_calls)");
  if ((KSR.pv.get("$var(active_calls)") as number) >= cfg.maxCallsPerNumber) {
    refuse(486, "Busy Here - Call Limit Reached", `${business.number} has ${cfg.maxCallsPerNumber} active calls (WA_MAX_CALLS_PER_NUMBER)`);
  }
  KSR.dialog.dlg_manage();
  KSR.dialog.set_dlg_profile(CALLS_PER_NUMBER, business.number);

  // Meta's own Record-Routes stay untouched; ours (two: TLS and loopback side) go on top.
  KSR.rr.record_route();
  KSR.hdr.remove(PROFILE_HEADER);
  KSR.hdr.append(`${PROFILE_HEADER}: ${business.profile}\r\n`);
  KSR.pv.sets("$du", cfg.agentUri);
  KSR.info(`user-initiated call from ${pvString("$fU")} to ${business.number} (profile ${business.profile}) → ${cfg.agentUri}\n`);
  relay();
}
