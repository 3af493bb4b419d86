/**
 * A sampling heap profile (bench/lib/heap-profile-preload.ts) summarised for a terminal: the
 * allocation sites that the old generation collected the most bytes of, each named by its
 * last three frames (the source positions are those tsx compiled, hence often ":1").
 */
import { readFileSync } from "node:fs";
import type { Profiler } from "node:inspector";

type Node = Profiler.ProfileNode & { children: Node[] };
interface SamplingHeapProfile {
  head: Node;
  samples: Array<{ size: number; nodeId: number }>;
}

/** The sampled bytes in all (live at the end, or collected by a mark-compact) and the top `count` sites' shares. */
export function topAllocationSites(file: string, count: number): { totalMb: number; sites: Array<{ site: string; sharePct: number }> } {
  const profile = JSON.parse(readFileSync(file, "utf8")) as SamplingHeapProfile;
  const stacks = new Map<number, string[]>();
  const walk = (node: Node, stack: string[]) => {
    const f = node.callFrame;
    const here = [...stack, `${f.functionName || "(anonymous)"} ${f.url.split("/").slice(-2).join("/")}:${f.lineNumber + 1}`];
    stacks.set(node.id, here);
    for (const child of node.children) walk(child, here);
  };
  walk(profile.head, []);
  const bytes = new Map<string, number>();
  let total = 0;
  for (const sample of profile.samples) {
    const site = (stacks.get(sample.nodeId) ?? ["?"]).slice(-3).join(" < ");
    bytes.set(site, (bytes.get(site) ?? 0) + sample.size);
    total += sample.size;
  }
  const sites = [...bytes]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([site, n]) => ({ site, sharePct: Math.round((n / Math.max(1, total)) * 1000) / 10 }));
  return { totalMb: Math.round(total / 1e5) / 10, sites };
}
