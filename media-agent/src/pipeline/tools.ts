/**
 * Tools the LLM may call, per profile. Arguments are checked against the tool's schema before
 * anything runs; an unknown tool, bad arguments, a failure or a timeout become a short message
 * for the model (which then says so), never an exception in the call.
 */
import { z } from "zod";
import type { ToolCall } from "./llm-client.js";

export interface ToolSpec {
  type: "function";
  function: { name: string; description: string; parameters: Record<string, unknown> };
}

export interface ToolContext {
  signal: AbortSignal;
  now(): Date;
  endCall(reason: string): void;
  /** Transfers the call as the profile says; the result in words for the model. */
  transfer(): Promise<string>;
}

export interface Tool {
  spec: ToolSpec;
  schema: z.ZodType;
  /** Overrides the timeout runToolCall is given. */
  timeoutMs?: number;
  run(args: unknown, ctx: ToolContext): Promise<string>;
}

export interface ToolResult {
  name: string;
  ok: boolean;
  content: string;
}

const TOOL_TIMEOUT_MS = 5000;

export async function runToolCall(call: ToolCall, enabled: Tool[], ctx: ToolContext, defaultTimeoutMs = TOOL_TIMEOUT_MS): Promise<ToolResult> {
  const name = call.function.name;
  const tool = enabled.find((t) => t.spec.function.name === name);
  if (!tool) return { name, ok: false, content: `There is no tool called ${name}.` };
  const timeoutMs = tool.timeoutMs ?? defaultTimeoutMs;
  const args = tool.schema.safeParse(call.function.arguments);
  if (!args.success) {
    return { name, ok: false, content: `The arguments for ${name} were not valid: ${args.error.issues.map((i) => `${i.path.join(".")} ${i.message}`).join("; ")}.` };
  }
  let timer: NodeJS.Timeout | undefined;
  try {
    const content = await Promise.race([
      tool.run(args.data, ctx),
      new Promise<never>((_, fail) => (timer = setTimeout(() => fail(new Error(`no result within ${timeoutMs} ms`)), timeoutMs))),
    ]);
    return { name, ok: true, content };
  } catch (err) {
    return { name, ok: false, content: `${name} failed: ${(err as Error).message}` };
  } finally {
    clearTimeout(timer);
  }
}

/** WMO weather interpretation codes (Open-Meteo `weather_code`) in words: every code Open-Meteo documents. */
const WEATHER_CODES: Record<number, string> = {
  0: "clear sky", 1: "mainly clear", 2: "partly cloudy", 3: "overcast", 45: "fog", 48: "freezing fog",
  51: "light drizzle", 53: "drizzle", 55: "dense drizzle", 56: "light freezing drizzle", 57: "dense freezing drizzle",
  61: "light rain", 63: "rain", 65: "heavy rain", 66: "freezing rain", 67: "heavy freezing rain",
  71: "light snow", 73: "snow", 75: "heavy snow", 77: "snow grains",
  80: "light showers", 81: "showers", 82: "violent showers", 85: "snow showers", 86: "heavy snow showers",
  95: "thunderstorm", 96: "thunderstorm with hail", 99: "thunderstorm with heavy hail",
};

/** A code in words; one Open-Meteo adds later is not read out as a number the caller cannot use. */
function conditions(code: number): string {
  return WEATHER_CODES[code] ?? "unknown conditions";
}

const geocoding = z.object({
  results: z.array(z.object({ name: z.string(), latitude: z.number(), longitude: z.number(), country: z.string().optional() })).optional(),
});
// Open-Meteo writes a value its model did not produce as null.
const value = z.number().nullish();
const forecast = z.object({
  current: z.object({ temperature_2m: value, weather_code: value, wind_speed_10m: value }).optional(),
});

/** What is known, leaving out what Open-Meteo did not report; empty when nothing is. */
function described(parts: Array<string | false>): string {
  return parts.filter((p): p is string => !!p).join(", ");
}

function isNumber(v: number | null | undefined): v is number {
  return typeof v === "number";
}

async function getJson(url: string, signal: AbortSignal, timeoutMs: number): Promise<unknown> {
  const res = await fetch(url, { signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]) });
  if (!res.ok) throw new Error(`${new URL(url).host} answered ${res.status}`);
  return res.json();
}

