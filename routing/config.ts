/**
 * Routing settings, from the environment Kamailio was started with (WA_*; see README).
 * Read and checked once per worker; app_jsdt.reload re-reads them. Pure parsing in
 * parseRoutingConfig; errors name the key.
 */
import { isCidr } from "./policy/cidr";
import { isE164 } from "./policy/numbers";
import type { CallbackLimits } from "./policy/callback-rules";
import { parseMediaSettings, type MediaSettings } from "./policy/media";
import { DEFAULT_AGENT_URI, parseAgentUris, type AgentDestination } from "./policy/agent-pool";

export interface BusinessNumber {
  /** E.164 with "+", as Meta puts it in the Request-URI user. */
  number: string;
  /** Agent profile the media agent uses for calls to/from this number. */
  profile: string;
  /** The SIP password Meta generated for the number (digest both ways). */
  password: string | null;
}

export type DigestAlgorithm = "MD5" | "SHA-256";

export interface RoutingConfig {
  numbers: { [number: string]: BusinessNumber };
  /** Our SIP domain (WA_DOMAIN): From host toward Meta, realm of our challenges. */
  domain: string;
  metaPrefixes: string[];
  /**
   * Sources allowed to send SIP to the internal listener (WA_INTERNAL_ALLOW, CIDRs; default: the
   * agent's address and WA_TRANSFER_PROXY's when they are IP addresses).
   */
  internalAllow: string[];
  /** Expected X-FB-External-Domain, and Meta's SIP domain in Request-URIs toward Meta. */
  metaDomain: string;
  /** Where business-initiated calls are sent: host:port (TLS). */
  metaEdge: string;
  /** Where user-initiated calls go: the media agents (dispatcher set 1; WA_AGENT_URI). */
  agents: AgentDestination[];
  /** Challenge Meta's INVITEs with digest (off when null). */
  inboundAuth: DigestAlgorithm | null;
  maxCallsPerNumber: number;
  /** Meta's callback rules as enforced here (WA_CALLBACK_*). */
  callbackLimits: CallbackLimits;
  /** How rtpengine bridges Meta's SRTP and the agent's RTP (WA_SRTP_MODE, WA_RTPENGINE_DIRECTIONS). */
  media: MediaSettings;
  /** Next hop (sip: URI) for the agent's transfer legs to people (WA_TRANSFER_PROXY); null: no transfers. */
  transferProxy: string | null;
  /** Written before a BSUID in Meta's Request-URI user part (WA_BSUID_URI_PREFIX; Meta's pages do not say). */
  bsuidUriPrefix: string;
  /** Callback state in Redis shared by several nodes (WA_STATE_REDIS_URL set), else SQLite. */
  stateRedis: boolean;
  /** The longest a call may last (WA_MAX_CALL_SECONDS; the dialog module ends it then). */
  maxCallSeconds: number;
  /** Meta's permission webhooks (WA_WEBHOOK_VERIFY_TOKEN and WA_APP_SECRET); null: not taken. */
  webhook: { verifyToken: string; appSecret: string } | null;
}

/**
 * Meta's published IPv4 prefixes of AS32934 for the SIP edge, as of the docs in
 * shared/docs/whatsapp-sip.md. Sites override them with WA_META_PREFIXES.
 */
export const META_PREFIXES_DEFAULT = [
  "31.13.24.0/21", "31.13.64.0/18", "45.64.40.0/22", "57.144.0.0/14", "66.220.144.0/20",
  "69.63.176.0/20", "69.171.224.0/19", "74.119.76.0/22", "102.132.96.0/20", "103.4.96.0/22",
  "129.134.0.0/16", "147.75.208.0/20", "157.240.0.0/16", "163.70.128.0/17", "173.252.64.0/18",
  "179.60.192.0/22", "185.60.216.0/22", "185.89.216.0/22", "199.201.64.0/22", "204.15.20.0/22",
];

export type ConfigResult = { config: RoutingConfig; errors: [] } | { config: null; errors: string[] };

