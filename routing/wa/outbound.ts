/**
 * Business-initiated calls: an internal INVITE (the agent's outbound-call API, another
 * internal UA) → checks → Meta's edge over TLS; Meta's digest challenge answered once.
 *
 *   business number (From) ─► user number (R-URI) ─► R-URI/To/From as Meta wants them
 *     ─► dialog + Record-Route ─► TLS to the edge (SNI) ─► ksr_failure_meta answers 407/401
 */
import { routingConfig, type BusinessNumber, type RoutingConfig } from "../config";
import { digestUsername, isWhatsAppUser, lookupBusinessNumber, metaUserPart, numberFromUser } from "../policy/numbers";
import { digestCredentials, parseDigestChallenges, strongestChallenge, type HashFn } from "../policy/digest";
import { headerValues, pvString } from "../ksr/pv";
import { startDialog } from "./dialog-peers";
import { refuse } from "../sip/reply";
import { relay } from "../sip/relay";
import { exportReplyRoute, exportRequestRoute } from "../runtime/callbacks";
import { certificateNameMatches } from "../policy/certificate";
import { classifyMetaFailure } from "../policy/callback-rules";
import { admitCall, pairKey, updatePair } from "./callback-state";
import { restoreReplyCseq, shiftResentInvite } from "./cseq-shift";
import { answerMedia, deleteMedia, offerMedia, requireSdpOffer } from "./media";
import { countCall, countCallbackDecision, countDigestAnswer } from "./metrics";
import { dropMessage, endRoute } from "../runtime/route-end";

const FAILURE_ROUTE = "ksr_failure_meta";
const REPLY_ROUTE = "ksr_onreply_meta";

export function businessInitiatedCall(cfg: RoutingConfig): void {
  if (KSR.hdr.is_present("X-FB-External-Domain") > 0) {
    refuse(403, "Meta Traffic Must Use TLS", "X-FB-External-Domain on the internal UDP side: Meta uses TLS only");
  }
  const business = lookupBusinessNumber(pvString("$fU"), cfg.numbers);
  if (!business) refuse(403, "Forbidden - Unknown Business Number", `From user ${pvString("$fU")} is not in WA_NUMBERS`);
  if (business.password === null) {
    refuse(503, "Service Unavailable - No SIP Password", `${business.number} has no password in WA_SIP_PASSWORDS; Meta always challenges`);
  }
  const user = numberFromUser(pvString("$rU"));
  if (!isWhatsAppUser(user)) {
    refuse(484, "Address Incomplete - E.164 With + Or BSUID Expected", `R-URI user '${pvString("$rU")}' is neither +E.164 nor a business-scoped user id`);
  }

  requireSdpOffer("business-initiated");

  // Callback rules: refused here, nothing reaches Meta. From here on the call is the pair's
  // call in progress: a refusal must release it (releaseAdmission), or the pair stays busy.
  const pair = pairKey(business.number, user);
  const admitted = admitCall(pair, pvString("$ci"), cfg.callbackLimits);
  countCallbackDecision(admitted.allow ? "allowed" : admitted.reason);
  if (!admitted.allow) refuse(admitted.code, admitted.reason, `${business.number} → ${user}: ${admitted.cause}`);
  KSR.pv.sets("$avp(wa_pair)", pair);

  // Meta's rules: R-URI with its domain (an IP gets 404), To equal to it, From our number@domain.
  const metaUri = `sip:${metaUserPart(user, cfg.bsuidUriPrefix)}@${cfg.metaDomain}`;
  KSR.uac.uac_replace_from_uri(`sip:${business.number}@${cfg.domain}`);
  KSR.uac.uac_replace_to_uri(metaUri);
  KSR.pv.sets("$ru", `${metaUri};transport=tls`);
  KSR.pv.sets("$du", `sip:${cfg.metaEdge};transport=tls`);
  // SNI: Meta's edge is reached by name whatever address WA_META_EDGE resolves to.
  KSR.pv.sets("$xavp(tls=>server_name)", cfg.metaDomain);

  offerMedia("business-initiated", cfg.media, releaseAdmission);
  startDialog("business-initiated");
  KSR.pv.sets("$dlg_var(wa_pair)", pair);
  KSR.rr.record_route();
  KSR.pv.sets("$avp(wa_business)", business.number);
  KSR.tm.t_on_failure(FAILURE_ROUTE);
  KSR.tm.t_on_reply(REPLY_ROUTE);
  KSR.info(`business-initiated call from ${business.number} to ${user} → ${cfg.metaEdge}\n`);
  relay(abandonCall);
}

/** Kamailio's native hashes, through the {s.md5}/{s.sha256} transformations. */
const kamailioHash: HashFn = (algorithm, input) => {
  KSR.pv.sets("$var(wa_digest_in)", input);
  return pvString(algorithm === "MD5" ? "$(var(wa_digest_in){s.md5})" : "$(var(wa_digest_in){s.sha256})");
};

/**
 * ksr_failure_meta: a 407/401 from Meta is answered once with the number's credentials.
 * Another challenge after our answer, or a 403, ends the call with Meta's answer.
 */
