/** A throw-away certificate authority made at test time, and certificates it signs. */
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

export interface TestCa {
  dir: string;
  cert: string;
  key: string;
}

const openssl = (args: string[]) => execFileSync("openssl", args, { stdio: "pipe" });

export function createTestCa(dir: string): TestCa {
  const ca = { dir, cert: join(dir, "ca.crt"), key: join(dir, "ca.key") };
  openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Test WhatsApp CA",
    "-keyout", ca.key, "-out", ca.cert]);
  return ca;
}

/** A server certificate for the host names/addresses, signed by the test CA. */
export function issueCert(ca: TestCa, name: string, hosts: string[]): { cert: string; key: string } {
  const out = { cert: join(ca.dir, `${name}.crt`), key: join(ca.dir, `${name}.key`) };
  const csr = join(ca.dir, `${name}.csr`);
  const ext = join(ca.dir, `${name}.ext`);
  writeFileSync(ext, `subjectAltName=${hosts.map((h) => (/^[\d.]+$/.test(h) ? `IP:${h}` : `DNS:${h}`)).join(",")}\n`);
  openssl(["req", "-newkey", "rsa:2048", "-nodes", "-subj", `/CN=${hosts[0]}`, "-keyout", out.key, "-out", csr]);
  openssl(["x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key, "-CAcreateserial", "-days", "2",
    "-extfile", ext, "-out", out.cert]);
  return out;
}
