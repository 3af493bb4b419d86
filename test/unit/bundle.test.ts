import t from "tap";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { assertEs5, buildBundle, REPO_ROOT, rethrowExitInEveryCatch } from "../../build/bundle.js";

const work = mkdtempSync(join(tmpdir(), "bundle-test-"));
t.teardown(() => rmSync(work, { recursive: true, force: true }));

t.test("the routing bundle is ES5, defines the entry callbacks and stays under 128 KiB", async (t) => {
  const out = join(work, "routing.js");
  const { bytes, code } = await buildBundle(resolve(REPO_ROOT, "routing/main.ts"), out);
  t.ok(bytes < 128 * 1024);
  t.doesNotThrow(() => assertEs5(code, "bundle"));
  // Evaluate it the way app_jsdt does: one script, callbacks looked up on the global object.
  const scope: Record<string, unknown> = {};
  new Function("globalThis", code)(scope);
  t.type(scope.ksr_request_route, "function");
  t.type(scope.ksr_reply_route, "function");
  const map = JSON.parse(readFileSync(`${out}.map`, "utf8"));
  t.ok(map.sources.includes("routing/request-route.ts"), "source map points at the TypeScript");
  // app_jsdt's KSR.x.exit()/drop() compile a one-line script on every call (~25 µs of Kamailio's
  // CPU per request in place): the routing ends its routes with endRoute()/dropMessage().
  t.notMatch(code, /KSR\.x\.(exit|drop)\b/, "no route ends through KSR.x.exit() or KSR.x.drop()");
});

t.test("every catch block rethrows the KSR.x.exit() sentinel", async (t) => {
  const out = rethrowExitInEveryCatch("try { a(); } catch (e) { log(e); }\ntry { b(); } catch (err) {}\n");
  t.equal(
    out,
    'try { a(); } catch (e) { if (e === "~~ksr~exit~~") throw e; log(e); }\ntry { b(); } catch (err) { if (err === "~~ksr~exit~~") throw err;}\n',
  );
});

t.test("ES2015 syntax is rejected with its location", async (t) => {
  t.throws(() => assertEs5("var a = 1;\nlet b = 2;\n", "x.js"), /x.js is not ES5: .*\(2:4\)/);
  t.throws(() => assertEs5("var f = () => 1;", "x.js"), /not ES5/);
});

t.test("a bundle over 128 KiB fails the build", async (t) => {
  const big = join(work, "big.ts");
  writeFileSync(big, `(globalThis as any).blob = ${JSON.stringify("x".repeat(140 * 1024))};\n`);
  await t.rejects(buildBundle(big, join(work, "big.js")), /app_jsdt truncates scripts at 131072 bytes/);
});
