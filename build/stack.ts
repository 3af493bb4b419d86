/**
 * `npm start`: builds the routing bundle and runs the stack in the foreground: rtpengine
 * (userspace), Kamailio with the bundle, and the media agent.
 *
 *   npm start                          demo: the stack plus one demo call from baresip through a
 *                                      stand-in Meta edge, talking to the voice agent (demo
 *                                      engine stand-ins unless AGENT_VOICE_PROFILES is set)
 *   npm start -- --config site.env     a site: settings from an env file (the environment
 *                                      wins), no demo call unless --demo
 *   npm start -- --once                stop after start-up (and the demo call): a smoke run
 *
 * Without WA_TLS_CERT/WA_TLS_KEY a self-signed certificate for WA_DOMAIN is made under
 * .run/ — fine for trying it out, never for Meta (Meta checks the certificate).
 */
import { writeFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { parseArgs } from "node:util";
import { pino } from "pino";
import { MediaAgent } from "../media-agent/src/agent.js";
import { startApi } from "../media-agent/src/api/http.js";
import { parseAgentConfig } from "../media-agent/src/config.js";
import { loadVoiceProfiles } from "../media-agent/src/pipeline/voice-profiles.js";
import { DEMO_BUSINESS, DEMO_CALLER_LINES, DEMO_EDGE_IP, demoCallerTrack, runDemoCall, type DemoResult } from "./demo-call.js";
import { DEMO_PROFILE, DEMO_VOICE, startDemoEngines } from "./demo-engines.js";
import { bestCorrelation } from "../media-agent/src/audio/compare.js";
import { EspeakTts } from "../media-agent/src/pipeline/tts.js";
import { wav16k } from "./speech.js";
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
  const cleanups: Array<() => unknown> = [];
  const demoSetup = demo ? await prepareDemo(runRoot, loadSiteConfig(siteFile, process.env).agent, cleanups) : null;
  const cfg = loadSiteConfig(siteFile, { ...demoSetup?.defaults, ...process.env });
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
    for (const fn of cleanups.reverse()) await fn();
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
      `  media agent sip:${agent.sipAddress.host}:${agent.sipAddress.port}  codecs ${agentSettings.config.AGENT_CODECS.join(",")}  profiles ${agent.profileNames.join(",")}  log ${relative(process.cwd(), join(runRoot, "media-agent.log"))}`,
      `  call API http://${agentSettings.config.AGENT_API.host}:${agentSettings.config.AGENT_API.port}/calls`,
      `  permission API http://127.0.0.1:${cfg.WA_API_PORT}/permissions`,
      `  control  kamcmd -s ${kamailio.ctlSocket} app_jsdt.reload`,
      `  log      ${relative(process.cwd(), kamailio.logFile)}`,
      `OPTIONS to udp:${cfg.WA_INTERNAL_IP}:${cfg.WA_INTERNAL_PORT} answered: ${probe.status} ${probe.reason}`,
    ].join("\n"),
  );
  if (demoSetup) {
    const result = await runDemoCall({
      runDir: runRoot,
      agent,
      ourTls: { host: cfg.WA_PUBLIC_IP, port: cfg.WA_TLS_PORT },
      callerWav: demoSetup.callerWav,
      traceDir: agentSettings.config.AGENT_TRACE_DIR,
      log: (l) => console.log(l),
    });
    const problem = await demoSetup.check(result);
    if (problem) {
      console.error(`demo: ${problem}`);
      return stop(1);
    }
  }
  if (values.once) return stop();
  console.log("Ctrl-C stops it.");
  const code = await kamailio.whenExited();
  console.error(`Kamailio exited (${code}); log tail:\n${kamailio.logText().slice(-2000)}`);
  process.exit(1);
}

/**
 * The demo's settings: its business number routed to a voice profile, the caller's track, and —
 * when no AGENT_VOICE_PROFILES is configured — the demo engine stand-ins with a profile for them.
 * check() says what went wrong after the call, or null.
 */
async function prepareDemo(
  runRoot: string,
  agentSettings: Record<string, string>,
  cleanups: Array<() => unknown>,
): Promise<{ defaults: Record<string, string>; callerWav: string; check(result: DemoResult): Promise<string | null> }> {
  const track = demoCallerTrack(join(runRoot, "demo-audio"));
  const traceDir = join(runRoot, "traces");
  const common = { WA_META_PREFIXES: `${DEMO_EDGE_IP}/32`, AGENT_RECORD_DIR: join(runRoot, "recordings"), AGENT_TRACE_DIR: traceDir };
  const configured = agentSettings.AGENT_VOICE_PROFILES;
  if (configured) {
    const names = Object.keys(loadVoiceProfiles(configured));
    const profile = agentSettings.AGENT_DEFAULT_PROFILE && names.includes(agentSettings.AGENT_DEFAULT_PROFILE) ? agentSettings.AGENT_DEFAULT_PROFILE : names[0];
    console.log(`demo: the caller talks to voice profile '${profile}' of ${configured} (your engines)`);
    return {
      defaults: { ...common, WA_NUMBERS: `${DEMO_BUSINESS}=${profile}`, AGENT_DEFAULT_PROFILE: profile },
      callerWav: track.wav,
      check: async (result) => (result.trace.some((r) => r.stt?.text.trim()) ? null : "no caller turn was transcribed: look at the STT engine and the turn trace"),
    };
  }
  const engines = await startDemoEngines({ teardown: (fn) => void cleanups.push(fn) }, track.lines);
  const profiles = join(runRoot, "demo-voice-profiles.json");
  writeFileSync(profiles, engines.profilesJson);
  console.log(`demo: no AGENT_VOICE_PROFILES configured: DEMO stand-ins for speech-to-text and the LLM (not real engines), espeak-ng speaking; profile ${relative(process.cwd(), profiles)}`);
  return {
    defaults: { ...common, WA_NUMBERS: `${DEMO_BUSINESS}=${DEMO_PROFILE}`, AGENT_VOICE_PROFILES: profiles, AGENT_DEFAULT_PROFILE: DEMO_PROFILE },
    callerWav: track.wav,
    check: async (result) => {
      // The demo STT recognises the caller's lines only if their audio arrived intact, and the
      // caller must have heard the weather answer: both media directions are proven.
      const recognised = engines.recognisedLines();
      if (recognised < DEMO_CALLER_LINES.length) return `the demo STT recognised ${recognised} of ${DEMO_CALLER_LINES.length} caller lines: the media path toward the agent is broken`;
      const weather = result.trace.find((r) => r.toolResults.some((x) => x.name === "get_weather" && x.ok));
      if (!weather?.spoken) return "get_weather was not called or its answer not spoken: see the turn trace";
      const reference = await new EspeakTts(DEMO_VOICE).synthesize(weather.spoken, new AbortController().signal);
      const heard = bestCorrelation(reference.samples, wav16k(result.baresipRecording), 16000, { maxLagMs: 60_000 });
      console.log(`demo: the caller heard the weather answer (match ${heard.score.toFixed(2)} at ${(heard.lagMs / 1000).toFixed(1)} s)`);
      return heard.score < 0.5 ? "the caller did not hear the agent's answer: the media path toward the caller is broken" : null;
    },
  };
}

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
