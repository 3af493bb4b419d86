import t from "tap";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadSiteConfig, parseEnvFile } from "../../build/site-config.js";

const work = mkdtempSync(join(tmpdir(), "site-config-"));
t.teardown(() => rmSync(work, { recursive: true, force: true }));

t.test("defaults apply when nothing is set", async (t) => {
  const cfg = loadSiteConfig(undefined, {});
  t.equal(cfg.WA_TLS_PORT, 5061);
  t.equal(cfg.WA_INTERNAL_PORT, 5070);
  t.equal(cfg.WA_DOMAIN, "sip.example.com");
});

t.test("an env file is read and the environment wins over it", async (t) => {
  const file = join(work, "site.env");
  writeFileSync(file, '# site\nWA_DOMAIN="voice.example.net"\nexport WA_TLS_PORT=5062\n');
  const cfg = loadSiteConfig(file, { WA_TLS_PORT: "5063", PATH: "/usr/bin" });
  t.equal(cfg.WA_DOMAIN, "voice.example.net");
  t.equal(cfg.WA_TLS_PORT, 5063);
});

t.test("each bad value is reported with its key", async (t) => {
  t.throws(
    () => loadSiteConfig(undefined, { WA_TLS_PORT: "99999", WA_PUBLIC_IP: "meta.example", WA_TLS_CERT: "/nonexistent.crt" }),
    /WA_PUBLIC_IP="meta.example": must be an IPv4 or IPv6 address[\s\S]*WA_TLS_PORT="99999"[\s\S]*WA_TLS_CERT="\/nonexistent.crt": file does not exist/,
  );
  t.throws(() => loadSiteConfig(undefined, { WA_TSL_PORT: "5061" }), /unknown setting WA_TSL_PORT/);
  t.throws(() => parseEnvFile("WA_DOMAIN=x\nnonsense line\n", "site.env"), /site.env:2: expected KEY=VALUE/);
});

t.test("certificate and key go together", async (t) => {
  const cert = join(work, "c.crt");
  writeFileSync(cert, "x");
  t.throws(() => loadSiteConfig(undefined, { WA_TLS_CERT: cert }), /WA_TLS_CERT and WA_TLS_KEY must be set together/);
});

t.test("the routing's own settings are accepted and checked by the routing's parser", async (t) => {
  const cfg = loadSiteConfig(undefined, { WA_NUMBERS: "+15550001111=sales", WA_SIP_PASSWORDS: "+15550001111=pw" });
  t.same(cfg.routing, { WA_NUMBERS: "+15550001111=sales", WA_SIP_PASSWORDS: "+15550001111=pw" });
  t.throws(() => loadSiteConfig(undefined, { WA_NUMBERS: "sales" }), /WA_NUMBERS: 'sales' is not \+E164=profile/);
  t.same(loadSiteConfig(undefined, { WA_INTERNAL_ALLOW: "10.0.0.0/24, 10.9.9.9" }).routing, { WA_INTERNAL_ALLOW: "10.0.0.0/24, 10.9.9.9" });
  t.throws(() => loadSiteConfig(undefined, { WA_INTERNAL_ALLOW: "10.0.0.0/99" }), /WA_INTERNAL_ALLOW: '10.0.0.0\/99' is not an address or prefix/);
});
