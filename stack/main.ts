/**
 * `npm start`: builds the routing bundle and runs the stack in the foreground under a supervisor
 * (stack/supervisor.ts): rtpengine (userspace), Kamailio with the bundle, and the media agent
 * (`media-agent/src/main.ts`), each its own process; one that dies is logged and restarted
 * while the others keep running (in production systemd does this: deploy/systemd/).
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
import { appendFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { parseArgs } from "node:util";
import { parseAgentConfig } from "../media-agent/src/config.js";
import { loadVoiceProfiles } from "../media-agent/src/pipeline/voice-profiles.js";
import { DEMO_BUSINESS, DEMO_CALLER_LINES, DEMO_EDGE_IP, demoCallerTrack, runDemoCall, type DemoResult } from "./demo-call.js";
import { DEMO_PROFILE, DEMO_VOICE, startDemoEngines } from "./demo-engines.js";
import { bestCorrelation } from "../media-agent/src/audio/compare.js";
import { EspeakTts } from "../media-agent/src/pipeline/tts.js";
import { wav16k } from "../build/speech.js";
import { buildBundle, describeSize, REPO_ROOT } from "../build/bundle.js";
import { ConfigError, loadSiteConfig } from "../build/site-config.js";
import { sipPing } from "../build/sip-ping.js";
import { ensureSelfSignedCert } from "../build/tls-cert.js";
import { rtpengineSetup } from "./site.js";
import { supervisedStack } from "./stack.js";

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
  const agentEnv: Record<string, string> = {
    AGENT_SIP: agentSipAddress(cfg.routing.WA_AGENT_URI ?? "sip:127.0.0.1:5080"),
    AGENT_KAMAILIO: `${cfg.WA_INTERNAL_IP}:${cfg.WA_INTERNAL_PORT}`,
    AGENT_RECORD_DIR: join(runRoot, "recordings"),
    ...cfg.agent,
  };
  const agentSettings = parseAgentConfig(agentEnv);
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

  const rtp = rtpengineSetup(cfg, agentSettings.config.AGENT_RTP_HOST);
  const interfaces = rtp.interfaces;
  if (rtp.directions && !env.WA_RTPENGINE_DIRECTIONS) env.WA_RTPENGINE_DIRECTIONS = rtp.directions;
  mkdirSync(runRoot, { recursive: true });
  const supervisorLog = join(runRoot, "supervisor.log");
  const stack = supervisedStack({
    runDir: runRoot,
    kamailioEnv: env,
    rtpengine: { interfaces, ng: rtp.ng, portMin: rtp.portMin, portMax: rtp.portMax, metrics: rtp.metrics },
    agentEnv,
    supervisor: {
      log: (line) => {
        console.error(line);
        appendFileSync(supervisorLog, `${new Date().toISOString()} ${line}\n`);
      },
    },
  });
  let stopping = false;
  const stop = async (code = 0) => {
    if (stopping) process.exit(code || 130); // a second Ctrl-C: the exit hook kills the groups
    stopping = true;
    await stack.supervisor.stop();
    for (const fn of cleanups.reverse()) await fn();
    process.exit(code);
  };
  process.on("SIGINT", () => void stop());
  process.on("SIGTERM", () => void stop());
  await stack.supervisor.start();
  const kamailio = stack.kamailio()!.kamailio;
  const agent = agentSettings.config;
  const profileNames = [...Object.keys(agent.AGENT_PROFILES), ...(agent.AGENT_VOICE_PROFILES ? Object.keys(loadVoiceProfiles(agent.AGENT_VOICE_PROFILES)) : [])];

  const probe = await sipPing(cfg.WA_INTERNAL_IP, cfg.WA_INTERNAL_PORT);
  console.log(
    [
      `Kamailio ${(await kamailio.rpc("core.version")).trim()} is running (pid ${kamailio.pid}) with the routing bundle`,
      `  public  tls:${cfg.WA_PUBLIC_IP}:${cfg.WA_TLS_PORT}${cfg.WA_ADVERTISE_IP ? ` (advertised as ${cfg.WA_ADVERTISE_IP})` : ""}  domain ${cfg.WA_DOMAIN}  <- Meta's SIP edge`,
      `  internal udp:${cfg.WA_INTERNAL_IP}:${cfg.WA_INTERNAL_PORT}  <- media agent and internal UAs`,
      `  rtpengine ${cfg.WA_RTPENGINE_SOCK}  interfaces ${interfaces.join(" ")}  ports ${cfg.WA_RTP_PORTS}  (pid ${stack.supervisor.pid("rtpengine")})  log ${relative(process.cwd(), stack.rtpengineLog)}`,
      `  media agent sip:${agent.AGENT_SIP.host}:${agent.AGENT_SIP.port}  codecs ${agent.AGENT_CODECS.join(",")}  profiles ${profileNames.join(",")}  (pid ${stack.supervisor.pid("media-agent")})  log ${relative(process.cwd(), stack.agentLog)}`,
      `  call API http://${agent.AGENT_API.host}:${agent.AGENT_API.port}/calls`,
      `  permission API http://127.0.0.1:${cfg.WA_API_PORT}/permissions`,
      `  control  kamcmd -s ${kamailio.ctlSocket} app_jsdt.reload`,
      `  log      ${relative(process.cwd(), kamailio.logFile)}`,
      `  supervisor: each daemon is restarted when it exits; its lines also go to ${relative(process.cwd(), supervisorLog)}`,
      `OPTIONS to udp:${cfg.WA_INTERNAL_IP}:${cfg.WA_INTERNAL_PORT} answered: ${probe.status} ${probe.reason}`,
    ].join("\n"),
  );
  if (demoSetup) {
    const result = await runDemoCall({
      runDir: runRoot,
      agentApi: agent.AGENT_API,
      ourTls: { host: cfg.WA_PUBLIC_IP, port: cfg.WA_TLS_PORT },
      callerWav: demoSetup.callerWav,
      traceDir: agent.AGENT_TRACE_DIR,
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
