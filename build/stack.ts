/**
 * `npm start`: builds the routing bundle and runs Kamailio with it in the foreground.
 *
 *   npm start                          settings from the environment (WA_*), defaults otherwise
 *   npm start -- --config site.env     settings from an env file (the environment wins)
 *   npm start -- --once                start, show that it answers, stop (a smoke run)
 *
 * Without WA_TLS_CERT/WA_TLS_KEY a self-signed certificate for WA_DOMAIN is made under
 * .run/ — fine for trying it out, never for Meta (Meta checks the certificate).
 */
import { join, relative, resolve } from "node:path";
import { parseArgs } from "node:util";
import { buildBundle, describeSize, REPO_ROOT } from "./bundle.js";
import { startKamailio } from "./kamailio.js";
import { ConfigError, loadSiteConfig } from "./site-config.js";
import { sipPing } from "./sip-ping.js";
import { ensureSelfSignedCert } from "./tls-cert.js";

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { config: { type: "string" }, once: { type: "boolean", default: false } },
  });
  const cfg = loadSiteConfig(values.config ?? process.env.WA_CONFIG);
  const runRoot = resolve(REPO_ROOT, ".run");

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

  const kamailio = await startKamailio({ runDir: join(runRoot, "kamailio"), env });
  const stop = async () => {
    await kamailio.stop();
    process.exit(0);
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);

  const probe = await sipPing(cfg.WA_INTERNAL_IP, cfg.WA_INTERNAL_PORT);
  console.log(
    [
      `Kamailio ${(await kamailio.rpc("core.version")).trim()} is running (pid ${kamailio.pid}) with the routing bundle`,
      `  public  tls:${cfg.WA_PUBLIC_IP}:${cfg.WA_TLS_PORT}${cfg.WA_ADVERTISE_IP ? ` (advertised as ${cfg.WA_ADVERTISE_IP})` : ""}  domain ${cfg.WA_DOMAIN}  <- Meta's SIP edge`,
      `  internal udp:${cfg.WA_INTERNAL_IP}:${cfg.WA_INTERNAL_PORT}  <- media agent and internal UAs`,
      `  rtpengine ${cfg.WA_RTPENGINE_SOCK}`,
      `  permission API http://127.0.0.1:${cfg.WA_API_PORT}/permissions`,
      `  control  kamcmd -s ${kamailio.ctlSocket} app_jsdt.reload`,
      `  log      ${relative(process.cwd(), kamailio.logFile)}`,
      `OPTIONS to udp:${cfg.WA_INTERNAL_IP}:${cfg.WA_INTERNAL_PORT} answered: ${probe.status} ${probe.reason}`,
    ].join("\n"),
  );
  if (values.once) return stop();
  console.log("Ctrl-C stops it.");
  const code = await kamailio.whenExited();
  console.error(`Kamailio exited (${code}); log tail:\n${kamailio.logText().slice(-2000)}`);
  process.exit(1);
}

main().catch((err) => {
  console.error(err instanceof ConfigError ? `configuration error: ${err.message}` : (err as Error).stack);
  process.exit(1);
});
