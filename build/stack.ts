/**
 * `npm start`: builds the routing bundle and runs the stack in the foreground: rtpengine
 * (userspace), Kamailio with the bundle, and the media agent.
 *
 *   npm start                          demo: the stack plus one demo call from baresip through a
 *                                      stand-in Meta edge (recordings left in .run/recordings)
 *   npm start -- --config site.env     a site: settings from an env file (the environment
 *                                      wins), no demo call unless --demo
 *   npm start -- --once                stop after start-up (and the demo call): a smoke run
 *
 * Without WA_TLS_CERT/WA_TLS_KEY a self-signed certificate for WA_DOMAIN is made under
 * .run/ — fine for trying it out, never for Meta (Meta checks the certificate).
 */
import { join, relative, resolve } from "node:path";
import { parseArgs } from "node:util";
import { pino } from "pino";
import { MediaAgent } from "../media-agent/src/agent.js";
import { startApi } from "../media-agent/src/api/http.js";
import { parseAgentConfig } from "../media-agent/src/config.js";
import { speak } from "./speech.js";
import { DEMO_BUSINESS, DEMO_EDGE_IP, runDemoCall } from "./demo-call.js";
import { startRtpengine } from "./rtpengine.js";
import { buildBundle, describeSize, REPO_ROOT } from "./bundle.js";
import { startKamailio } from "./kamailio.js";
import { ConfigError, loadSiteConfig } from "./site-config.js";
import { sipPing } from "./sip-ping.js";
import { ensureSelfSignedCert } from "./tls-cert.js";

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { config: { type: "string" }, once: { type: "boolean", default: false }, demo: { type: "boolean" } },
  });
  const siteFile = values.config ?? process.env.WA_CONFIG;
  const demo = values.demo ?? !siteFile;
  const runRoot = resolve(REPO_ROOT, ".run");
  const demoPrompt = join(runRoot, "demo-prompt.wav");
  // The demo's own number, edge address and agent profile; anything set in the environment wins.
  const demoDefaults: Record<string, string> = demo
    ? {
        WA_NUMBERS: `${DEMO_BUSINESS}=demo`,
        WA_META_PREFIXES: `${DEMO_EDGE_IP}/32`,
        AGENT_PROFILES: `demo=play-record:${speak(DEMO_PROMPT, demoPrompt, 16000, 0)}`,
        AGENT_DEFAULT_PROFILE: "demo",
        AGENT_RECORD_DIR: join(runRoot, "recordings"),
      }
    : {};
  const cfg = loadSiteConfig(siteFile, { ...demoDefaults, ...process.env });
  const agentSettings = parseAgentConfig({
    AGENT_SIP: agentSipAddress(cfg.routing.WA_AGENT_URI ?? "sip:127.0.0.1:5080"),
    AGENT_KAMAILIO: `${cfg.WA_INTERNAL_IP}:${cfg.WA_INTERNAL_PORT}`,
    AGENT_RECORD_DIR: join(runRoot, "recordings"),
    ...cfg.agent,
  });
  if (!agentSettings.ok) throw new ConfigError(`invalid media agent settings:\n  ${agentSettings.errors.join("\n  ")}`);

  const bundle = await buildBundle();
  console.log(`routing bundle: ${relative(process.cwd(), bundle.outFile)} ${describeSize(bundle.bytes)}`);

  const tls =
    cfg.WA_TLS_CERT && cfg.WA_TLS_KEY
      ? { cert: cfg.WA_TLS_CERT, key: cfg.WA_TLS_KEY }
      : ensureSelfSignedCert(join(runRoot, "tls"), "self-signed", [cfg.WA_DOMAIN, cfg.WA_PUBLIC_IP]);
  if (!cfg.WA_TLS_CERT) console.log(`TLS: self-signed certificate ${relative(process.cwd(), tls.cert)} (set WA_TLS_CERT/WA_TLS_KEY for Meta)`);

  const env: Record<string, string> = {};
  const { routing, ...kamailioSettings } = cfg;
  for (const [k, v] of Object.entries({ ...kamailioSettings, ...routing })) if (v !== undefined) env[k] = String(v);
  Object.assign(env, { WA_TLS_CERT: tls.cert, WA_TLS_KEY: tls.key, WA_BUNDLE: bundle.outFile });

  // rtpengine: one interface when Meta and the agent share an address (a test box), else
  // "external" (public, advertised behind NAT) and "internal" (loopback, the agent's side).
  const [ngHost, ngPort] = cfg.WA_RTPENGINE_SOCK.replace(/^udp6?:/, "").split(/:(?=\d+$)/);
  const split = cfg.WA_PUBLIC_IP !== agentSettings.config.AGENT_RTP_HOST;
  const interfaces = split
    ? [`external/${cfg.WA_PUBLIC_IP}${cfg.WA_ADVERTISE_IP ? `!${cfg.WA_ADVERTISE_IP}` : ""}`, `internal/${agentSettings.config.AGENT_RTP_HOST}`]
    : [cfg.WA_PUBLIC_IP];
  if (split && !env.WA_RTPENGINE_DIRECTIONS) env.WA_RTPENGINE_DIRECTIONS = "external,internal";
  const [portMin, portMax] = cfg.WA_RTP_PORTS.split("-").map(Number);
  const rtpengine = await startRtpengine({ runDir: join(runRoot, "rtpengine"), interfaces, ng: { host: ngHost, port: Number(ngPort) }, portMin, portMax });

  const kamailio = await startKamailio({ runDir: join(runRoot, "kamailio"), env });
  const log = pino({ level: agentSettings.config.AGENT_LOG_LEVEL, base: { service: "media-agent" } }, pino.destination(join(runRoot, "media-agent.log")));
  const agent = await MediaAgent.start(agentSettings.config, log);
  const api = await startApi(agent, agentSettings.config.AGENT_API);
  const stop = async (code = 0) => {
    api.close();
    await agent.stop();
    await kamailio.stop();
    await rtpengine.stop();
    process.exit(code);
  };
  process.on("SIGINT", () => void stop());
  process.on("SIGTERM", () => void stop());

  const probe = await sipPing(cfg.WA_INTERNAL_IP, cfg.WA_INTERNAL_PORT);
  console.log(
    [
      `Kamailio ${(await kamailio.rpc("core.version")).trim()} is running (pid ${kamailio.pid}) with the routing bundle`,
      `  public  tls:${cfg.WA_PUBLIC_IP}:${cfg.WA_TLS_PORT}${cfg.WA_ADVERTISE_IP ? ` (advertised as ${cfg.WA_ADVERTISE_IP})` : ""}  domain ${cfg.WA_DOMAIN}  <- Meta's SIP edge`,
      `  internal udp:${cfg.WA_INTERNAL_IP}:${cfg.WA_INTERNAL_PORT}  <- media agent and internal UAs`,
      `  rtpengine ${cfg.WA_RTPENGINE_SOCK}  interfaces ${interfaces.join(" ")}  ports ${cfg.WA_RTP_PORTS}  log ${relative(process.cwd(), rtpengine.logFile)}`,
      `  media agent sip:${agent.sipAddress.host}:${agent.sipAddress.port}  codecs ${agentSettings.config.AGENT_CODECS.join(",")}  profiles ${Object.keys(agentSettings.config.AGENT_PROFILES).join(",")}  log ${relative(process.cwd(), join(runRoot, "media-agent.log"))}`,
      `  call API http://${agentSettings.config.AGENT_API.host}:${agentSettings.config.AGENT_API.port}/calls`,
      `  permission API http://127.0.0.1:${cfg.WA_API_PORT}/permissions`,
      `  control  kamcmd -s ${kamailio.ctlSocket} app_jsdt.reload`,
      `  log      ${relative(process.cwd(), kamailio.logFile)}`,
      `OPTIONS to udp:${cfg.WA_INTERNAL_IP}:${cfg.WA_INTERNAL_PORT} answered: ${probe.status} ${probe.reason}`,
    ].join("\n"),
  );
  if (demo) {
    const result = await runDemoCall({ runDir: runRoot, agent, ourTls: { host: cfg.WA_PUBLIC_IP, port: cfg.WA_TLS_PORT }, agentPrompt: demoPrompt, log: (l) => console.log(l) });
    if (result.callerScore < 0.5 || result.agentScore < 0.5) {
      console.error("demo: the recordings do not match what was sent: the media path is broken");
      return stop(1);
    }
  }
  if (values.once) return stop();
  console.log("Ctrl-C stops it.");
  const code = await kamailio.whenExited();
  console.error(`Kamailio exited (${code}); log tail:\n${kamailio.logText().slice(-2000)}`);
  process.exit(1);
}

const DEMO_PROMPT = "Hello, this is the demo media agent on Kamailio. Your call came in over TLS and SRTP. Goodbye for now.";

/** WA_AGENT_URI (sip:host:port) as the agent's host:port. */
function agentSipAddress(uri: string): string {
  const m = /^sip:([0-9.]+):(\d+)/.exec(uri);
  if (!m) throw new ConfigError(`WA_AGENT_URI: '${uri}' must be sip:IPv4:port for the built-in media agent`);
  return `${m[1]}:${m[2]}`;
}

main().catch((err) => {
  console.error(err instanceof ConfigError ? `configuration error: ${err.message}` : (err as Error).stack);
  process.exit(1);
});
