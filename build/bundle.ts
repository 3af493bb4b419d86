/**
 * Bundles routing/ into one ES5 file for Kamailio's app_jsdt (Duktape 2.7).
 *
 *   TypeScript ──esbuild (bundle, tree-shake)──► ES2017 ──TypeScript transpile──► ES5
 *     ──► every `catch` rethrows KSR.x.exit()'s sentinel ──► parsed as ES5 ──► ≤ 128 KiB
 *
 * esbuild cannot lower to ES5, so TypeScript's own transpiler does that step. The output
 * stays unminified (function names survive into Duktape's stack traces), a source map lands
 * beside it, and a compact line table is appended so that routing errors logged by Kamailio
 * name the TypeScript file and line (see routing/runtime/errors.ts).
 */
import { build } from "esbuild";
import ts from "typescript";
import * as acorn from "acorn";
import remapping from "@jridgewell/remapping";
import { TraceMap, originalPositionFor } from "@jridgewell/trace-mapping";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { EXIT_SENTINEL } from "../routing/runtime/route-end.js";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const DEFAULT_ENTRY = resolve(REPO_ROOT, "routing/main.ts");
export const DEFAULT_OUT = resolve(REPO_ROOT, "build/out/routing.js");

/** app_jsdt 5.6 reads the script into a fixed 128 KiB buffer and silently truncates beyond. */
export const BUNDLE_LIMIT_BYTES = 128 * 1024;
/** Name of the appended line table that routing/runtime/errors.ts reads. */
export const LINE_TABLE_GLOBAL = "__routingLineTable";

export interface BundleResult {
  outFile: string;
  bytes: number;
  code: string;
}

export class BundleError extends Error {}

export async function buildBundle(entry = DEFAULT_ENTRY, outFile = DEFAULT_OUT): Promise<BundleResult> {
  const bundled = await build({
    entryPoints: [entry],
    bundle: true,
    format: "iife",
    platform: "neutral",
    target: "es2017",
    write: false,
    sourcemap: "external",
    outfile: outFile,
    legalComments: "none",
    charset: "ascii",
    logLevel: "silent",
  });
  const esbuildCode = bundled.outputFiles.find((f) => f.path.endsWith(".js"))!.text;
  const esbuildMap = bundled.outputFiles.find((f) => f.path.endsWith(".map"))!.text;

  const es5 = ts.transpileModule(esbuildCode, {
    fileName: "routing.js",
    compilerOptions: {
      target: ts.ScriptTarget.ES5,
      module: ts.ModuleKind.None,
      allowJs: true,
      sourceMap: true,
      removeComments: false,
      alwaysStrict: false,
    },
  });
  const withRethrow = rethrowExitInEveryCatch(es5.outputText);
  const map = remapping([JSON.parse(es5.sourceMapText!), JSON.parse(esbuildMap)], () => null);
  map.file = "routing.js";
  map.sources = map.sources.map((s) => (s ? relative(REPO_ROOT, resolve(dirname(outFile), s)) : s));

  const code = `${withRethrow.replace(/\n\/\/# sourceMappingURL=.*\s*$/, "\n")}${lineTableSource(withRethrow, map)}`;
  assertEs5(code, outFile);
  const bytes = Buffer.byteLength(code);
  if (bytes >= BUNDLE_LIMIT_BYTES) {
    throw new BundleError(
      `${relative(REPO_ROOT, outFile)} is ${bytes} bytes; app_jsdt truncates scripts at ${BUNDLE_LIMIT_BYTES} bytes (128 KiB)`,
    );
  }
  mkdirSync(dirname(outFile), { recursive: true });
  writeFileSync(outFile, code);
  writeFileSync(`${outFile}.map`, JSON.stringify(map));
  return { outFile, bytes, code };
}

/**
 * Inserts `if (e === "~~ksr~exit~~") throw e;` at the top of every catch block, so no
 * try/catch anywhere in the routing (or in code it imports) can swallow the end of a route
 * (endRoute(), dropMessage(), KSR.x.exit()).
 * Insertions stay on the catch's own line, so line numbers and the source map still hold.
 */
export function rethrowExitInEveryCatch(es5Code: string): string {
  const inserts: Array<{ at: number; text: string }> = [];
  walk(acorn.parse(es5Code, { ecmaVersion: 5 }), (node) => {
    if (node.type === "CatchClause") {
      const param = (node as unknown as { param: { name: string }; body: acorn.Node }).param.name;
      const body = (node as unknown as { body: acorn.Node }).body;
      inserts.push({ at: body.start + 1, text: ` if (${param} === ${JSON.stringify(EXIT_SENTINEL)}) throw ${param};` });
    }
  });
  let out = es5Code;
  for (const ins of inserts.sort((a, b) => b.at - a.at)) out = out.slice(0, ins.at) + ins.text + out.slice(ins.at);
  return out;
}

function walk(node: acorn.Node, visit: (n: acorn.Node) => void): void {
  visit(node);
  for (const value of Object.values(node)) {
    const children = Array.isArray(value) ? value : [value];
    for (const child of children) {
      if (child && typeof child === "object" && typeof (child as acorn.Node).type === "string") walk(child, visit);
    }
  }
}

/**
 * Runs of bundle lines that map to consecutive lines of one TypeScript file, as
 * `[bundleLine, sourceIndex, sourceLine, …]`. A few hundred numbers for the whole routing.
 */
function lineTableSource(code: string, map: ReturnType<typeof remapping>): string {
  const tracer = new TraceMap(map as never);
  const sources: string[] = [];
  const runs: number[] = [];
  let prev: { source: number; line: number; bundleLine: number } | undefined;
  code.split("\n").forEach((text, i) => {
    const bundleLine = i + 1;
    const column = Math.max(0, text.search(/\S/));
    const pos = originalPositionFor(tracer, { line: bundleLine, column });
    if (!pos.source || pos.line == null) return;
    let source = sources.indexOf(pos.source);
    if (source < 0) source = sources.push(pos.source) - 1;
    const continues =
      prev && prev.source === source && pos.line - prev.line === bundleLine - prev.bundleLine;
    if (!continues) runs.push(bundleLine, source, pos.line);
    prev = { source, line: pos.line, bundleLine };
  });
  return `var ${LINE_TABLE_GLOBAL} = ${JSON.stringify({ sources, runs })};\n`;
}

/** Fails with the position of the first construct Duktape's ES5 parser would reject. */
export function assertEs5(code: string, label: string): void {
  try {
    acorn.parse(code, { ecmaVersion: 5, sourceType: "script" });
  } catch (err) {
    const e = err as SyntaxError & { loc?: { line: number; column: number } };
    const line = e.loc ? code.split("\n")[e.loc.line - 1] : "";
    throw new BundleError(`${label} is not ES5: ${e.message}\n  ${line?.trim()}`);
  }
}

export function describeSize(bytes: number): string {
  const pct = ((bytes / BUNDLE_LIMIT_BYTES) * 100).toFixed(1);
  return `${(bytes / 1024).toFixed(1)} KiB of ${BUNDLE_LIMIT_BYTES / 1024} KiB (${pct}%)`;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [entryArg, outArg] = process.argv.slice(2);
  buildBundle(entryArg ? resolve(entryArg) : DEFAULT_ENTRY, outArg ? resolve(outArg) : DEFAULT_OUT).then(
    (r) => console.log(`routing bundle: ${relative(process.cwd(), r.outFile)} ${describeSize(r.bytes)}, ES5 ok`),
    (err) => {
      console.error(`routing bundle FAILED: ${err instanceof BundleError ? err.message : (err as Error).stack}`);
      process.exit(1);
    },
  );
}