/** `key=value` pairs separated by commas; the value may contain "=" but not ",". */
function pairs(text: string): string[][] {
  return text
    .split(",")
    .map((s) => s.replace(/^\s+|\s+$/g, ""))
    .filter((s) => s.length > 0)
    .map((s) => {
      const at = s.indexOf("=");
      return at < 0 ? [s] : [s.slice(0, at), s.slice(at + 1)];
    });
}

export function parseRoutingConfig(env: (name: string) => string | null): ConfigResult {
  const errors: string[] = [];
  const get = (name: string, fallback: string) => {
    const v = env(name);
    return v === null || v === "" ? fallback : v;
  };
  const numbers: { [n: string]: BusinessNumber } = {};
  for (const p of pairs(get("WA_NUMBERS", ""))) {
    if (p.length !== 2 || !isE164(p[0]) || !/^[A-Za-z0-9_.-]+$/.test(p[1])) {
      errors.push(`WA_NUMBERS: '${p.join("=")}' is not +E164=profile`);
    } else numbers[p[0]] = { number: p[0], profile: p[1], password: null };
  }
  for (const p of pairs(get("WA_SIP_PASSWORDS", ""))) {
    if (p.length !== 2 || !p[1]) errors.push(`WA_SIP_PASSWORDS: entry for '${p[0]}' is not +E164=password`);
    else if (!numbers.hasOwnProperty(p[0])) errors.push(`WA_SIP_PASSWORDS: ${p[0]} is not in WA_NUMBERS`);
    else numbers[p[0]].password = p[1];
  }
  const prefixesText = get("WA_META_PREFIXES", "");
  const metaPrefixes = prefixesText ? pairs(prefixesText).map((p) => p.join("=")) : META_PREFIXES_DEFAULT;
  for (const c of metaPrefixes) if (!isCidr(c)) errors.push(`WA_META_PREFIXES: '${c}' is not an address prefix`);
  const auth = get("WA_INBOUND_AUTH", "");
  if (auth !== "" && auth !== "MD5" && auth !== "SHA-256") {
    errors.push(`WA_INBOUND_AUTH: '${auth}' is not MD5 or SHA-256 (leave it unset to not challenge Meta)`);
  }
  const limit = parseInt(get("WA_MAX_CALLS_PER_NUMBER", "1000"), 10);
  if (!(limit > 0)) errors.push("WA_MAX_CALLS_PER_NUMBER: must be a positive integer");
  const dailyLimit = parseInt(get("WA_CALLBACK_DAILY_LIMIT", "10"), 10);
  if (!(dailyLimit > 0)) errors.push("WA_CALLBACK_DAILY_LIMIT: must be a positive integer");
  const unansweredLimit = parseInt(get("WA_CALLBACK_UNANSWERED_LIMIT", "2"), 10);
  if (!(unansweredLimit > 0 && unansweredLimit < 4)) errors.push("WA_CALLBACK_UNANSWERED_LIMIT: must be 1, 2 or 3 (Meta revokes the permission at 4)");
  const agents = parseAgentUris(get("WA_AGENT_URI", DEFAULT_AGENT_URI), errors);
  const metaEdge = get("WA_META_EDGE", "wa.meta.vc:5061");
  if (!/^[A-Za-z0-9.-]+:\d+$/.test(metaEdge)) errors.push(`WA_META_EDGE: '${metaEdge}' is not host:port`);

  const media = parseMediaSettings(get("WA_SRTP_MODE", "SDES"), get("WA_RTPENGINE_DIRECTIONS", ""), errors);
  const transferProxy = get("WA_TRANSFER_PROXY", "");
  if (transferProxy && !/^sip:[A-Za-z0-9.:\[\]-]+(;transport=(udp|tcp))?$/.test(transferProxy)) {
    errors.push(`WA_TRANSFER_PROXY: '${transferProxy}' is not sip:host[:port][;transport=udp|tcp]`);
  }

  const internalAllow = parseInternalAllow(get("WA_INTERNAL_ALLOW", ""), agents.map((a) => a.uri).concat([transferProxy]), errors);
  const verifyToken = get("WA_WEBHOOK_VERIFY_TOKEN", "");
  const appSecret = get("WA_APP_SECRET", "");
  if ((verifyToken === "") !== (appSecret === "")) {
    errors.push(`${verifyToken ? "WA_APP_SECRET" : "WA_WEBHOOK_VERIFY_TOKEN"}: Meta's webhooks need both WA_WEBHOOK_VERIFY_TOKEN and WA_APP_SECRET (or neither)`);
  }
  const stateRedis = get("WA_STATE_REDIS_URL", "");
  if (stateRedis && !/^redis:\/\/\S+$/.test(stateRedis)) errors.push(`WA_STATE_REDIS_URL: '${stateRedis}' is not a redis:// URL`);
  const maxCallSeconds = parseInt(get("WA_MAX_CALL_SECONDS", "14400"), 10);
  if (!(maxCallSeconds > 0)) errors.push("WA_MAX_CALL_SECONDS: must be a positive integer");
  const bsuidUriPrefix = get("WA_BSUID_URI_PREFIX", "");
  if (!/^[A-Za-z0-9+._-]{0,16}$/.test(bsuidUriPrefix)) errors.push(`WA_BSUID_URI_PREFIX: '${bsuidUriPrefix}' is not up to 16 of A-Z a-z 0-9 + . _ -`);

  if (errors.length) return { config: null, errors };
  return {
    config: {
      numbers,
      domain: get("WA_DOMAIN", "sip.example.com"),
      metaPrefixes,
      internalAllow,
      metaDomain: get("WA_META_DOMAIN", "wa.meta.vc"),
      metaEdge,
      agents,
      inboundAuth: auth === "" ? null : (auth as DigestAlgorithm),
      maxCallsPerNumber: limit,
      callbackLimits: { dailyLimit, unansweredLimit },
      media,
      transferProxy: transferProxy || null,
      bsuidUriPrefix,
      stateRedis: stateRedis !== "",
      maxCallSeconds,
      webhook: verifyToken && appSecret ? { verifyToken, appSecret } : null,
    },
    errors: [],
  };
}

