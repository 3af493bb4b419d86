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
      WA_PUBLIC_IP: tls.host,
      WA_TLS_PORT: String(tls.port),
      WA_INTERNAL_IP: internal.host,
      WA_INTERNAL_PORT: String(internal.port),
      WA_DOMAIN: "sip.example.com",
      WA_TLS_CERT: cert.cert,
      WA_TLS_KEY: cert.key,
      WA_BUNDLE: outFile,
      WA_CHILDREN: "2",
      WA_API_PORT: String(apiPort),
      WA_RTPENGINE_SOCK: `udp:${ng.host}:${ng.port}`,
      WA_NUMBERS: `${BUSINESS}=default`,
      WA_META_PREFIXES: `${edge.udp.host}/32`,
      WA_AGENT_URI: `sip:127.0.0.1:${agentSip}`,
      // A small CA list, as the interconnect tests use: Kamailio parses it once per process at
      // start, and the system bundle takes ~4 s to load into 13 processes on a 2-core box.
      WA_META_CA_LIST: edge.ca.cert,
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