function failureMeta(): void {
  const status = KSR.tm.t_get_status_code();
  if (KSR.tm.t_is_canceled() > 0) return endCall("unanswered");
  const untrusted = pvString("$avp(wa_untrusted_peer)");
  if (untrusted) {
    endCall("failed");
    KSR.tm.t_reply(502, "Bad Gateway - Meta Certificate Name Mismatch");
    endRoute();
  }
  if (status !== 401 && status !== 407) {
    const reason = pvString("$T_reply_reason");
    KSR.notice(`business-initiated call to ${pvString("$rU")} ended by Meta: ${status} ${reason}\n`);
    return endCall(classifyMetaFailure(status, reason));
  }
  const business = lookupBusinessNumberForFailure();
  if (!business || business.password === null) {
    KSR.err(`cannot answer Meta's ${status}: ${pvString("$avp(wa_business)")} has no password any more (settings reloaded?)\n`);
    return endCall("failed");
  }
  if (KSR.pv.get("$avp(wa_digest_sent)") !== null) {
    KSR.warn(`Meta challenged again after our digest answer for ${business.number}: wrong password in WA_SIP_PASSWORDS?\n`);
    countDigestAnswer(pvString("$avp(wa_digest_algorithm)"), "rejected");
    endCall("failed");
    KSR.tm.t_reply(403, "Forbidden - Meta Rejected Our Digest Answer");
    endRoute();
  }
  // Meta's 407 may carry several challenges (SHA-256 and MD5, in either order): the strongest
  // one we support is answered, with exactly one credentials header. Computed here for both
  // algorithms: uac_auth() answers only the first challenge (kamailio/kamailio #4698).
  const headerName = status === 407 ? "Proxy-Authenticate" : "WWW-Authenticate";
  const offered = headerValues(headerName, "failed reply");
  const challenge = strongestChallenge(parseDigestChallenges(offered));
  if (!challenge) {
    KSR.err(`cannot answer Meta's ${status}: no MD5 or SHA-256 digest challenge in ${headerName} '${offered.join("' '")}'\n`);
    countDigestAnswer("none", "unusable challenge");
    endCall("failed");
    KSR.tm.t_reply(500, "Server Error - Unusable Digest Challenge");
    endRoute();
  }
  KSR.pv.seti("$avp(wa_digest_sent)", 1);
  KSR.pv.sets("$avp(wa_digest_algorithm)", challenge.algorithm);
  countDigestAnswer(challenge.algorithm, "sent");
  const credentials = digestCredentials(
    challenge,
    {
      username: digestUsername(business.number),
      password: business.password,
      method: "INVITE",
      // The Request-URI as it goes out; To carries the same user@domain (Meta compares them).
      uri: pvString("$ru"),
      cnonce: randomHex(16),
      nc: "00000001",
    },
    kamailioHash,
  );
  KSR.hdr.append(`${status === 407 ? "Proxy-Authorization" : "Authorization"}: ${credentials}\r\n`);
  // The re-sent INVITE is a new transaction toward Meta (CSeq + 1); the routing keeps the shift.
  shiftResentInvite();
  KSR.info(`answering Meta's ${status} (${challenge.algorithm} of ${offered.length} challenge header(s)) for ${business.number}\n`);
  // A failure route forwards only to destinations set anew.
  KSR.pv.sets("$ru", pvString("$ru"));
  KSR.pv.sets("$du", pvString("$T_req($du)") || pvString("$du"));
  KSR.tm.t_on_failure(FAILURE_ROUTE);
  KSR.tm.t_on_reply(REPLY_ROUTE);
  relay();
}

/**
 * ksr_onreply_meta: replies from the edge. The tls module verified its certificate chain
 * against WA_META_CA_LIST (our client side requires one); its name must also be Meta's
 * domain. Otherwise nothing from it is trusted: provisional and 2xx answers are dropped,
 * a final failure ends the call with 502 (ksr_failure_meta), and no credentials are sent.
 */
function onReplyMeta(): void {
  restoreReplyCseq();
  const cfg = routingConfig();
  const name = pvString("$tls_peer_san_hostname") || pvString("$tls_peer_subject_cn");
  if (!cfg || certificateNameMatches(name, cfg.metaDomain)) {
    const status = KSR.pv.get("$rs") as number;
    if (cfg) answerMedia(cfg.media, "Meta"); // the edge's certificate was checked just above
    if (status >= 200 && status < 300 && !pvString("$avp(wa_answered)")) {
      KSR.pv.seti("$avp(wa_answered)", 1);
      callOutcome("answered");
    }
    return;
  }
  KSR.err(
    `untrusted reply ${pvString("$rs")} from ${pvString("$si")}:${pvString("$sp")}: peer certificate is for '${name}', not ${cfg.metaDomain}\n`,
  );
  KSR.pv.seti("$avp(wa_untrusted_peer)", 1);
  if ((KSR.pv.get("$rs") as number) < 300) dropMessage();
}

/** Records how a business-initiated call went against its pair's callback state. */
function callOutcome(type: "answered" | "unanswered" | "failed" | "meta-no-permission" | "meta-daily-limit"): void {
  countCall("business-initiated", type);
  const pair = pvString("$avp(wa_pair)");
  if (pair) updatePair(pair, { type, callId: pvString("$ci") });
}

/** The admitted call is refused before it left: the pair is free again, nothing counts. */
function releaseAdmission(): void {
  callOutcome("failed");
}

/** The call could not be sent toward Meta at all: the pair is free again, its media goes. */
function abandonCall(): void {
  endCall("failed");
}

/** The call failed for good (no re-send follows): its outcome counts, its media goes. */
function endCall(type: Parameters<typeof callOutcome>[0]): void {
  callOutcome(type);
  deleteMedia(`business-initiated call failed: ${type}`);
}

/** The business number the request route chose, kept in the transaction's AVPs. */
function lookupBusinessNumberForFailure(): BusinessNumber | null {
  const number = pvString("$avp(wa_business)");
  const cfg = routingConfig();
  return cfg && cfg.numbers.hasOwnProperty(number) ? cfg.numbers[number] : null;
}

function randomHex(length: number): string {
  let out = "";
  while (out.length < length) out += Math.floor(Math.random() * 0x100000000).toString(16);
  return out.slice(0, length);
}

exportRequestRoute(FAILURE_ROUTE, failureMeta);
exportReplyRoute(REPLY_ROUTE, onReplyMeta);
