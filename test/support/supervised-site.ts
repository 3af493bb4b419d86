/**
 * The supervised stack as `npm start` runs it (stack/stack.ts: Kamailio, rtpengine and the media
 * agent as their own processes, echo profile) on free ports in a temp dir, with the Meta stand-in
 * edge in front. Stopped at the test's end.
 */
import { join } from "node:path";
import { buildBundle, DEFAULT_ENTRY } from "../../build/bundle.js";
import { freePort, freePortRange } from "../../build/ports.js";
import type { Teardown } from "../../build/teardown.js";
import { ensureSelfSignedCert } from "../../build/tls-cert.js";
import { supervisedStack } from "../../stack/stack.js";
import { startStandInEdge } from "../../stack/stand-in-edge.js";
import { BUSINESS } from "./wa-interconnect.js";

/** The WA_* settings of a Kamailio site on loopback, as `npm start` would pass them. */
export function siteKamailioEnv(p: {
  tls: { host: string; port: number };
  internal: { host: string; port: number };
  cert: { cert: string; key: string };
  bundle: string;
  apiPort: number;
  ng: { host: string; port: number };
  metaPrefix: string;
  metaCaList: string;
  agentSip: number;
}): Record<string, string> {
  return {
    WA_PUBLIC_IP: p.tls.host,
    WA_TLS_PORT: String(p.tls.port),
    WA_INTERNAL_IP: p.internal.host,
    WA_INTERNAL_PORT: String(p.internal.port),
    WA_DOMAIN: "sip.example.com",
    WA_TLS_CERT: p.cert.cert,
    WA_TLS_KEY: p.cert.key,
    WA_BUNDLE: p.bundle,
    WA_CHILDREN: "2",
    WA_API_PORT: String(p.apiPort),
    WA_RTPENGINE_SOCK: `udp:${p.ng.host}:${p.ng.port}`,
    WA_META_PREFIXES: `${p.metaPrefix}/32`,
    // A small CA list: Kamailio parses it once per process at start, and the system bundle takes
    // ~4 s to load into 13 processes on a 2-core box.
    WA_META_CA_LIST: p.metaCaList,
    WA_AGENT_URI: `sip:127.0.0.1:${p.agentSip}`,
  };
}

export async function startSupervisedSite(t: Teardown, dir: string, log: (line: string) => void) {
  const { outFile } = await buildBundle(DEFAULT_ENTRY, join(dir, "routing.js"));
  const cert = ensureSelfSignedCert(dir, "tls", ["sip.example.com", "127.0.0.1"]);
  const internal = { host: "127.0.0.1", port: await freePort() };
  const tls = { host: "127.0.0.1", port: await freePort() };
  const apiPort = await freePort();
  const ng = { host: "127.0.0.1", port: await freePort() };
  const rtpengineMetrics = `127.0.0.1:${await freePort()}`;
  const agentApi = { host: "127.0.0.1", port: await freePort() };
  const agentSip = await freePort();
  const rtp = await freePortRange(100);
  const agentRtp = await freePortRange(40);

  const edge = await startStandInEdge({ dir: join(dir, "edge"), ourTls: tls, waUserUri: `sip:127.0.0.1:${await freePort()}`, business: BUSINESS });
  t.teardown(() => edge.edge.stop());
  const stack = supervisedStack({
    runDir: join(dir, "run"),
    kamailioEnv: {
      ...siteKamailioEnv({ tls, internal, cert, bundle: outFile, apiPort, ng, metaPrefix: edge.udp.host, metaCaList: edge.ca.cert, agentSip }),
      WA_NUMBERS: `${BUSINESS}=default`,
    },
    rtpengine: { interfaces: ["127.0.0.1"], ng, portMin: rtp.min, portMax: rtp.max, metrics: rtpengineMetrics },
    agentEnv: {
      AGENT_SIP: `127.0.0.1:${agentSip}`,
      AGENT_KAMAILIO: `${internal.host}:${internal.port}`,
      AGENT_RTP_PORTS: `${agentRtp.min}-${agentRtp.max}`,
      AGENT_API: `${agentApi.host}:${agentApi.port}`,
      AGENT_PROFILES: "default=echo",
      AGENT_RECORD_DIR: join(dir, "recordings"),
      AGENT_TRACE_DIR: join(dir, "traces"),
    },
    supervisor: { log },
  });
  t.teardown(() => stack.supervisor.stop());
  await stack.supervisor.start();
  return { stack, edge, internal, ng, apiPort, agentUrl: `http://${agentApi.host}:${agentApi.port}`, rtpengineMetricsUrl: `http://${rtpengineMetrics}/metrics` };
}
