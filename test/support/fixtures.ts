/** Real SIP message texts from test/fixtures/sip, with optional header edits for a case. */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { REPO_ROOT } from "../../build/bundle.js";

export function sipFixture(name: string): string {
  return readFileSync(resolve(REPO_ROOT, "test/fixtures/sip", `${name}.sip`), "utf8");
}

/** Replaces (or with value null removes) a header line in a message text. */
export function withHeader(text: string, name: string, value: string | null): string {
  const re = new RegExp(`^${name}:.*\\r\\n`, "im");
  if (value === null) return text.replace(re, "");
  return re.test(text) ? text.replace(re, `${name}: ${value}\r\n`) : text.replace("\r\n", `\r\n${name}: ${value}\r\n`);
}
