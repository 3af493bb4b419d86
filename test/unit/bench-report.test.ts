/** The benchmarks' statistics (bench/lib/report.ts, and the latency benchmark's engines: bench/lib/latency-engines.ts). */
import t from "tap";
import { engineTiming, enginesAtMedian, p50OverDrawnEngines } from "../../bench/lib/latency-engines.js";
import { medianInterval } from "../../bench/lib/report.js";
import { seededRandom } from "../support/malformed-corpus.js";

const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

t.test("the median's 95 % interval is the order statistics the binomial distribution gives", async (t) => {
  // n = 30: P(X ≤ 9) = 0.021 ≤ 0.025 < P(X ≤ 10) = 0.049, so the 10th and the 21st values.
  t.same(medianInterval(range(30)), [10, 21]);
  // In any order.
  t.same(medianInterval(range(30).reverse()), [10, 21]);
  // n = 6: P(X = 0) = 1/64: the smallest and the largest; n = 5 (1/32 > 0.025): none reaches 95 %.
  t.same(medianInterval(range(6)), [1, 6]);
  t.equal(medianInterval(range(5)), null);
  t.equal(medianInterval([]), null);
  // n = 100: the 40th and 61st values (P(X ≤ 39) = 0.018, P(X ≤ 40) = 0.028).
  t.same(medianInterval(range(100)), [40, 61]);
  // A lower confidence narrows it (n = 30 at 90 %: P(X ≤ 10) = 0.049 ≤ 0.05, the 11th and 20th).
  t.same(medianInterval(range(30), 0.9), [11, 20]);
});

t.test("it holds the true median about as often as it says, on samples of a skewed distribution", async (t) => {
  // Sums of three uniform delays, as the latency benchmark's engines draw them; true median 525 ms.
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const draw = () => 100 + rand() * 200 + 100 + rand() * 150 + 100 + rand() * 100;
  let held = 0;
  const trials = 2000;
  for (let i = 0; i < trials; i++) {
    const [lo, hi] = medianInterval(Array.from({ length: 30 }, draw))!;
    if (lo <= 525 && 525 <= hi) held++;
  }
  // Exact coverage for n = 30 is 1 − 2·0.0214 = 0.957.
  t.ok(held / trials > 0.94 && held / trials < 0.975, `held the median in ${held} of ${trials}`);
});

t.test("the latency benchmark's p50 over drawn engines, from the stack's shares at the medians, is what drawing gives", async (t) => {
  t.equal(enginesAtMedian("no tools"), 525);
  t.equal(enginesAtMedian("one tool round"), 700);
  // The engines' sum alone is symmetric: its median is the medians' sum; a constant share moves it by as much.
  t.ok(Math.abs(p50OverDrawnEngines("no tools", [0]) - 525) < 0.5);
  t.ok(Math.abs(p50OverDrawnEngines("no tools", [63, 63, 63]) - 588) < 0.5);
  t.ok(Math.abs(p50OverDrawnEngines("one tool round", [0]) - 700) < 0.5);
  // Skewed shares, against drawing the engines for them: the benchmark's kind (most turns ~45 ms,
  // some one or two frames more), and one far from both the shares' median (0) and mean (20).
  const rand = seededRandom(11);
  for (const shares of [[35, 40, 45, 45, 50, 60, 65, 70, 100, 110], [0, 0, 0, 0, 0, 0, 0, 0, 0, 200]]) {
    const drawn = Array.from({ length: 200_000 }, (_, i) => 100 + rand() * 200 + 100 + rand() * 150 + 100 + rand() * 100 + shares[i % shares.length]).sort((a, b) => a - b);
    const simulated = drawn[drawn.length / 2];
    const computed = p50OverDrawnEngines("no tools", shares);
    t.ok(Math.abs(computed - simulated) < 1, `shares ${shares.join(" ")}: computed ${computed.toFixed(1)} ms, drawn ${simulated.toFixed(1)} ms`);
  }
});

t.test("LATENCY_BENCH_ENGINES: drawn by default, median on request, anything else named", async (t) => {
  t.equal(engineTiming(undefined), "drawn");
  t.equal(engineTiming("median"), "median");
  t.throws(() => engineTiming("fast"), { message: 'LATENCY_BENCH_ENGINES=fast: "drawn" (the default) or "median"' });
});
