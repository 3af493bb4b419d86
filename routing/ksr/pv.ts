/** Typed access to pseudo-variables (KSR.pv.get returns string | number | null). */

/** The value as a string; "" when the variable is unset. */
export function pvString(name: string): string {
  const v = KSR.pv.get(name);
  return v === null ? "" : String(v);
}

