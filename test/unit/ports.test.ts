/**
 * build/ports.ts's single ports: a test picks several before any of its daemons binds one, so
 * one still free must not be handed out twice (Kamailio's TLS port was once bound by another part
 * of the same set-up first). And its media blocks: rtpengine's and the agent's are chosen one after the other for
 * one stack, and each daemon binds its ports only as calls arrive, so the blocks themselves must
 * not overlap (when they did, about one stack in eight, the soak's calls failed with the agent's
 * "no free RTP port pair" as rtpengine took the shared ports).
 */
import t from "tap";
import { freePort, freePortRange } from "../../build/ports.js";

const overlap = (a: { min: number; max: number }, b: { min: number; max: number }) => a.min <= b.max && b.min <= a.max;

t.test("blocks handed out one after the other never overlap", async (t) => {
  // 40 stacks of the soak's sizes: random blocks would overlap in nearly every such run.
  const blocks: Array<{ min: number; max: number }> = [];
  for (let i = 0; i < 40; i++) blocks.push(await freePortRange(800), await freePortRange(400));
  let clashes = 0;
  for (let i = 0; i < blocks.length; i += 2) if (overlap(blocks[i], blocks[i + 1])) clashes++;
  t.equal(clashes, 0, "no stack's rtpengine block overlaps its agent block");
  // The last blocks handed out (up to half of the space) are all apart from each other.
  const recent = blocks.slice(-6);
  t.notOk(recent.some((a, i) => recent.some((b, j) => i !== j && overlap(a, b))), "the six most recent blocks are pairwise apart");
  for (const b of blocks) t.ok(b.min % 2 === 0 && b.min >= 10000 && b.max < 20000, `block ${b.min}-${b.max}: even start, within 10000–19999`);
});

t.test("concurrent requests get blocks apart from each other", async (t) => {
  const blocks = await Promise.all(Array.from({ length: 6 }, () => freePortRange(600)));
  t.notOk(blocks.some((a, i) => blocks.some((b, j) => i !== j && overlap(a, b))), "six blocks asked for at once are pairwise apart");
});

t.test("a single port is handed out once, also to requests at the same time", async (t) => {
  // 300 ports of 10000 drawn at random repeat one in 99 runs of 100 (1 − e^(−300²/20000)).
  const ports = [...(await Promise.all(Array.from({ length: 150 }, () => freePort())))];
  for (let i = 0; i < 150; i++) ports.push(await freePort());
  t.equal(new Set(ports).size, ports.length, `${ports.length} ports, all different`);
  t.ok(ports.every((p) => p >= 20000 && p < 30000), "all in 20000–29999");
});
