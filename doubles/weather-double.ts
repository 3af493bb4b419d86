/** Open-Meteo's geocoding and forecast APIs for a few cities, recording the requests' URLs. */
import { createServer } from "node:http";
import type { Teardown } from "../build/teardown.js";

interface City {
  name: string;
  country: string;
  latitude: number;
  longitude: number;
  temperature: number;
  code: number;
  wind: number;
}

const CITIES: Record<string, City> = {
  dusseldorf: { name: "Düsseldorf", country: "Germany", latitude: 51.22172, longitude: 6.77616, temperature: 14.2, code: 61, wind: 12.4 },
  berlin: { name: "Berlin", country: "Germany", latitude: 52.52437, longitude: 13.41053, temperature: 9.8, code: 3, wind: 7.1 },
};

export interface WeatherDoubleOptions {
  /**
   * Values the forecast answers as null, as Open-Meteo does for what its model did not produce,
   * by their dotted path: "current.temperature_2m".
   */
  nulls?: string[];
  /** The weather code of every city (e.g. 56, or one Open-Meteo does not document). */
  code?: number;
}

/** Sets the value at a dotted path ("current.temperature_2m") to null. */
function setNull(o: Record<string, unknown>, path: string): void {
  const keys = path.split(".");
  const last = keys.pop()!;
  let at: Record<string, unknown> = o;
  for (const key of keys) {
    if (typeof at[key] !== "object" || at[key] === null) throw new Error(`weather double: no ${key} in ${path}`);
    at = at[key] as Record<string, unknown>;
  }
  if (!(last in at)) throw new Error(`weather double: no ${path}`);
  at[last] = null;
}

export async function startWeatherDouble(t: Teardown, opts: WeatherDoubleOptions = {}): Promise<{ url: string; requests: string[] }> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(req.url ?? "");
    const url = new URL(req.url ?? "/", "http://weather");
    const json = (o: unknown) => res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify(o));
    if (url.pathname === "/v1/search") {
      // Like Open-Meteo, "Dusseldorf" finds Düsseldorf.
      const city = CITIES[(url.searchParams.get("name") ?? "").normalize("NFD").replace(/\p{M}/gu, "").toLowerCase()];
      return json(city ? { results: [{ id: 1, name: city.name, latitude: city.latitude, longitude: city.longitude, country: city.country, timezone: "Europe/Berlin" }], generationtime_ms: 0.5 } : { generationtime_ms: 0.4 });
    }
    if (url.pathname === "/v1/forecast") {
      const city = Object.values(CITIES).find((c) => String(c.latitude) === url.searchParams.get("latitude"));
      if (!city) return res.writeHead(400).end(JSON.stringify({ error: true, reason: "unknown coordinates" }));
      const code = opts.code ?? city.code;
      const body: Record<string, unknown> = {
        latitude: city.latitude, longitude: city.longitude, timezone: "Europe/Berlin",
        current_units: { temperature_2m: "°C", weather_code: "wmo code", wind_speed_10m: "km/h" },
        current: { time: "2026-11-23T12:00", interval: 900, temperature_2m: city.temperature, weather_code: code, wind_speed_10m: city.wind },
      };
      try {
        for (const path of opts.nulls ?? []) setNull(body, path);
      } catch (err) {
        // A test's misspelt path: an answer the tool reports, not a crashed server.
        return res.writeHead(500).end(JSON.stringify({ error: true, reason: (err as Error).message }));
      }
      return json(body);
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  t.teardown(() => new Promise<void>((done) => server.close(() => done())));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, requests };
}
