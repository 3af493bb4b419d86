/**
 * Site configuration: the WA_* variables kamailio/kamailio.cfg reads, from an env file and
 * the environment (the environment wins). Checked before Kamailio starts, with errors
 * that name the key, instead of a Kamailio that starts half-configured.
 */
import { existsSync, readFileSync } from "node:fs";
import { isIP } from "node:net";
import { z } from "zod";
import { parseRoutingConfig } from "../routing/config.js";

/** Settings the routing reads itself (KSR.kx.get_env); checked here with its own parser. */
const ROUTING_KEYS = [
  "WA_NUMBERS", "WA_SIP_PASSWORDS", "WA_META_PREFIXES", "WA_META_DOMAIN", "WA_META_EDGE",
  "WA_AGENT_URI", "WA_INBOUND_AUTH", "WA_MAX_CALLS_PER_NUMBER", "WA_CALLBACK_DAILY_LIMIT",
  "WA_CALLBACK_UNANSWERED_LIMIT", "WA_SRTP_MODE", "WA_RTPENGINE_DIRECTIONS", "WA_TRANSFER_PROXY", "WA_INTERNAL_ALLOW",
  "WA_STATE_REDIS_URL",
];

const ip = z.string().refine((v) => isIP(v) !== 0, "must be an IPv4 or IPv6 address");
const port = z.coerce.number().int().min(1).max(65535);
const file = z.string().refine((p) => existsSync(p), "file does not exist");

export const siteConfigSchema = z.object({
  WA_PUBLIC_IP: ip.default("127.0.0.1"),
  WA_TLS_PORT: port.default(5061),
  WA_ADVERTISE_IP: ip.optional(),
  WA_INTERNAL_IP: ip.default("127.0.0.1"),
  WA_INTERNAL_PORT: port.default(5070),
  WA_DOMAIN: z
    .string()
    .regex(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/i, "must be a host name such as sip.example.com")
    .default("sip.example.com"),
  WA_TLS_CERT: file.optional(),
  WA_TLS_KEY: file.optional(),
  WA_META_CA_LIST: file.default("/etc/ssl/certs/ca-certificates.crt"),
  /** One rtpengine, or a set: space-separated, each with an optional "=weight". */
  WA_RTPENGINE_SOCK: z
    .string()
    .regex(
      /^((udp6?|tcp):([^:\s=]+|\[[^\]]+\]):\d+(=\d+)?)(\s+(udp6?|tcp):([^:\s=]+|\[[^\]]+\]):\d+(=\d+)?)*$/,
      "must look like udp:127.0.0.1:2223, or several such separated by spaces (a set; udp:10.0.0.7:2223=2 weighs 2)",
    )
    .default("udp:127.0.0.1:2223"),
  /** rtpengine's HTTP listener: Prometheus text at /metrics (loopback by default). */
  WA_RTPENGINE_METRICS: z
    .string()
    .regex(/^[0-9.]+:\d+$/, "must be address:port, e.g. 127.0.0.1:2225")
    .default("127.0.0.1:2225"),
  WA_LOG_LEVEL: z.coerce.number().int().min(-5).max(3).default(2),
  WA_CHILDREN: z.coerce.number().int().min(1).max(64).default(4),
  WA_API_PORT: port.default(5072),
  WA_MAX_CALL_SECONDS: z.coerce.number().int().min(10).default(14400),
  /** rtpengine's media ports (started by `npm start`). */
  WA_RTP_PORTS: z
    .string()
    .regex(/^\d+-\d+$/, "must be min-max, e.g. 30000-30999")
    .refine((r) => Number(r.split("-")[0]) < Number(r.split("-")[1]), "min must be below max")
    .default("30000-30999"),
  WA_STATE_DB_URL: z.string().regex(/^sqlite:\/\/\//, "must be an SQLite URL such as sqlite:///var/lib/wa-voice/callback.sqlite").optional(),
});
/** WA_* for Kamailio and the routing; AGENT_* (checked by the media agent) passed through. */
export type SiteConfig = z.infer<typeof siteConfigSchema> & { routing: Record<string, string>; agent: Record<string, string> };

export class ConfigError extends Error {}

/** KEY=VALUE lines; # comments; values may be quoted. */
export function parseEnvFile(text: string, label: string): Record<string, string> {
  const out: Record<string, string> = {};
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith("#")) return;
    const m = line.match(/^(?:export\s+)?([A-Z_][A-Z0-9_]*)\s*=\s*(.*)$/);
    if (!m) throw new ConfigError(`${label}:${i + 1}: expected KEY=VALUE, got '${line}'`);
    out[m[1]] = m[2].replace(/^(["'])(.*)\1$/, "$2");
  });
  return out;
}

/** Reads the env file (if any) under the process environment and validates the WA_* keys. */
export function loadSiteConfig(envFile: string | undefined, env: NodeJS.ProcessEnv = process.env): SiteConfig {
  const fromFile = envFile ? parseEnvFile(readFileSync(envFile, "utf8"), envFile) : {};
  const merged: Record<string, string> = { ...fromFile };
  for (const [k, v] of Object.entries(env)) if (/^(WA|AGENT)_/.test(k) && v !== undefined && v !== "") merged[k] = v;
  const agent: Record<string, string> = {};
  for (const k of Object.keys(merged)) {
    if (k.startsWith("AGENT_")) {
      agent[k] = merged[k];
      delete merged[k];
    }
  }
  const known = new Set([...Object.keys(siteConfigSchema.shape), ...ROUTING_KEYS]);
  const unknown = Object.keys(merged).filter((k) => !known.has(k) && k !== "WA_CONFIG");
  if (unknown.length) throw new ConfigError(`unknown setting ${unknown.join(", ")} (known: ${[...known].join(", ")})`);
  const routing: Record<string, string> = {};
  for (const k of ROUTING_KEYS) if (merged[k] !== undefined) routing[k] = merged[k];
  const routingErrors = parseRoutingConfig((name) => routing[name] ?? null).errors;
  const parsed = siteConfigSchema.safeParse(merged);
  if (!parsed.success || routingErrors.length) {
    const lines = (parsed.success ? [] : parsed.error.issues).map(
      (i) => `  ${i.path.join(".")}=${JSON.stringify(merged[String(i.path[0])] ?? "")}: ${i.message}`,
    );
    lines.push(...routingErrors.map((e) => `  ${e}`));
    throw new ConfigError(`invalid configuration${envFile ? ` (${envFile} and environment)` : ""}:\n${lines.join("\n")}`);
  }
  if (Boolean(parsed.data.WA_TLS_CERT) !== Boolean(parsed.data.WA_TLS_KEY)) {
    throw new ConfigError("WA_TLS_CERT and WA_TLS_KEY must be set together");
  }
  return { ...parsed.data, routing, agent };
}
