/**
 * User-initiated calls: Meta's INVITE over TLS → checks → the media agent on loopback.
 *
 *   isFromMeta ─► business number ─► per-number call limit ─► dialog + Record-Route
 *     ─► profile header ─► relay to the agent
 */
import type { BusinessNumber, RoutingConfig } from "../config";
import { isFromMeta } from "../policy/meta-edge";
import { countCall, countMetaClassificationFailure } from "./metrics";
import { digestUsername, lookupBusinessNumber } from "../policy/numbers";
import { headerValues, pvString } from "../ksr/pv";
import { refuse } from "../sip/reply";
import { relay } from "../sip/relay";
import { pairKey, updateExistingPair } from "./callback-state";
import type { Arrival } from "../ksr/arrival";
import type { SourceClass } from "../policy/trust";
import { startDialog } from "./dialog-peers";
import { selectAgent } from "./agent-pool";
import { LOCAL_CALLEE_FAILURE_ROUTE, LOCAL_CALLEE_REPLY_ROUTE, offerMedia, requireSdpOffer } from "./media";
import { endRoute } from "../runtime/route-end";

/** Dialog profile counting active calls per business number (kamailio.cfg). */
const CALLS_PER_NUMBER = "calls_per_number";
/** Header carrying the agent profile to the media agent; never accepted from outside. */
export const PROFILE_HEADER = "X-WA-Profile";

export function userInitiatedCall(cfg: RoutingConfig, arrival: Arrival, source: SourceClass): void {
  const edge = isFromMeta({ proto: arrival.proto, srcIp: arrival.srcIp, source, externalDomains: headerValues("X-FB-External-Domain") }, cfg);
  if (!edge.fromMeta) {
    countMetaClassificationFailure(edge.reason);
    refuse(edge.code, edge.reason, edge.cause);
  }

  const ruriUser = pvString("$rU");
  const business = lookupBusinessNumber(ruriUser, cfg.numbers);
  if (!business) refuse(404, "Not Found - Unknown Business Number", `${ruriUser} is not in WA_NUMBERS`);

  if (cfg.inboundAuth) authenticateMeta(business, cfg.domain);

  // The user calling the business clears the unanswered-calls guard for that pair.
  const caller = pvString("$fU");
  updateExistingPair(pairKey(business.number, caller), { type: "user-called" });

  KSR.dialog.get_profile_size(CALLS_PER_NUMBER, business.number, "$var(active_calls)");
  if ((KSR.pv.get("$var(active_calls)") as number) >= cfg.maxCallsPerNumber) {
    refuse(486, "Busy Here - Call Limit Reached", `${business.number} has ${cfg.maxCallsPerNumber} active calls (WA_MAX_CALLS_PER_NUMBER)`);
  }
  // The agent is chosen before anything is recorded for the call: with none up, it is refused clean.
  const agent = selectAgent(cfg.agents);
  if (agent === null) {
    refuse(503, "Service Unavailable - No Media Agent", "no agent of WA_AGENT_URI answers dispatcher's probes");
  }
  startDialog("user-initiated");
  KSR.dialog.set_dlg_profile(CALLS_PER_NUMBER, business.number);

  // Meta's own Record-Routes stay untouched; ours (two: TLS and loopback side) go on top.
  KSR.rr.record_route();
  // No X-WA-Profile from outside is left: reqinit strips every X-WA-* (but X-WA-Meta-*) from
  // the public side, the only side this route serves. Ours is the only one.
  KSR.hdr.append(`${PROFILE_HEADER}: ${business.profile}\r\n`);
  requireSdpOffer("user-initiated");
  offerMedia("user-initiated", cfg.media);
  KSR.tm.t_on_reply(LOCAL_CALLEE_REPLY_ROUTE);
  KSR.tm.t_on_failure(LOCAL_CALLEE_FAILURE_ROUTE);
  KSR.info(`user-initiated call from ${caller} to ${business.number} (profile ${business.profile}) → ${agent}\n`);
  countCall("user-initiated", "relayed to the agent");
  relay();
}

/** Results of auth's pv_auth_check (auth/api.h). */
const AUTH_OK = 1;
const AUTH_INVALID_PASSWORD = -2;
const AUTH_STALE_NONCE = -4;
const AUTH_NO_CREDENTIALS = -5;
const AUTH_NONCE_REUSED = -6;

/**
 * Optional digest check of Meta's INVITE (WA_INBOUND_AUTH): realm WA_DOMAIN, username the
 * number without "+", password the number's SIP password. No or stale credentials get a
 * 407 challenge (qop=auth); wrong ones a 403.
 */
function authenticateMeta(business: BusinessNumber, realm: string): void {
  if (business.password === null) {
    refuse(503, "Service Unavailable - No SIP Password", `${business.number} has no password in WA_SIP_PASSWORDS to check Meta's digest`);
  }
  const rc = KSR.auth.pv_auth_check(realm, business.password, 0, 0);
  if (rc === AUTH_OK) {
    if (pvString("$au") !== digestUsername(business.number)) {
      refuse(403, "Forbidden - Wrong Digest User", `digest user '${pvString("$au")}' is not ${digestUsername(business.number)}`);
    }
    KSR.auth.consume_credentials();
    return;
  }
  if (rc === AUTH_NO_CREDENTIALS || rc === AUTH_STALE_NONCE || rc === AUTH_NONCE_REUSED) {
    KSR.auth.auth_challenge(realm, rc === AUTH_STALE_NONCE ? 1 | 16 : 1);
    endRoute();
  }
  refuse(403, "Forbidden - Digest Check Failed", rc === AUTH_INVALID_PASSWORD ? "wrong digest response (password)" : `digest check result ${rc}`);
}

