/**
 * ksr_request_route: every SIP request enters here.
 *
 *   reqinit ─► CANCEL ─► withindlg ─► initial request by method
 *                                      OPTIONS → 200 · INVITE → call routing · others → refused
 */
import { ALLOW_HEADER, initialRequestDecision, isScannerUserAgent } from "./policy/methods";
import { pvString } from "./ksr/pv";
import { answerOnce, dropSilently, refuse } from "./sip/reply";

export function requestRoute(): void {
  reqinit();
  if (KSR.is_CANCEL()) return cancel();
  if (KSR.siputils.has_totag() > 0) return withindlg();
  initialRequest();
}

/** Drops floods and scanners, then lets sanity and Max-Forwards checks answer bad requests. */
function reqinit(): void {
  const fromPublicSide = KSR.is_TLS();
  if (fromPublicSide && KSR.pike.pike_check_req() < 0) dropSilently("request rate over the pike limit");
  if (isScannerUserAgent(pvString("$ua"))) dropSilently(`scanner User-Agent '${pvString("$ua")}'`);

  // Bad request line, CSeq, Content-Length, URIs …: sanity answers 400 itself.
  if (KSR.sanity.sanity_check(17895, 7) < 0) {
    KSR.notice(`malformed ${pvString("$rm")} from ${pvString("$si")}:${pvString("$sp")} answered by sanity\n`);
    KSR.x.exit();
  }
  const maxfwd = KSR.maxfwd.process_maxfwd(10);
  if (maxfwd === -1) refuse(483, "Too Many Hops", "Max-Forwards reached 0");
  if (maxfwd < 0) refuse(400, "Bad Max-Forwards", `unusable Max-Forwards '${pvString("$hdr(Max-Forwards)")}'`);
}

/** CANCEL follows its INVITE transaction; without one there is nothing to cancel. */
function cancel(): void {
  if (KSR.tm.t_check_trans() > 0) {
    relay();
    return;
  }
  refuse(481, "Call/Transaction Does Not Exist", "CANCEL matches no transaction");
}

/** In-dialog requests follow the route set; ACKs for our own negative replies are absorbed. */
function withindlg(): void {
  if (KSR.rr.loose_route() > 0) {
    relay();
    return;
  }
  if (KSR.is_ACK()) {
    if (KSR.tm.t_check_trans() > 0) relay();
    else dropSilently("in-dialog ACK without route set or transaction");
    return;
  }
  refuse(404, "Not Here", "in-dialog request without a route set through us");
}

function initialRequest(): void {
  const decision = initialRequestDecision(pvString("$rm"));
  switch (decision.kind) {
    case "keepalive":
      KSR.hdr.append_to_reply(`${ALLOW_HEADER}\r\n`);
      answerOnce(200, "OK");
      return;
    case "absorb-ack":
      if (KSR.tm.t_check_trans() > 0) relay();
      else dropSilently("ACK matches no transaction");
      return;
    case "call":
      refuse(503, "Service Unavailable - No Call Routing", "call routing is not configured in this build");
      return;
    case "refuse":
      refuse(decision.code, decision.reason, decision.cause, decision.headers);
  }
}

/** Stateful forwarding; tm answers itself when the next hop cannot be reached. */
function relay(): void {
  if (KSR.tm.t_relay() < 0) KSR.sl.sl_reply_error();
  KSR.x.exit();
}
