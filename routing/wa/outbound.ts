/**
 * Business-initiated calls: an internal INVITE (the agent's outbound API, another internal
 * UA) → checks → Meta's edge over TLS, answering Meta's digest challenge.
 */
import type { RoutingConfig } from "../config";
import { refuse } from "../sip/reply";

export function businessInitiatedCall(_cfg: RoutingConfig): void {
  if (KSR.hdr.is_present("X-FB-External-Domain") > 0) {
    refuse(403, "Meta Traffic Must Use TLS", "X-FB-External-Domain on the internal UDP side: Meta uses TLS only");
  }
  refuse(503, "Service Unavailable - Business-Initiated Calls Not Enabled", "business-initiated calls are not implemented yet");
}
