/**
 * Our Kamailio (real bundle) plus an independent Meta-edge peer (test/meta-edge/meta-edge.cfg),
 * talking TLS with certificates from a test CA. Loopback aliases stand for the networks:
 * 127.0.0.1 is our host, 127.0.0.2 Meta's edge (in WA_META_PREFIXES), 127.0.0.3 an outsider.
 */
import { join, resolve } from "node:path";
import { REPO_ROOT } from "../../build/bundle.js";
import { startKamailio, type KamailioProcess } from "../../build/kamailio.js";
import { freePort, freePortRange } from "../../build/ports.js";
import { startRtpengine, type RtpengineProcess } from "../../build/rtpengine.js";
import { startRoutingUnderTest, type RoutingUnderTest } from "./routing-under-test.js";
import { issueCert, type TestCa } from "../../build/test-ca.js";
import type { Teardown } from "../../build/teardown.js";

export const BUSINESS = "+15550001111";
export const BUSINESS_PASSWORD = "s3cret-Meta-generated";
export const WA_USER = "+15551234567";
export const EDGE_IP = "127.0.0.2";
export const OUTSIDER_IP = "127.0.0.3";


export interface Interconnect {
  us: RoutingUnderTest;
  /** A second node of ours (secondNode), with the same settings; the edge alternates calls between the two. */
  us2: RoutingUnderTest | null;
  edge: KamailioProcess;
  /** Where the WhatsApp user (SIPp) sends its requests: the edge's UDP side. */
  edgeUdp: { host: string; port: number };
  /** The same for a TLS client (baresip). */
  edgeUserTls: { host: string; port: number };
  /** The media agent's address (a SIPp UAS in the tests). */
  agent: { host: string; port: number };
  /** The WhatsApp user's UAS for business-initiated calls. */
  waUser: { host: string; port: number };
  /** Meta's media side (metaMedia): the edge's own rtpengine, ICE-lite DTLS toward us. */
  metaMedia: RtpengineProcess | null;
}

/** Records a call permission through the permission API, as the business backend would. */
export async function grantPermission(w: Interconnect, user: string, kind: "temporary" | "permanent" = "permanent"): Promise<unknown> {
  const res = await fetch(`${w.us.api}/permissions/${encodeURIComponent(BUSINESS)}/${encodeURIComponent(user)}`, {
    method: "PUT",
    body: JSON.stringify({ kind }),
  });
  if (res.status !== 200) throw new Error(`grant failed: ${res.status} ${await res.text()}`);
  return res.json();
}

