/**
 * ksr_reply_route: every SIP reply enters here before tm matches it to a transaction.
 *
 * tm matches a reply by its Via branch alone, whoever sends it; a branch is a claim like any
 * other. So only the sources we send requests to may answer them: Meta's edge (TLS from
 * WA_META_PREFIXES) and the internal side (WA_INTERNAL_ALLOW). A reply from anyone else (an
 * outsider's forged 200 with the agent's SDP, a stranger's 487) is dropped before tm sees it.
 */
import { describeSource, isTrusted } from "./policy/trust";
import { readArrival, sourceOf } from "./ksr/arrival";
import { routingConfig } from "./config";
import { pvString } from "./ksr/pv";
import { dropMessage } from "./runtime/route-end";

export function replyRoute(): void {
  const cfg = routingConfig();
  const arrival = readArrival();
  const source = cfg ? sourceOf(cfg, arrival) : null;
  if (!source || !isTrusted(source)) {
    KSR.notice(`dropped reply ${pvString("$rs")} ${pvString("$rr")} from ${arrival.proto}:${arrival.srcIp}:${arrival.srcPort}: ${source ? `${describeSource(source)} answers no request of ours` : "routing settings invalid"}\n`);
    dropMessage();
  }
  if (KSR.sanity.sanity_reply() < 0) {
    KSR.notice(`malformed reply ${pvString("$rs")} from ${pvString("$si")}:${pvString("$sp")} dropped\n`);
    dropMessage();
  }
}
