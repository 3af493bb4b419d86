/**
 * Readable errors for the Kamailio log. Duktape's stack names bundle lines
 * ("at relay (eval:212)"); the build appends a line table so they read as TypeScript
 * ("at relay (routing/request-route.ts:48)").
 */

/** Appended by build/bundle.ts: runs of [bundleLine, sourceIndex, sourceLine, …]. */
declare var __routingLineTable: { sources: string[]; runs: number[] } | undefined;

/** Maps a bundle line to "file.ts:line", or undefined when the table does not cover it. */
export function sourceLocation(
  bundleLine: number,
  table: { sources: string[]; runs: number[] } | undefined,
): string | undefined {
  if (!table) return undefined;
  let found = -1;
  for (let i = 0; i < table.runs.length; i += 3) {
    if (table.runs[i] > bundleLine) break;
    found = i;
  }
  if (found < 0) return undefined;
  const runs = table.runs;
  return `${table.sources[runs[found + 1]]}:${runs[found + 2] + bundleLine - runs[found]}`;
}

/** One log entry naming the callback, the error and its stack in TypeScript terms. */
export function describeError(callback: string, err: unknown): string {
  const table = typeof __routingLineTable === "undefined" ? undefined : __routingLineTable;
  const e = err as { message?: unknown; stack?: unknown; name?: unknown };
  const headline = e && typeof e.message === "string" ? `${String(e.name || "Error")}: ${e.message}` : String(err);
  const stack = e && typeof e.stack === "string" ? e.stack : "";
  const frames = stack
    .split("\n")
    .slice(1)
    .filter((line) => line.indexOf("(duk_") < 0)
    .map((line) =>
      line.replace(/\(eval:(\d+)\)/, (whole, n: string) => {
        const where = sourceLocation(parseInt(n, 10), table);
        return where ? `(${where})` : whole;
      }),
    );
  return `routing error in ${callback}: ${headline}${frames.length ? `\n${frames.join("\n")}` : ""}\n`;
}