export async function startInterconnect(
  t: Teardown,
  opts: {
    digestAlgorithm?: "MD5" | "SHA-256";
    /** A second challenge with the other algorithm (which the edge cannot verify), before or after the real one. */
    digestDecoy?: "first" | "after";
    edgePassword?: string;
    /** The password the edge answers our challenges with (WA_INBOUND_AUTH). */
    edgeAnswerPassword?: string;
    /** Names on the edge's certificate (default: wa.meta.vc and the loopback aliases). */
    edgeCertHosts?: string[];
    env?: Record<string, string>;
    /** Where the edge sends business-initiated calls (default: a SIPp UAS over UDP). */
    waUserUri?: string;
    /**
     * The edge gets its own rtpengine as Meta's media side: DTLS-SRTP, ICE-lite (a=ice-lite at
     * session level), rtcp-mux, a=mid toward us; plain RTP toward the WhatsApp user.
     */
    metaMedia?: boolean;
    /** A second Kamailio node with the same WA_* settings (scale-out): Meta's calls alternate between the two. */
    secondNode?: boolean;
    /** More rtpengines for our first node's rtpengine set. */
    rtpPool?: RtpengineProcess[];
  } = {},
): Promise<Interconnect> {
  const agent = { host: "127.0.0.1", port: await freePort() };
  const waUser = { host: "127.0.0.1", port: await freePort() };
  const edgeUdp = { host: EDGE_IP, port: await freePort(EDGE_IP) };
  const edgeTlsPort = await freePort(EDGE_IP);
  const edgeUserTlsPort = await freePort(EDGE_IP);
  const outsiderTlsPort = await freePort(OUTSIDER_IP);

  const ourSettings = {
    // With Meta's media side, our rtpengine logs its ICE checks: the tests read its role from them.
    rtpLogLevel: opts.metaMedia ? 7 : undefined,
    env: {
      WA_NUMBERS: `${BUSINESS}=sales,+15550002222=support`,
      WA_SIP_PASSWORDS: `${BUSINESS}=${BUSINESS_PASSWORD}`,
      WA_META_PREFIXES: `${EDGE_IP}/32`,
      WA_META_EDGE: `${EDGE_IP}:${edgeTlsPort}`,
      WA_AGENT_URI: `sip:${agent.host}:${agent.port}`,
      ...opts.env,
    },
    caFor: (ca: TestCa) => issueCert(ca, "us", ["sip.example.com", "127.0.0.1"]),
  };
  const us = await startRoutingUnderTest(t, { ...ourSettings, rtpPool: opts.rtpPool });
  const us2 = opts.secondNode ? await startRoutingUnderTest(t, { ...ourSettings, ca: us.ca }) : null;
  const edgeCert = issueCert(us.ca!, "edge", opts.edgeCertHosts ?? ["wa.meta.vc", EDGE_IP, OUTSIDER_IP]);
  let metaMedia: RtpengineProcess | null = null;
  if (opts.metaMedia) {
    const ports = await freePortRange(40, EDGE_IP);
    metaMedia = await startRtpengine({
      runDir: join(us.workDir, "meta-media"),
      interfaces: [EDGE_IP],
      ng: { host: "127.0.0.1", port: await freePort() },
      portMin: ports.min,
      portMax: ports.max,
      logLevel: 7,
    });
    const media = metaMedia;
    t.teardown(() => media.stop());
  }
  const edge = await startKamailio({
    runDir: join(us.workDir, "edge"),
    cfg: resolve(REPO_ROOT, "test/meta-edge/meta-edge.cfg"),
    probe: edgeUdp,
    env: {
      EDGE_IP,
      EDGE_UDP_PORT: String(edgeUdp.port),
      EDGE_TLS_PORT: String(edgeTlsPort),
      EDGE_USER_TLS_PORT: String(edgeUserTlsPort),
      OUTSIDER_IP,
      OUTSIDER_TLS_PORT: String(outsiderTlsPort),
      EDGE_TLS_SOCKET: `tls:${EDGE_IP}:${edgeTlsPort}`,
      OUTSIDER_TLS_SOCKET: `tls:${OUTSIDER_IP}:${outsiderTlsPort}`,
      EDGE_TLS_CERT: edgeCert.cert,
      EDGE_TLS_KEY: edgeCert.key,
      BUSINESS_URI: `sip:${us.tls.host}:${us.tls.port};transport=tls`,
      ...(us2 ? { BUSINESS_URI_2: `sip:${us2.tls.host}:${us2.tls.port};transport=tls` } : {}),
      WA_USER_URI: opts.waUserUri ?? `sip:${waUser.host}:${waUser.port}`,
      EDGE_DIGEST_ALGORITHM: opts.digestAlgorithm ?? "MD5",
      EDGE_DIGEST_DECOY: opts.digestDecoy ?? "none",
      EDGE_DIGEST_USER: BUSINESS.slice(1),
      EDGE_DIGEST_PASSWORD: opts.edgePassword ?? BUSINESS_PASSWORD,
      EDGE_BUSINESS_DOMAIN: "sip.example.com",
      EDGE_UAC_CREDENTIAL: `${BUSINESS.slice(1)}:sip.example.com:${opts.edgeAnswerPassword ?? BUSINESS_PASSWORD}`,
      ...(metaMedia ? { EDGE_RTPENGINE_SOCK: metaMedia.sock } : {}),
    },
  });
  t.teardown(() => edge.stop());
  return { us, us2, edge, edgeUdp, edgeUserTls: { host: EDGE_IP, port: edgeUserTlsPort }, agent, waUser, metaMedia };
}
