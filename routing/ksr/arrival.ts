/**
 * How the current message arrived, and so who sent it (policy/trust.ts). Protocol and source
 * address are Kamailio's own text, never a peer's bytes: read once per message, directly, in one
 * KEMI call (kx.get_srcuri: "sip:IP:PORT", ";transport=PROTO" unless UDP, IPv6 in brackets).
 */
import type { RoutingConfig } from "../config";
import { classifySource, type SourceClass } from "../policy/trust";
import { memoize } from "../runtime/memo";

export interface Arrival {
  readonly proto: string;
  readonly srcIp: string;
  readonly srcPort: number;
}

/** An arrival as this worker remembers it, with its source class under one settings object. */
interface KnownArrival extends Arrival {
  classified: { cfg: RoutingConfig; source: SourceClass } | null;
}

/**
 * Arrivals by source URI: Meta's edge keeps its TLS connections, the agent and the PBX send from
 * fixed ports, so most messages repeat a source already parsed and classified.
 */
const knownArrival = memoize<KnownArrival | null>(256, (srcUri) => {
  const parsed = parseSourceUri(srcUri);
  return parsed && { proto: parsed.proto, srcIp: parsed.srcIp, srcPort: parsed.srcPort, classified: null };
});

export function readArrival(): Arrival {
  const known = knownArrival(String(KSR.kx.get_srcuri()));
  if (known) return known;
  const asked: KnownArrival = { proto: String(KSR.kx.get_proto()), srcIp: String(KSR.kx.get_srcip()), srcPort: Number(KSR.kx.get_srcport()), classified: null };
  return asked;
}

const TRANSPORT_PARAM = ";transport=";

/**
 * "sip:203.0.113.7:5061;transport=tls" → tls, 203.0.113.7, 5061. Only UDP and TLS (the
 * listeners that take SIP) are read from the URI; anything else (or no URI) is null, and the
 * caller asks Kamailio for each part (kx.get_srcuri writes WSS as "ws", unlike get_proto).
 */
export function parseSourceUri(uri: string): Arrival | null {
  if (uri.slice(0, 4) !== "sip:") return null;
  const semi = uri.indexOf(";");
  const proto = semi < 0 ? "udp" : uri.slice(semi, semi + TRANSPORT_PARAM.length) === TRANSPORT_PARAM ? uri.slice(semi + TRANSPORT_PARAM.length) : "";
  if (proto !== "udp" && proto !== "tls") return null;
  const hostPort = uri.slice(4, semi < 0 ? uri.length : semi);
  const colon = hostPort.lastIndexOf(":");
  const port = Number(hostPort.slice(colon + 1));
  let ip = hostPort.slice(0, colon);
  if (ip.charAt(0) === "[" && ip.charAt(ip.length - 1) === "]") ip = ip.slice(1, -1);
  if (colon < 1 || !ip || !(port > 0)) return null;
  return { proto, srcIp: ip, srcPort: port };
}

/** The arrival's source class under these settings (classifySource is pure): computed once per source. */
export function sourceOf(cfg: RoutingConfig, arrival: Arrival): SourceClass {
  const entry = arrival as KnownArrival;
  if (!entry.classified || entry.classified.cfg !== cfg) entry.classified = { cfg, source: classifySource(arrival.proto, arrival.srcIp, cfg) };
  return entry.classified.source;
}
