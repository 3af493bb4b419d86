/**
 * The production install's render step (deploy/README.md): what `npm start` derives from the
 * site settings before it starts the daemons, written to files the systemd units use.
 *
 *   npm run render:tls -- --config /etc/wa-voice/site.env --out /etc/kamailio/wa/tls.cfg
 *     validates the site settings (errors name the key; WA_TLS_CERT and WA_TLS_KEY are required:
 *     Meta verifies our certificate, so no self-signed fallback here), renders kamailio/tls.cfg
 *     with WA_TLS_CERT, WA_TLS_KEY and WA_META_CA_LIST into --out (WA_TLS_CONFIG), and creates the
 *     callback-state SQLite database (WA_STATE_DB_URL) from kamailio/callback-state.sql when it is
 *     missing (--no-state-db skips that; with WA_STATE_REDIS_URL there is none). Beside --out it
 *     writes dispatcher.list (the agents of WA_AGENT_URI) and derived.env (WA_DISPATCHER_LIST and,
 *     with WA_STATE_REDIS_URL, ndb_redis's WA_STATE_REDIS_SERVER), read by wa-kamailio.service.
 *
 *   npm run render:rtpengine -- --config /etc/wa-voice/site.env --out /etc/wa-voice/rtpengine.conf
 *     rtpengine's own config file with the interfaces, ng socket and port range `npm start` would
 *     use (stack/site.ts); fails when WA_RTPENGINE_DIRECTIONS does not match those interfaces.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { parseAgentConfig } from "../media-agent/src/config.js";
import { ensureStateDb, redisServerDefinition, renderTlsConfig, writeAgentList } from "../build/kamailio.js";
import { DEFAULT_AGENT_URI } from "../routing/policy/agent-pool.js";
import { ConfigError, loadSiteConfig, type SiteConfig } from "../build/site-config.js";
import { rtpengineSetup } from "../stack/site.js";

export const DEFAULT_STATE_DB = "/var/lib/wa-voice/callback.sqlite";

function renderTls(cfg: SiteConfig, out: string, stateDb: boolean): void {
  if (!cfg.WA_TLS_CERT || !cfg.WA_TLS_KEY) throw new ConfigError("WA_TLS_CERT and WA_TLS_KEY: required in production (Meta verifies our certificate)");
  mkdirSync(dirname(out), { recursive: true });
  renderTlsConfig({ WA_TLS_CERT: cfg.WA_TLS_CERT, WA_TLS_KEY: cfg.WA_TLS_KEY, WA_META_CA_LIST: cfg.WA_META_CA_LIST }, out);
  console.log(`rendered kamailio/tls.cfg into ${out} (certificate ${cfg.WA_TLS_CERT}, CA list ${cfg.WA_META_CA_LIST})`);
  if (stateDb && !cfg.routing.WA_STATE_REDIS_URL) {
    const file = (cfg.WA_STATE_DB_URL ?? `sqlite://${DEFAULT_STATE_DB}`).slice("sqlite://".length);
    ensureStateDb(file);
    console.log(`callback state: ${file}`);
  }
  // What the launcher derives for Kamailio, beside tls.cfg: dispatcher's list of the agents
  // (WA_DISPATCHER_LIST's default path when --out is /etc/kamailio/wa/tls.cfg) and, with Redis,
  // ndb_redis's server definition (wa-kamailio.service reads derived.env).
  const list = writeAgentList(cfg.routing.WA_AGENT_URI ?? DEFAULT_AGENT_URI, join(dirname(out), "dispatcher.list"));
  console.log(`agents (dispatcher set 1): ${list}`);
  const derived = cfg.routing.WA_STATE_REDIS_URL ? `WA_STATE_REDIS_SERVER=${redisServerDefinition(cfg.routing.WA_STATE_REDIS_URL)}\n` : "";
  writeFileSync(join(dirname(out), "derived.env"), `# Rendered by \`npm run render:tls\` from the site settings; edit those, not this file.\nWA_DISPATCHER_LIST=${list}\n${derived}`, { mode: 0o640 });
  console.log(`callback state: ${cfg.routing.WA_STATE_REDIS_URL ? `Redis ${cfg.routing.WA_STATE_REDIS_URL.replace(/\/\/:[^@]*@/, "//:***@")}` : "SQLite"}; ${join(dirname(out), "derived.env")}`);
}

function renderRtpengine(cfg: SiteConfig, out: string): void {
  const agent = parseAgentConfig(cfg.agent);
  if (!agent.ok) throw new ConfigError(`invalid media agent settings:\n  ${agent.errors.join("\n  ")}`);
  const rtp = rtpengineSetup(cfg, agent.config.AGENT_RTP_HOST);
  const configured = cfg.routing.WA_RTPENGINE_DIRECTIONS;
  if ((rtp.directions ?? "") !== (configured ?? "")) {
    throw new ConfigError(
      rtp.directions
        ? `WA_RTPENGINE_DIRECTIONS: must be '${rtp.directions}' (WA_PUBLIC_IP ${cfg.WA_PUBLIC_IP} differs from the agent's AGENT_RTP_HOST ${agent.config.AGENT_RTP_HOST}: rtpengine gets two interfaces)`
        : `WA_RTPENGINE_DIRECTIONS: must be unset (WA_PUBLIC_IP equals AGENT_RTP_HOST: rtpengine has one interface)`,
    );
  }
  const lines = [
    "# Rendered by `npm run render:rtpengine` from the site settings; edit those, not this file.",
    "[rtpengine]",
    "table = -1",
    `interface = ${rtp.interfaces.join(";")}`,
    `listen-ng = ${rtp.ng.host}:${rtp.ng.port}`,
    // Prometheus text at http://<listen-http>/metrics
    `listen-http = ${rtp.metrics}`,
    `port-min = ${rtp.portMin}`,
    `port-max = ${rtp.portMax}`,
    "timeout = 60",
    "no-fallback = true",
    "log-level = 6",
    "",
  ];
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, lines.join("\n"));
  console.log(`rendered rtpengine's config into ${out}: interfaces ${rtp.interfaces.join(" ")}, ng ${rtp.ng.host}:${rtp.ng.port}, ports ${cfg.WA_RTP_PORTS}`);
}

function main(): void {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      config: { type: "string" },
      out: { type: "string" },
      "no-state-db": { type: "boolean", default: false },
    },
  });
  const what = positionals[0];
  if (what !== "tls" && what !== "rtpengine") throw new ConfigError("usage: deploy/render.ts tls|rtpengine --config site.env --out FILE");
  if (!values.out) throw new ConfigError("--out FILE is required");
  const cfg = loadSiteConfig(values.config ?? process.env.WA_CONFIG, process.env);
  if (what === "tls") renderTls(cfg, values.out, !values["no-state-db"]);
  else renderRtpengine(cfg, values.out);
}

try {
  main();
} catch (err) {
  console.error(err instanceof ConfigError ? `configuration error: ${err.message}` : (err as Error).stack);
  process.exit(1);
}
