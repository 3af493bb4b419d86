/**
 * ksr_request_route: every SIP request enters here.
 *
 *   reqinit ─► CANCEL ─► withindlg ─► initial request by method
 *                                      OPTIONS → 200 · INVITE → call routing · others → refused
 *
 * Who sent it is decided once, in reqinit, from the listener and the source address alone
 * (policy/trust.ts): Meta's edge (TLS from WA_META_PREFIXES), an outsider on the TLS listener,
 * an allowed internal source (WA_INTERNAL_ALLOW) or a stranger on the internal UDP listener.
 * Outsiders may only ask for OPTIONS or offer calls that inbound.ts then refuses; strangers
 * get nothing; nobody reaches a dialog they are not a party to.
 */
import { ALLOW_HEADER, initialRequestDecision, isScannerUserAgent, sessionChangeDecision } from "./policy/methods";
import { describeSource, inDialogSender, isTrusted, mayCarryWaHeadersToStrip, type SourceClass } from "./policy/trust";
import { nextHopAfterOurRoutes } from "./policy/route-set";
import { pvRaw, pvString } from "./ksr/pv";
import { answerOnce, dropSilently, refuse } from "./sip/reply";
import { relay } from "./sip/relay";
import { routingConfig, type RoutingConfig } from "./config";
import { userInitiatedCall } from "./wa/inbound";
import { readArrival, sourceOf, type Arrival } from "./ksr/arrival";
import { businessInitiatedCall } from "./wa/outbound";
import { isTransferLeg, transferCall } from "./wa/transfer";
import { shiftInDialogRequest } from "./wa/cseq-shift";
import { deleteMedia } from "./wa/media";
import { countMetaKeepalive } from "./wa/metrics";
import { dialogOfRequest, isRecordedPeer, requestRoutes } from "./wa/dialog-peers";
import { memoize } from "./runtime/memo";
import { endRoute } from "./runtime/route-end";

const ALLOW_LINE = `${ALLOW_HEADER}\r\n`;
/** Meta's edge and the agent send the same User-Agent every time: each is matched once per worker. */
const isScanner = memoize(64, isScannerUserAgent);

export function requestRoute(): void {
  const cfg = routingConfig();
  if (!cfg) refuse(503, "Service Unavailable - Configuration Error", "the WA_* routing settings are invalid (errors logged above)");
  // The method is read once and compared in JavaScript instead of one KEMI call per is_X().
  // Kamailio matches known method names case-insensitively, so the is_X() replacements compare
  // the upper-case name; the initial-request decision keeps the name as written.
  const method = pvString("$rm");
  const known = method.toUpperCase();
  const arrival = readArrival();
  const source = reqinit(cfg, arrival);
  if (known === "CANCEL") return cancel(source);
  if (KSR.siputils.has_totag() > 0) return withindlg(source, known);
  initialRequest(cfg, source, method, arrival);
}

/**
 * Drops floods from untrusted sources and scanners, refuses sources that may not send SIP here,
 * strips our own X-WA-* headers from the public side, then lets sanity and Max-Forwards
 * checks answer bad requests.
 */
function reqinit(cfg: RoutingConfig, arrival: Arrival): SourceClass {
  const source = sourceOf(cfg, arrival);
  // Meta's edge and our own internal sources are never throttled (Meta concentrates up to
  // 1,000 calls of a number on a few addresses); everyone else is, on both listeners.
  if (!isTrusted(source) && KSR.pike.pike_check_req() < 0) dropSilently(`request rate of ${describeSource(source)} over the pike limit`);
  const userAgent = pvString("$ua");
  if (isScanner(userAgent)) dropSilently(`scanner User-Agent '${userAgent}'`);
  if (source === "stranger") refuse(403, "Forbidden - Not An Internal Source", "source is not in WA_INTERNAL_ALLOW");
  if (source === "wrong-listener") refuse(403, "Forbidden - No SIP On This Listener", `SIP over ${arrival.proto} to ${pvString("$Ri")}:${pvString("$Rp")}: only TLS (Meta) and the internal UDP listener take SIP`);
  // X-WA-* are our own headers toward the agent (profile, transfer): nobody outside may set
  // them. Meta's own X-WA-Meta-* (call id, CTA payload) stay. textops compiles both regular
  // expressions on every call (about a tenth of a millisecond per call in place), so it runs
  // only for a message that has such a header (Meta's requests have only X-WA-Meta-*).
  if (source !== "internal" && mayCarryWaHeadersToStrip(pvRaw("$mb") ?? "")) KSR.textops.remove_hf_exp("^X-WA-", "^X-WA-Meta-");

  // Bad request line, CSeq, Content-Length, URIs …: sanity answers 400 itself.
  if (KSR.sanity.sanity_check(17895, 7) < 0) {
    KSR.notice(`malformed ${pvString("$rm")} from ${pvString("$si")}:${pvString("$sp")} answered by sanity\n`);
    endRoute();
  }
  const maxfwd = KSR.maxfwd.process_maxfwd(10);
  if (maxfwd === -1) refuse(483, "Too Many Hops", "Max-Forwards reached 0");
  if (maxfwd < 0) refuse(400, "Bad Max-Forwards", `unusable Max-Forwards '${pvString("$hdr(Max-Forwards)")}'`);
  return source;
}

