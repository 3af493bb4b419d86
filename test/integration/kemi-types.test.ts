/** The committed KSR declarations match what the installed Kamailio exports with our cfg. */
import t from "tap";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { KEMI_DIR, readInstalledApi, renderFiles } from "../../build/gen-kemi.js";

const installed = (() => {
  try {
    execFileSync("kamailio", ["-v"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

t.test("types/kamailio-kemi has not drifted from the installed Kamailio", { skip: installed ? false : "kamailio is not installed" }, async (t) => {
  const api = await readInstalledApi();
  t.ok(api.functions.length > 500, `${api.functions.length} functions exported`);
  for (const [name, text] of Object.entries(renderFiles(api))) {
    t.equal(readFileSync(join(KEMI_DIR, name), "utf8"), text, `${name} is current (run npm run gen:kemi if not)`);
  }
});
