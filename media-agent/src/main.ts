/**
 * `tsx media-agent/src/main.ts`: the media agent as a service. Settings from AGENT_* (see
 * README); invalid settings end it at once with every error named.
 */
import { pino } from "pino";
import { MediaAgent } from "./agent.js";
import { startApi } from "./api/http.js";
import { parseAgentConfig } from "./config.js";
import { lowerHelperThreads } from "./helper-threads.js";
import { reportLoopDelay } from "./loop-delay.js";

const parsed = parseAgentConfig(process.env);
if (!parsed.ok) {
  for (const e of parsed.errors) console.error(`media agent configuration error: ${e}`);
  process.exit(2);
}
const config = parsed.config;
const log = pino({ level: config.AGENT_LOG_LEVEL, base: { service: "media-agent" } });
const agent = await MediaAgent.start(config, log);
log.info({ threads: await lowerHelperThreads() }, "helper threads below normal priority");
const api = await startApi(agent, config.AGENT_API);
log.info({ api: `http://${config.AGENT_API.host}:${config.AGENT_API.port}` }, "call API listening");
if (config.AGENT_LOOP_DELAY_REPORT_MS) reportLoopDelay(log, config.AGENT_LOOP_DELAY_REPORT_MS);

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => {
    log.info({ signal }, "stopping");
    api.close();
    void agent.stop().then(() => process.exit(0));
  });
}
