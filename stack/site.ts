/**
 * What the site settings mean for the daemons around Kamailio, shared by `npm start`
 * (stack/main.ts) and the production render step (deploy/render.ts), so both run rtpengine the
 * same way.
 */
import type { SiteConfig } from "../build/site-config.js";

export interface RtpengineSetup {
  /** `name/address[!advertised]` entries; the first is the default. */
  interfaces: string[];
  ng: { host: string; port: number };
  portMin: number;
  portMax: number;
  /** WA_RTPENGINE_DIRECTIONS Kamailio must use with these interfaces (unset: one interface). */
  directions?: string;
  /** rtpengine's HTTP listener (WA_RTPENGINE_METRICS): Prometheus text at /metrics. */
  metrics: string;
}

/**
 * rtpengine (the first of WA_RTPENGINE_SOCK's set): one interface when Meta and the agent share an address (a test box), else
 * "external" (public, advertised behind NAT) and "internal" (the agent's side, usually loopback).
 */
export function rtpengineSetup(cfg: SiteConfig, agentRtpHost: string): RtpengineSetup {
  // With a set (several sockets), the first is this host's own rtpengine: the one started here.
  const own = cfg.WA_RTPENGINE_SOCK.split(/\s+/)[0].replace(/=\d+$/, "");
  const [ngHost, ngPort] = own.replace(/^udp6?:/, "").split(/:(?=\d+$)/);
  const split = cfg.WA_PUBLIC_IP !== agentRtpHost;
  const interfaces = split
    ? [`external/${cfg.WA_PUBLIC_IP}${cfg.WA_ADVERTISE_IP ? `!${cfg.WA_ADVERTISE_IP}` : ""}`, `internal/${agentRtpHost}`]
    : [cfg.WA_PUBLIC_IP];
  const [portMin, portMax] = cfg.WA_RTP_PORTS.split("-").map(Number);
  return { interfaces, ng: { host: ngHost, port: Number(ngPort) }, portMin, portMax, directions: split ? "external,internal" : undefined, metrics: cfg.WA_RTPENGINE_METRICS };
}
