/**
 * How the current message arrived, and so who sent it (policy/trust.ts). Protocol and source
 * address are Kamailio's own text, never a peer's bytes: read once per message, directly.
 */
import type { RoutingConfig } from "../config";
import { classifySource, type SourceClass } from "../policy/trust";

export interface Arrival {
  proto: string;
  srcIp: string;
}

export function readArrival(): Arrival {
  return { proto: String(KSR.kx.get_proto()), srcIp: String(KSR.kx.get_srcip()) };
}

/**
 * The last source classified in this worker: Meta's edge, the agent and the PBX send from a few
 * addresses, so consecutive messages mostly repeat it. Same settings object, protocol and
 * address: same class (classifySource is pure).
 */
let lastSource: { cfg: RoutingConfig; proto: string; srcIp: string; source: SourceClass } | null = null;

export function sourceOf(cfg: RoutingConfig, arrival: Arrival): SourceClass {
  const last = lastSource;
  if (last && last.cfg === cfg && last.proto === arrival.proto && last.srcIp === arrival.srcIp) return last.source;
  const source = classifySource(arrival.proto, arrival.srcIp, cfg);
  lastSource = { cfg, proto: arrival.proto, srcIp: arrival.srcIp, source };
  return source;
}