/**
 * Open-Meteo: geocoding, then the current conditions at the place found. A value reported as
 * null is left out; only an answer with nothing at all fails.
 */
export function getWeatherTool(cfg: { geocodingUrl: string; forecastUrl: string; timeoutMs: number }): Tool {
  const schema = z.object({ city: z.string().min(1).max(100) });
  return {
    spec: {
      type: "function",
      function: {
        name: "get_weather",
        description: "Current weather for a city",
        parameters: { type: "object", properties: { city: { type: "string", description: "City name" } }, required: ["city"] },
      },
    },
    schema,
    async run(args, ctx) {
      const { city } = args as z.infer<typeof schema>;
      const geo = geocoding.parse(await getJson(`${cfg.geocodingUrl}/v1/search?name=${encodeURIComponent(city)}&count=1&language=en&format=json`, ctx.signal, cfg.timeoutMs));
      const place = geo.results?.[0];
      if (!place) return `No place called ${city} was found.`;
      const { current: now } = forecast.parse(
        await getJson(`${cfg.forecastUrl}/v1/forecast?latitude=${place.latitude}&longitude=${place.longitude}&current=temperature_2m,weather_code,wind_speed_10m&timezone=auto`, ctx.signal, cfg.timeoutMs),
      );
      const where = `${place.name}${place.country ? `, ${place.country}` : ""}`;
      const [temperature, code, wind] = [now?.temperature_2m, now?.weather_code, now?.wind_speed_10m];
      const current = described([isNumber(temperature) && `${temperature} °C`, isNumber(code) && conditions(code), isNumber(wind) && `wind ${wind} km/h`]);
      if (!current) throw new Error(`the weather service reported no values for ${where}`);
      return `${where}: ${current}.`;
    },
  };
}

export function getTimeTool(timezone: string): Tool {
  const schema = z.object({}).passthrough();
  return {
    spec: { type: "function", function: { name: "get_time", description: "The current date and time", parameters: { type: "object", properties: {} } } },
    schema,
    async run(_args, ctx) {
      return new Intl.DateTimeFormat("en-GB", { dateStyle: "full", timeStyle: "short", timeZone: timezone }).format(ctx.now());
    },
  };
}

export function endCallTool(): Tool {
  const schema = z.object({ reason: z.string().max(200).optional() });
  return {
    spec: {
      type: "function",
      function: { name: "end_call", description: "End the call after saying goodbye", parameters: { type: "object", properties: { reason: { type: "string" } } } },
    },
    schema,
    async run(args, ctx) {
      ctx.endCall((args as z.infer<typeof schema>).reason ?? "caller is done");
      return "The call will end after the goodbye.";
    },
  };
}

/** Hands the caller to a person; the profile's transfer settings say who and how long it rings. */
/**
 * The call always goes to the profile's transfer target; a model that names a number, a person
 * or a department is told that these were ignored and where the call goes, so it does not
 * promise the caller something else.
 */
export function transferCallTool(ringTimeoutMs: number, target: string): Tool {
  const schema = z.object({ reason: z.string().max(200).optional() }).catchall(z.unknown());
  const where = /^sips?:([^@]+)@/.exec(target)?.[1] ?? target;
  return {
    spec: {
      type: "function",
      function: {
        name: "transfer_call",
        description: "Connect the caller to a person (a colleague) when they ask for one or you cannot help",
        parameters: { type: "object", properties: { reason: { type: "string" } } },
      },
    },
    schema,
    // The person's phone rings: the tool waits for the answer, not the usual tool timeout.
    timeoutMs: ringTimeoutMs + 10_000,
    async run(args, ctx) {
      const ignored = Object.keys(args as Record<string, unknown>).filter((k) => k !== "reason");
      const result = await ctx.transfer();
      if (ignored.length === 0) return result;
      return `${result} (The call goes to the configured colleagues' line '${where}' only; the argument${ignored.length > 1 ? "s" : ""} ${ignored.map((k) => `'${k}'`).join(", ")} ${ignored.length > 1 ? "were" : "was"} ignored.)`;
    },
  };
}
