/** IPv4/IPv6 prefix matching for source-address checks. Pure and ES5-only. */

/** The address as 16-bit groups (IPv4: 2 groups), or null if it is not an address. */
function groups(ip: string): number[] | null {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(ip)) {
    const o = ip.split(".").map((x) => parseInt(x, 10));
    for (const v of o) if (v > 255) return null;
    return [o[0] * 256 + o[1], o[2] * 256 + o[3]];
  }
  if (ip.indexOf(":") < 0 || !/^[0-9a-f:]+$/i.test(ip)) return null;
  const halves = ip.split("::");
  if (halves.length > 2) return null;
  const head = halves[0] ? halves[0].split(":") : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(":") : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  const out: number[] = [];
  for (const h of head) out.push(parseInt(h, 16));
  for (let i = 0; i < missing && halves.length === 2; i++) out.push(0);
  for (const h of tail) out.push(parseInt(h, 16));
  for (const v of out) if (isNaN(v) || v > 0xffff) return null;
  return out;
}

/** Whether "a.b.c.d/n" or "x::/n" is a well-formed prefix. */
export function isCidr(cidr: string): boolean {
  const [addr, bits] = cidr.split("/");
  const g = groups(addr);
  const n = Number(bits);
  return g !== null && bits !== undefined && /^\d+$/.test(bits) && n <= g.length * 16;
}

export function ipInCidr(ip: string, cidr: string): boolean {
  const a = groups(ip);
  const c = compile(cidr);
  return a !== null && c !== null && inCompiled(a, c);
}

/** A prefix as the comparison needs it: its address groups and prefix length. */
interface CompiledCidr {
  groups: number[];
  bits: number;
}

function compile(cidr: string): CompiledCidr | null {
  const [addr, bitsText] = cidr.split("/");
  const g = groups(addr);
  return g ? { groups: g, bits: bitsText === undefined ? g.length * 16 : parseInt(bitsText, 10) } : null;
}

function inCompiled(a: number[], c: CompiledCidr): boolean {
  if (a.length !== c.groups.length) return false;
  let bits = c.bits;
  for (let i = 0; i < a.length && bits > 0; i++, bits -= 16) {
    const mask = bits >= 16 ? 0xffff : (0xffff << (16 - bits)) & 0xffff;
    if ((a[i] & mask) !== (c.groups[i] & mask)) return false;
  }
  return true;
}

/**
 * Prefix lists compiled once: the settings' lists (WA_META_PREFIXES, WA_INTERNAL_ALLOW) are the
 * same arrays for a worker's whole life, so each is parsed on first use, not per request. Lists
 * are treated as immutable; a few are remembered (unit tests pass fresh ones).
 */
const compiledLists: Array<{ list: string[]; cidrs: Array<CompiledCidr | null> }> = [];

function compiledList(cidrs: string[]): Array<CompiledCidr | null> {
  for (const entry of compiledLists) if (entry.list === cidrs) return entry.cidrs;
  const entry = { list: cidrs, cidrs: cidrs.map(compile) };
  if (compiledLists.length >= 8) compiledLists.shift();
  compiledLists.push(entry);
  return entry.cidrs;
}

export function ipInAnyCidr(ip: string, cidrs: string[]): boolean {
  const list = compiledList(cidrs);
  const a = list.length ? groups(ip) : null;
  if (!a) return false;
  for (const c of list) if (c && inCompiled(a, c)) return true;
  return false;
}
