/** Self-signed certificates for a local stack and for tests (never for production). */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";

export interface CertPair {
  cert: string;
  key: string;
}

/** Creates `<name>.crt`/`<name>.key` in dir for the given host names unless they exist. */
export function ensureSelfSignedCert(dir: string, name: string, hostnames: string[]): CertPair {
  mkdirSync(dir, { recursive: true });
  const pair = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  if (existsSync(pair.cert) && existsSync(pair.key)) return pair;
  const san = hostnames.map((h) => (/^[\d.]+$|:/.test(h) ? `IP:${h}` : `DNS:${h}`)).join(",");
  execFileSync(
    "openssl",
    ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "825", "-subj", `/CN=${hostnames[0]}`,
     "-addext", `subjectAltName=${san}`, "-keyout", pair.key, "-out", pair.cert],
    { stdio: "pipe" },
  );
  return pair;
}
