/** The benchmarks' statistics (bench/lib/report.ts). */
import t from "tap";
import { medianInterval } from "../../bench/lib/report.js";

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
