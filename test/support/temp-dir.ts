/** A temp dir removed when the test ends (kept with WA_KEEP_TEST_DIRS=1, to look at a failure). */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Teardown } from "../../build/teardown.js";

export function tempDir(t: Teardown, prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  if (!process.env.WA_KEEP_TEST_DIRS) t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
