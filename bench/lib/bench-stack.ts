/**
 * The whole stack for benchmarks that play Meta's edge: stack/stack.ts's supervised daemons as
 * `npm start` runs them — rtpengine (userspace), Kamailio with kamailio/kamailio.cfg and a freshly
 * built routing bundle, and the media agent as its own process (`media-agent/src/main.ts`) — on
 * free loopback ports in a temp dir. Meta's edge is 127.0.0.2 (WA_META_PREFIXES); our certificate
 * comes from a throw-away CA, which is also WA_META_CA_LIST (a small list: Kamailio parses it in
 * every process at start).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildBundle, DEFAULT_ENTRY } from "../../build/bundle.js";
import { freePort, freePortRange } from "../../build/ports.js";
import { createTestCa, issueCert } from "../../build/test-ca.js";
import { supervisedStack, type Stack } from "../../stack/stack.js";
import { META_IP } from "../native/stand.js";
import { siteKamailioEnv } from "../../test/support/supervised-site.js";

export interface BenchStack {
  stack: Stack;
  /** Our public TLS listener, where Meta's edge sends its calls. */
  tls: { host: string; port: number };
  agentApi: { host: string; port: number };
  /** rtpengine's ng control port (build/rtpengine-ng.ts: which calls it still holds). */
  ng: { host: string; port: number };
  /** AGENT_TRACE_DIR: the agent's per-call turn traces. */
  traceDir: string;
  /** Stops the daemons and removes the temp dir (kept with WA_KEEP_TEST_DIRS=1). */
  stop(): Promise<void>;
}

export async function startBenchStack(opts: {
  /** WA_* on top of the stack's own (e.g. WA_NUMBERS). */
  kamailioEnv?: Record<string, string>;
  /**
   * AGENT_* on top of the stack's own (e.g. AGENT_VOICE_PROFILES). A promise is awaited once the
   * bundle and certificates are made, so the caller can prepare the agent's files meanwhile.
   */
  agentEnv?: Record<string, string> | Promise<Record<string, string>>;
  /** Concurrent calls the rtpengine and agent port ranges must hold. */
  calls?: number;
}): Promise<BenchStack> {
  const dir = mkdtempSync(join(tmpdir(), "bench-stack-"));
  const remove = () => {
    if (!process.env.WA_KEEP_TEST_DIRS) rmSync(dir, { recursive: true, force: true });
  };
  try {
    const { outFile } = await buildBundle(DEFAULT_ENTRY, join(dir, "routing.js"));
    const ca = createTestCa(dir);
    const ours = issueCert(ca, "us", ["sip.example.com", "127.0.0.1"]);
    const tls = { host: "127.0.0.1", port: await freePort() };
    const internal = { host: "127.0.0.1", port: await freePort() };
    const ng = { host: "127.0.0.1", port: await freePort() };
    const agentApi = { host: "127.0.0.1", port: await freePort() };
    const agentSip = await freePort();
    const calls = opts.calls ?? 10;
    const rtp = await freePortRange(Math.max(100, calls * 8));
    const agentRtp = await freePortRange(Math.max(40, calls * 4));
    const traceDir = join(dir, "traces");
    const agentEnv = await opts.agentEnv;
    const stack = supervisedStack({
      runDir: join(dir, "run"),
      kamailioEnv: {
        ...siteKamailioEnv({ tls, internal, cert: ours, bundle: outFile, apiPort: await freePort(), ng, metaPrefix: META_IP, metaCaList: ca.cert, agentSip }),
        ...opts.kamailioEnv,
      },
      rtpengine: { interfaces: ["127.0.0.1"], ng, portMin: rtp.min, portMax: rtp.max, logLevel: 4 },
      agentEnv: {
        AGENT_SIP: `127.0.0.1:${agentSip}`,
        AGENT_KAMAILIO: `${internal.host}:${internal.port}`,
        AGENT_RTP_PORTS: `${agentRtp.min}-${agentRtp.max}`,
        AGENT_API: `${agentApi.host}:${agentApi.port}`,
        AGENT_RECORD_DIR: join(dir, "recordings"),
        AGENT_TRACE_DIR: traceDir,
        AGENT_LOG_LEVEL: "warn",
        ...agentEnv,
      },
      supervisor: { log: (line) => console.error(`stack: ${line}`) },
    });
    await stack.supervisor.start();
    return {
      stack,
      tls,
      agentApi,
      ng,
      traceDir,
      stop: async () => {
        await stack.supervisor.stop();
        remove();
      },
    };
  } catch (err) {
    remove();
    throw err;
  }
}
