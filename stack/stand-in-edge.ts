/**
 * A stand-in for Meta's SIP edge: the test peer (test/meta-edge/meta-edge.cfg, a native Kamailio
 * on 127.0.0.2, clearly not Meta) with a certificate from a throw-away CA, for the demo call and
 * the supervisor test. A WhatsApp user reaches it over UDP (SIPp) or TLS (baresip); it sends the
 * call on to our TLS listener with Meta's headers.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "../build/bundle.js";
import { startKamailio, type KamailioProcess } from "../build/kamailio.js";
import { freePort } from "../build/ports.js";
import { createTestCa, issueCert, type TestCa } from "../build/test-ca.js";

export const STAND_IN_EDGE_IP = "127.0.0.2";

export interface StandInEdge {
  edge: KamailioProcess;
  ca: TestCa;
  /** Where a WhatsApp user on UDP (SIPp) sends its calls. */
  udp: { host: string; port: number };
  /** Where a WhatsApp user on TLS (baresip) sends its calls. */
  userTls: { host: string; port: number };
}

export async function startStandInEdge(p: {
  dir: string;
  /** Our public TLS listener. */
  ourTls: { host: string; port: number };
  /** Where the edge sends business-initiated calls (the WhatsApp user's UAS). */
  waUserUri: string;
  business: string;
}): Promise<StandInEdge> {
  const ip = STAND_IN_EDGE_IP;
  mkdirSync(p.dir, { recursive: true });
  const ca = createTestCa(p.dir);
  const edgeCert = issueCert(ca, "stand-in-edge", ["wa.meta.vc", ip]);
  const udp = await freePort(ip);
  const tls = await freePort(ip);
  const userTls = await freePort(ip);
  const edge = await startKamailio({
    runDir: join(p.dir, "edge"),
    cfg: join(REPO_ROOT, "test/meta-edge/meta-edge.cfg"),
    probe: { host: ip, port: udp },
    env: {
      EDGE_IP: ip,
      EDGE_UDP_PORT: String(udp),
      EDGE_TLS_PORT: String(tls),
      EDGE_USER_TLS_PORT: String(userTls),
      OUTSIDER_IP: ip,
      OUTSIDER_TLS_PORT: String(await freePort(ip)),
      EDGE_TLS_SOCKET: `tls:${ip}:${tls}`,
      OUTSIDER_TLS_SOCKET: `tls:${ip}:${tls}`,
      EDGE_TLS_CERT: edgeCert.cert,
      EDGE_TLS_KEY: edgeCert.key,
      BUSINESS_URI: `sip:${p.ourTls.host}:${p.ourTls.port};transport=tls`,
      WA_USER_URI: p.waUserUri,
      EDGE_DIGEST_ALGORITHM: "MD5",
      EDGE_DIGEST_USER: p.business.slice(1),
      EDGE_DIGEST_PASSWORD: "demo",
      EDGE_BUSINESS_DOMAIN: "sip.example.com",
      EDGE_UAC_CREDENTIAL: `${p.business.slice(1)}:sip.example.com:demo`,
    },
  });
  return { edge, ca, udp: { host: ip, port: udp }, userTls: { host: ip, port: userTls } };
}