/**
 * CANCEL follows its INVITE transaction, and only from the INVITE's own sender: the caller of
 * a dialog we hold, from that caller's side. Anything else leaves the call and its media alone.
 */
function cancel(source: SourceClass): void {
  const sender = inDialogSender(source, pvRaw("$ft") ?? "", dialogOfRequest(), true);
  if (!sender.ok) refuse(sender.code, sender.reason, `CANCEL: ${sender.cause}`);
  if (KSR.tm.t_check_trans() > 0) {
    deleteMedia("CANCEL");
    relay();
  }
  refuse(481, "Call/Transaction Does Not Exist", "CANCEL matches no transaction");
}

/**
 * In-dialog requests: only for a dialog we hold, only from that dialog's own sides, and only
 * toward that dialog's own peers — checked before loose_route, which would already act on the
 * dialog (a BYE ends it there). ACKs for our own negative replies are absorbed.
 * Session changes (re-INVITE, UPDATE) never cross between Meta and the agent: they are
 * answered here (sessionChangeDecision).
 */
function withindlg(source: SourceClass, method: string): void {
  // `method`: the upper-case method name (is_ACK(), is_BYE() … in JavaScript).
  const sender = inDialogSender(source, pvRaw("$ft") ?? "", dialogOfRequest(), false);
  if (!sender.ok) {
    // A retransmission tm already answered, or an ACK for its negative reply: tm handles it
    // itself (t_check_trans ends it). Nothing is forwarded.
    if (KSR.tm.t_check_trans() === 0) return;
    if (method === "ACK") dropSilently(`in-dialog ACK: ${sender.cause}`);
    refuse(sender.code, sender.reason, sender.cause);
  }
  const change = sessionChangeDecision(method, source === "meta", sender.toward === "meta");
  if (change) {
    // Answered in a transaction of ours: its ACK (hop-by-hop, same branch) is absorbed below.
    KSR.tm.t_newtran();
    refuse(change.code, change.reason, change.cause);
  }
  // The ACK of a negative answer we gave in this dialog (a refused session change) ends here;
  // only the ACK of the call's 2xx goes on to the other side.
  if (method === "ACK" && KSR.tm.t_check_trans() === 0) return;
  const hop = nextHopAfterOurRoutes(requestRoutes(), requestUri, isMyself);
  if (!hop.ok) refuse(404, "Not Here", `in-dialog request not routed through us: ${hop.cause}`);
  if (!isRecordedPeer(hop, sender.from)) {
    refuse(403, "Forbidden - Route Leaves This Call", `its route set leads to <${hop.uri}>, not to this dialog's ${sender.toward} side`);
  }
  if (KSR.rr.loose_route() < 0) refuse(404, "Not Here", "in-dialog request without a route set through us");
  if (method === "BYE") deleteMedia(`BYE from the ${sender.from} (${source} side)`);
  if (sender.toward === "meta") shiftInDialogRequest();
  relay();
}

// Declared once, not as arrows per request: Duktape allocates every function it evaluates.
function requestUri(): string {
  return pvString("$ru");
}

function isMyself(uri: string): boolean {
  return KSR.is_myself(uri);
}

function initialRequest(cfg: RoutingConfig, source: SourceClass, method: string, arrival: Arrival): void {
  const decision = initialRequestDecision(method);
  switch (decision.kind) {
    case "keepalive":
      // Meta's keepalive: its absence for minutes is the first sign of a broken interconnect.
      if (source === "meta") countMetaKeepalive();
      KSR.hdr.append_to_reply(ALLOW_LINE);
      answerOnce(200, "OK");
      return;
    case "absorb-ack":
      // tm absorbs an ACK for its own negative reply; nothing else is forwarded.
      if (KSR.tm.t_check_trans() < 0) dropSilently("ACK matches no transaction");
      return;
    case "call":
      return routeCall(cfg, source, arrival);
    case "refuse":
      refuse(decision.code, decision.reason, decision.cause, decision.headers);
  }
}

/**
 * Meta's calls arrive on the public TLS side; on the internal side the agent places
 * business-initiated calls and transfer legs to people.
 */
function routeCall(cfg: RoutingConfig, source: SourceClass, arrival: Arrival): void {
  if (source !== "internal") userInitiatedCall(cfg, arrival, source);
  else if (isTransferLeg()) transferCall(cfg);
  else businessInitiatedCall(cfg);
}
