/** The routing's compiler settings turn Duktape-incompatible code into type errors. */
import t from "tap";
import ts from "typescript";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { REPO_ROOT } from "../../build/bundle.js";

const work = mkdtempSync(join(tmpdir(), "typecheck-test-"));
t.teardown(() => rmSync(work, { recursive: true, force: true }));

function diagnosticsFor(source: string): string[] {
  const configPath = resolve(REPO_ROOT, "routing/tsconfig.json");
  const parsed = ts.getParsedCommandLineOfConfigFile(configPath, {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} })!;
  const probe = join(work, `probe-${Math.random().toString(36).slice(2)}.ts`);
  writeFileSync(probe, source);
  const program = ts.createProgram([...parsed.fileNames, probe], parsed.options);
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const where = d.file ? `${d.file.fileName.replace(work, "<probe>")}:` : "";
    return `${where} TS${d.code}: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`;
  });
}

t.test("the routing as committed type-checks", async (t) => {
  t.same(diagnosticsFor("export {};\n"), []);
});

t.test("a KEMI function Kamailio 5.6 does not export is a type error", async (t) => {
  const errors = diagnosticsFor('KSR.hdr.append_hf("X-Test: 1\\r\\n");\nexport {};\n');
  t.match(errors.join("\n"), /TS2551: Property 'append_hf' does not exist on type 'typeof hdr'/);
});

t.test("wrong KEMI parameter types and counts are type errors", async (t) => {
  t.match(diagnosticsFor('KSR.sl.sl_send_reply("200", "OK");\nexport {};\n').join("\n"), /TS2345/);
  t.match(diagnosticsFor("KSR.sl.sl_send_reply(200);\nexport {};\n").join("\n"), /TS2554/);
});

t.test("ES2015+ built-ins Duktape lacks are type errors", async (t) => {
  t.match(diagnosticsFor("const m = new Map<string, number>();\nexport { m };\n").join("\n"), /Cannot find name 'Map'/);
  t.match(diagnosticsFor("export const p = Promise.resolve(1);\n").join("\n"), /'Promise' only refers to a type, but is being used as a value/);
  t.match(diagnosticsFor("export const f = [1, 2].find((x) => x > 1);\n").join("\n"), /Property 'find' does not exist/);
});
