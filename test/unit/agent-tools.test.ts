/**
 * Tool calls: arguments validated before anything runs, only the profile's tools, failures and
 * timeouts turned into messages for the model; the weather tool against an Open-Meteo double.
 */
import t from "tap";
import { endCallTool, getTimeTool, getWeatherTool, runToolCall, transferCallTool, type Tool, type ToolContext } from "../../media-agent/src/pipeline/tools.js";
import { startWeatherDouble } from "../../doubles/weather-double.js";

function context(over: Partial<ToolContext> = {}): ToolContext & { ended: string[]; transfers: string[] } {
  const ended: string[] = [];
  const transfers: string[] = [];
  return {
    signal: new AbortController().signal,
    now: () => new Date("2026-11-23T15:04:00Z"),
    endCall: (reason) => ended.push(reason),
    transfer: async () => {
      transfers.push("transfer");
      return "The caller is now connected to a person.";
    },
    ended,
    transfers,
    ...over,
  };
}

const call = (name: string, args: Record<string, unknown>) => ({ function: { name, arguments: args } });

t.test("arguments are checked against the tool's schema before it runs", async (t) => {
  let runs = 0;
  const counting: Tool = { ...getTimeTool("UTC"), spec: { ...getTimeTool("UTC").spec }, run: async () => String(++runs) };
  const weather = getWeatherTool({ geocodingUrl: "http://127.0.0.1:1", forecastUrl: "http://127.0.0.1:1", timeoutMs: 500 });
  const cases: Array<[string, ReturnType<typeof call>, RegExp]> = [
    ["no city", call("get_weather", {}), /arguments for get_weather were not valid: city/],
    ["a number for a city", call("get_weather", { city: 42 }), /city .*string/i],
    ["an empty city", call("get_weather", { city: "" }), /city/],
    ["a city too long", call("get_weather", { city: "x".repeat(101) }), /city/],
    ["end_call with a non-string reason", call("end_call", { reason: { a: 1 } }), /arguments for end_call were not valid: reason/],
  ];
  for (const [label, c, message] of cases) {
    const result = await runToolCall(c, [weather, endCallTool(), counting], context());
    t.equal(result.ok, false, `${label}: refused`);
    t.match(result.content, message, `${label}: ${result.content}`);
  }
  t.equal(runs, 0, "no tool ran");
});

t.test("a tool the profile does not enable is not run, even if the model asks for it", async (t) => {
  const ctx = context();
  const result = await runToolCall(call("end_call", { reason: "x" }), [getTimeTool("UTC")], ctx);
  t.same(result, { name: "end_call", ok: false, content: "There is no tool called end_call." });
  t.same(ctx.ended, []);
});

t.test("a tool that fails or hangs becomes a message, within the timeout", async (t) => {
  const failing: Tool = { ...getTimeTool("UTC"), run: async () => { throw new Error("backend said no"); } };
  t.same(await runToolCall(call("get_time", {}), [failing], context()), { name: "get_time", ok: false, content: "get_time failed: backend said no" });
  const hanging: Tool = { ...getTimeTool("UTC"), run: () => new Promise(() => undefined) };
  const started = Date.now();
  const result = await runToolCall(call("get_time", {}), [hanging], context(), 200);
  t.match(result, { ok: false, content: "get_time failed: no result within 200 ms" });
  t.ok(Date.now() - started < 2000);
});

t.test("get_weather: geocoding then the current conditions, from an Open-Meteo-compatible API", async (t) => {
  const api = await startWeatherDouble(t);
  const tool = getWeatherTool({ geocodingUrl: api.url, forecastUrl: api.url, timeoutMs: 2000 });
  const result = await runToolCall(call("get_weather", { city: "Düsseldorf" }), [tool], context());
  t.same(result.ok, true);
  t.equal(result.content, "Düsseldorf, Germany: 14.2 °C, light rain, wind 12.4 km/h.");
  t.match(api.requests[0], /^\/v1\/search\?name=D%C3%BCsseldorf&count=1/);
  t.match(api.requests[1], /^\/v1\/forecast\?latitude=51\.\d+&longitude=6\.\d+&current=temperature_2m,weather_code,wind_speed_10m&timezone=auto$/);
  const nowhere = await runToolCall(call("get_weather", { city: "Atlantis" }), [tool], context());
  t.same(nowhere, { name: "get_weather", ok: true, content: "No place called Atlantis was found." });
  const down = getWeatherTool({ geocodingUrl: "http://127.0.0.1:1", forecastUrl: "http://127.0.0.1:1", timeoutMs: 500 });
  const failed = await runToolCall(call("get_weather", { city: "Berlin" }), [down], context());
  t.match(failed, { ok: false, content: /^get_weather failed: / });
});