/**
 * WA_INTERNAL_ALLOW as prefixes; unset, the hosts of the agents and the transfer proxy URIs
 * (a bare address is taken as a single-host prefix).
 */
function parseInternalAllow(text: string, uris: string[], errors: string[]): string[] {
  if (text) {
    const prefixes = pairs(text).map((p) => {
      const c = p.join("=");
      return c.indexOf("/") < 0 ? `${c}/${c.indexOf(":") < 0 ? 32 : 128}` : c;
    });
    for (const c of prefixes) if (!isCidr(c)) errors.push(`WA_INTERNAL_ALLOW: '${c}' is not an address or prefix`);
    return prefixes;
  }
  const hosts: string[] = [];
  for (const uri of uris) {
    const m = /^sip:(?:[^@]*@)?([0-9.]+)(?::\d+)?(?:;.*)?$/.exec(uri);
    if (m && isCidr(`${m[1]}/32`)) hosts.push(`${m[1]}/32`);
  }
  if (hosts.length === 0) errors.push("WA_INTERNAL_ALLOW: must be set when WA_AGENT_URI names no IPv4 address (who may send SIP to the internal listener?)");
  return hosts;
}

let cached: ConfigResult | null = null;
let cachedFor: typeof KSR | null = null;

/**
 * This worker's settings; logs the errors once and returns null when they are invalid.
 * Read again only when the KSR object changes (a unit test's double).
 */
export function routingConfig(): RoutingConfig | null {
  if (!cached || cachedFor !== KSR) {
    cachedFor = KSR;
    cached = parseRoutingConfig((name) => {
      const v = KSR.kx.get_env(name);
      return v === null ? null : String(v);
    });
    for (const e of cached.errors) KSR.err(`configuration error: ${e}\n`);
  }
  return cached.config;
}
