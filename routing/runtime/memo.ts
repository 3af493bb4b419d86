/**
 * Per-worker memo of a pure function of a string, for values a worker sees again and again (the
 * source URIs of Meta's edge and the agent, their User-Agents). Bounded: a flood of distinct
 * values only empties it now and then. Keys may be a peer's bytes ("hasOwnProperty",
 * "__proto__"): the table has no prototype, so every key is an ordinary property.
 */
export function memoize<T>(limit: number, compute: (key: string) => T): (key: string) => T {
  let known = table<T>();
  let count = 0;
  return (key) => {
    if (key in known) return known[key];
    if (count >= limit) {
      known = table<T>();
      count = 0;
    }
    count++;
    return (known[key] = compute(key));
  };
}

function table<T>(): { [key: string]: T } {
  return Object.create(null) as { [key: string]: T };
}
