/**
 * The media agent's settings, from the environment (AGENT_*; see README). Checked once at
 * start with zod; every error names its key.
 */
import { z } from "zod";
import { DEFAULT_OPUS_COMPLEXITY } from "./codecs/opus.js";

const CODECS = ["opus", "PCMA", "PCMU"] as const;

const hostPort = (key: string, fallback: string) =>
  z.string().regex(/^[0-9.]+:\d{1,5}$/, `${key}: expected IPv4:port`).default(fallback).transform((s) => {
    const [host, port] = s.split(":");
    return { host, port: Number(port) };
  });

/** `name=echo` or `name=play-record:/path/prompt.wav` entries, comma-separated. */
const profileSpec = z
  .string()
  .default("default=echo")
  .transform((text, ctx) => {
    const out: Record<string, ProfileSpec> = {};
    for (const entry of text.split(",").map((s) => s.trim()).filter(Boolean)) {
      const m = /^([A-Za-z0-9_.-]+)=(echo|play-record)(?::(.+))?$/.exec(entry);
      if (!m || (m[2] === "play-record" && !m[3])) {
        ctx.addIssue({ code: "custom", message: `AGENT_PROFILES: '${entry}' is not name=echo or name=play-record:/path/prompt.wav` });
        continue;
      }
      out[m[1]] = m[2] === "echo" ? { kind: "echo" } : { kind: "play-record", prompt: m[3] };
    }
    return out;
  });

export type ProfileSpec = { kind: "echo" } | { kind: "play-record"; prompt: string };

const schema = z
  .object({
    AGENT_SIP: hostPort("AGENT_SIP", "127.0.0.1:5080"),
    AGENT_KAMAILIO: hostPort("AGENT_KAMAILIO", "127.0.0.1:5070"),
    // Other Kamailio nodes that send calls to this agent (scale-out): their requests are served
    // too, and a call's in-dialog requests go to the node that holds it.
    AGENT_KAMAILIO_PEERS: z
      .string()
      .default("")
      .transform((text, ctx) => {
        const peers: Array<{ host: string; port: number }> = [];
        for (const entry of text.split(",").map((s) => s.trim()).filter(Boolean)) {
          const m = /^([0-9.]+):(\d{1,5})$/.exec(entry);
          if (m) peers.push({ host: m[1], port: Number(m[2]) });
          else ctx.addIssue({ code: "custom", message: `AGENT_KAMAILIO_PEERS: '${entry}' is not IPv4:port` });
        }
        return peers;
      }),
    AGENT_RTP_HOST: z.string().regex(/^[0-9.]+$/, "AGENT_RTP_HOST: expected an IPv4 address").default("127.0.0.1"),
    AGENT_RTP_PORTS: z
      .string()
      .regex(/^\d+-\d+$/, "AGENT_RTP_PORTS: expected min-max")
      .default("31000-31999")
      .transform((s) => {
        const [min, max] = s.split("-").map(Number);
        return { min, max };
      })
      .refine((r) => r.min % 2 === 0 && r.max > r.min + 1 && r.max < 65536, "AGENT_RTP_PORTS: min must be even and below max"),
    AGENT_CODECS: z
      .string()
      .default("opus,PCMA,PCMU")
      .transform((s) => s.split(",").map((c) => c.trim()))
      .pipe(z.array(z.enum(CODECS, { message: `AGENT_CODECS: each must be one of ${CODECS.join(", ")}` })).min(1)),
    AGENT_API: hostPort("AGENT_API", "127.0.0.1:5090"),
    AGENT_PROFILES: profileSpec,
    AGENT_DEFAULT_PROFILE: z.string().default("default"),
    AGENT_RECORD_DIR: z.string().default("/var/lib/wa-media-agent/recordings"),
    /** libopus's encoder complexity for Opus calls (codecs/opus.ts: what each step costs and gives). */
    AGENT_OPUS_COMPLEXITY: z.coerce
      .number({ message: "AGENT_OPUS_COMPLEXITY: expected a whole number 0–10" })
      .int("AGENT_OPUS_COMPLEXITY: expected a whole number 0–10")
      .min(0, "AGENT_OPUS_COMPLEXITY: expected a whole number 0–10")
      .max(10, "AGENT_OPUS_COMPLEXITY: expected a whole number 0–10")
      .default(DEFAULT_OPUS_COMPLEXITY),
    AGENT_RTP_TIMEOUT_S: z.coerce.number({ message: "AGENT_RTP_TIMEOUT_S: expected seconds" }).positive().default(30),
    /** Ring this long (180) before answering; 0 answers at once. */
    /** Seconds between engine checks of the voice profiles (engine-health.ts); 0: only at start. */
    AGENT_ENGINE_CHECK_S: z.coerce.number({ message: "AGENT_ENGINE_CHECK_S: expected seconds" }).int().min(0).default(60),
    AGENT_ANSWER_DELAY_MS: z.coerce.number({ message: "AGENT_ANSWER_DELAY_MS: expected milliseconds" }).int().min(0).max(60_000).default(0),
    AGENT_MAX_CALL_S: z.coerce.number({ message: "AGENT_MAX_CALL_S: expected seconds" }).positive().default(3600),
    /** Ended calls kept for the call API (GET /calls/{id}); calls in progress are always kept. */
    AGENT_CALL_HISTORY: z.coerce.number({ message: "AGENT_CALL_HISTORY: expected a number of calls" }).int().min(1).max(1_000_000).default(1000),
    /** After a play-record prompt ends, hang up this much later (unset: never). */
    AGENT_HANGUP_AFTER_PROMPT_MS: z.coerce.number().int().positive().optional(),
    /** JSON file of voice AI profiles (README, "Voice profiles"); their names join AGENT_PROFILES'. */
    AGENT_VOICE_PROFILES: z.string().optional(),
    /** Per-call turn traces (JSON lines) and each turn's caller audio. */
    AGENT_TRACE_DIR: z.string().default("/var/lib/wa-media-agent/traces"),
    AGENT_LOG_LEVEL: z.enum(["trace", "debug", "info", "warn", "error"]).default("info"),
    /** Measuring only (bench/agent.ts): log the event loop's delay every this many ms (unset: never). */
    AGENT_LOOP_DELAY_REPORT_MS: z.coerce.number({ message: "AGENT_LOOP_DELAY_REPORT_MS: expected milliseconds" }).int().min(100).optional(),
  })
  .refine((c) => c.AGENT_DEFAULT_PROFILE in c.AGENT_PROFILES || c.AGENT_VOICE_PROFILES !== undefined, {
    message: "AGENT_DEFAULT_PROFILE: not one of the names in AGENT_PROFILES",
  });

export type AgentConfig = z.output<typeof schema>;

export type ConfigResult = { ok: true; config: AgentConfig } | { ok: false; errors: string[] };

/** Reads AGENT_* from env; unset and empty values take the defaults. */
export function parseAgentConfig(env: Record<string, string | undefined>): ConfigResult {
  const picked = Object.fromEntries(Object.entries(env).filter(([k, v]) => k.startsWith("AGENT_") && v !== undefined && v !== ""));
  const result = schema.safeParse(picked);
  if (result.success) return { ok: true, config: result.data };
  return {
    ok: false,
    errors: result.error.issues.map((i) => (/^AGENT_[A-Z_]+:/.test(i.message) ? i.message : `${i.path.join(".") || "config"}: ${i.message}`)),
  };
}
