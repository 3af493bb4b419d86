/**
 * `npm run check:engines -- --config /etc/wa-voice/site.env [--install-stt]` (or `--profiles
 * voice-profiles.json`): checks every engine of every voice profile (engine-check.ts) and prints
 * one table. Exit status 0 when all are ✓, 1 when any is ✗ (a call would fail), 2 when the
 * settings themselves are wrong (the message names the key).
 */
import { parseArgs } from "node:util";
import { loadSiteConfig } from "../../build/site-config.js";
import { checkEngines, engineTable } from "./engine-check.js";
import { loadVoiceProfiles } from "./pipeline/voice-profiles.js";

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { config: { type: "string" }, profiles: { type: "string" }, "install-stt": { type: "boolean", default: false }, "timeout-ms": { type: "string" } },
  });
  let file = values.profiles;
  try {
    if (!file) {
      const site = loadSiteConfig(values.config ?? process.env.WA_CONFIG);
      file = site.agent.AGENT_VOICE_PROFILES;
      if (!file) throw new Error("AGENT_VOICE_PROFILES: not set in the site settings (or give --profiles FILE): there are no voice profiles to check");
    }
    const profiles = loadVoiceProfiles(file);
    const rows = await checkEngines(profiles, { installStt: values["install-stt"], timeoutMs: values["timeout-ms"] ? Number(values["timeout-ms"]) : undefined });
    console.log(`engines of the voice profiles in ${file}:\n\n${engineTable(rows)}\n`);
    const failed = rows.filter((r) => !r.ok);
    console.log(failed.length ? `✗ ${failed.length} of ${rows.length} checks failed: calls on ${[...new Set(failed.map((r) => r.profile))].join(", ")} would fail` : `✓ all ${rows.length} checks passed`);
    return failed.length ? 1 : 0;
  } catch (err) {
    console.error(`check:engines: ${(err as Error).message}`);
    return 2;
  }
}

process.exitCode = await main();