t.test("get_weather: a value Open-Meteo reports as null is left out; only nothing at all fails", async (t) => {
  const weather = async (opts: Parameters<typeof startWeatherDouble>[1]) => {
    const api = await startWeatherDouble(t, opts);
    return runToolCall(call("get_weather", { city: "Berlin" }), [getWeatherTool({ geocodingUrl: api.url, forecastUrl: api.url, timeoutMs: 2000 })], context());
  };
  t.same(await weather({ nulls: ["current.temperature_2m", "current.wind_speed_10m"] }), {
    name: "get_weather",
    ok: true,
    content: "Berlin, Germany: overcast.",
  });
  t.same(await weather({ nulls: ["current.weather_code"] }), { name: "get_weather", ok: true, content: "Berlin, Germany: 9.8 °C, wind 7.1 km/h." });
  const nothing = ["current.temperature_2m", "current.weather_code", "current.wind_speed_10m"];
  t.same(await weather({ nulls: nothing }), { name: "get_weather", ok: false, content: "get_weather failed: the weather service reported no values for Berlin, Germany" });
});

t.test("get_weather: every WMO code Open-Meteo documents is said in words, an unknown one as unknown conditions", async (t) => {
  const weather = async (code: number) => {
    const api = await startWeatherDouble(t, { code });
    return (await runToolCall(call("get_weather", { city: "Berlin" }), [getWeatherTool({ geocodingUrl: api.url, forecastUrl: api.url, timeoutMs: 2000 })], context())).content;
  };
  t.equal(await weather(56), "Berlin, Germany: 9.8 °C, light freezing drizzle, wind 7.1 km/h.");
  t.match(await weather(57), /^Berlin, Germany: 9\.8 °C, dense freezing drizzle, wind/);
  const unknown = await weather(42);
  t.equal(unknown, "Berlin, Germany: 9.8 °C, unknown conditions, wind 7.1 km/h.");
  t.notMatch(unknown, /\b42\b/, "never the bare code");
  const documented = [0, 1, 2, 3, 45, 48, 51, 53, 55, 56, 57, 61, 63, 65, 66, 67, 71, 73, 75, 77, 80, 81, 82, 85, 86, 95, 96, 99];
  for (const code of documented) {
    const said = await weather(code);
    t.notMatch(said, /unknown conditions|code/, `code ${code}: ${said}`);
  }
});

t.test("get_time in the profile's time zone; end_call and transfer_call reach the call", async (t) => {
  t.match((await runToolCall(call("get_time", {}), [getTimeTool("Europe/Berlin")], context())).content, /Monday, 23 November 2026 at 16:04/);
  const ctx = context();
  const ended = await runToolCall(call("end_call", { reason: "caller said bye" }), [endCallTool()], ctx);
  t.same([ended.ok, ctx.ended], [true, ["caller said bye"]]);
  const tool = transferCallTool(30_000, "sip:support@pbx.example.com");
  t.equal(tool.timeoutMs, 40_000, "transfer_call waits for the phone to ring out, not the 5 s tool timeout");
  const transferred = await runToolCall(call("transfer_call", { reason: "wants a person" }), [tool], ctx);
  t.same([transferred.content, ctx.transfers], ["The caller is now connected to a person.", ["transfer"]]);
  const elsewhere = await runToolCall(call("transfer_call", { reason: "sales", number: "+4930123456", department: "sales" }), [tool], ctx);
  t.equal(elsewhere.content, "The caller is now connected to a person. (The call goes to the configured colleagues' line 'support' only; the arguments 'number', 'department' were ignored.)",
    "the model learns that the number and department it asked for were not used");
});
