/**
 * A real Kamailio running kamailio/kamailio.cfg with a freshly built routing bundle, on free
 * loopback ports in a temp dir; stopped and removed when the test ends.
 */
import { join } from "node:path";
import { buildBundle, DEFAULT_ENTRY } from "../../build/bundle.js";
import { startKamailio, type KamailioProcess } from "../../build/kamailio.js";
import { freePort, freePortRange } from "../../build/ports.js";
import { startRtpengine, type RtpengineProcess } from "../../build/rtpengine.js";
import { ensureSelfSignedCert } from "../../build/tls-cert.js";
import { createTestCa, type TestCa } from "../../build/test-ca.js";
import type { Teardown } from "../../build/teardown.js";
import { tempDir } from "./temp-dir.js";


export interface RoutingUnderTest {
  kamailio: KamailioProcess;
  workDir: string;
  /** The bundle file Kamailio loaded (WA_BUNDLE). */
  bundle: string;
  internal: { host: string; port: number };
  tls: { host: string; port: number };
  /** The test CA, when the certificate came from one (caFor). */
  ca?: TestCa;
  /** Base URL of the permission API. */
  api: string;
  /** The callback-state SQLite file (WA_STATE_DB_URL), for reading what Kamailio stored. */
  stateDb: string;
  /** rtpengine (userspace) that the routing drives; interfaces "external" and "internal". */
  rtpengine: RtpengineProcess;
  /** rtpengine's Prometheus text (its HTTP listener, as `npm start` runs it). */
  rtpengineMetrics: string;
  /** Kills Kamailio like a crash (SIGKILL) and starts it again with the same settings and state. */
  crashAndRestart(): Promise<void>;
}

export async function startRoutingUnderTest(
  t: Teardown,
  opts: {
    entry?: string;
    env?: Record<string, string>;
    /** Make a test CA and take our certificate from it (else a self-signed one). */
    caFor?: (ca: TestCa) => { cert: string; key: string };
    /** Use this test CA (another node's) instead of making one; with caFor. */
    ca?: TestCa;
    /** More rtpengines that, with this node's own, make its rtpengine set (WA_RTPENGINE_SOCK). */
    rtpPool?: RtpengineProcess[];
    /** rtpengine's interfaces (default: one, on 127.0.0.1). */
    rtpInterfaces?: string[];
    /** rtpengine's log level (default 6; 7 logs the ICE checks and nominations). */
    rtpLogLevel?: number;
  } = {},
): Promise<RoutingUnderTest> {
  const workDir = tempDir(t, "wa-kamailio-");
  const { outFile } = await buildBundle(opts.entry ?? DEFAULT_ENTRY, join(workDir, "routing.js"));
  const ca = opts.caFor ? (opts.ca ?? createTestCa(workDir)) : undefined;
  const { cert, key } = ca ? opts.caFor!(ca) : ensureSelfSignedCert(workDir, "tls", ["localhost", "127.0.0.1"]);
  const internal = { host: "127.0.0.1", port: await freePort() };
  const tls = { host: "127.0.0.1", port: await freePort() };
  const apiPort = await freePort();
  const ports = await freePortRange(200);
  const rtpengineMetrics = `127.0.0.1:${await freePort()}`;
  const rtpengine = await startRtpengine({
    metrics: rtpengineMetrics,
    runDir: join(workDir, "rtpengine"),
    interfaces: opts.rtpInterfaces ?? ["127.0.0.1"],
    ng: { host: "127.0.0.1", port: await freePort() },
    portMin: ports.min,
    portMax: ports.max,
    logLevel: opts.rtpLogLevel,
  });
  t.teardown(() => rtpengine.stop());
  const stateDb = join(workDir, "callback.sqlite");
  const options = {
    runDir: join(workDir, "run"),
    env: {
      WA_PUBLIC_IP: tls.host,
      WA_TLS_PORT: String(tls.port),
      WA_INTERNAL_IP: internal.host,
      WA_INTERNAL_PORT: String(internal.port),
      WA_DOMAIN: "sip.example.com",
      WA_TLS_CERT: cert,
      WA_TLS_KEY: key,
      WA_BUNDLE: outFile,
      WA_CHILDREN: "2",
      WA_API_PORT: String(apiPort),
      WA_RTPENGINE_SOCK: [rtpengine, ...(opts.rtpPool ?? [])].map((r) => r.sock).join(" "),
      WA_STATE_DB_URL: `sqlite://${stateDb}`,
      // SIPp stands in for the agent in most tests and starts after Kamailio, per call: no
      // probes (they would take it out before it starts). The scale-out test probes real agents.
      WA_AGENT_PROBE_INTERVAL: "0",
      // Meta's edge in the tests presents a certificate from the same test CA.
      ...(ca ? { WA_META_CA_LIST: ca.cert } : {}),
      ...opts.env,
    },
  };
  const under: RoutingUnderTest = {
    kamailio: await startKamailio(options),
    workDir,
    bundle: outFile,
    internal,
    tls,
    ca,
    api: `http://127.0.0.1:${apiPort}`,
    stateDb,
    rtpengine,
    rtpengineMetrics: `http://${rtpengineMetrics}/metrics`,
    async crashAndRestart() {
      await under.kamailio.crash();
      under.kamailio = await startKamailio(options);
    },
  };
  t.teardown(() => under.kamailio.stop());
  return under;
}
