/**
 * Where an in-dialog request would go, and whether that is one of its dialog's own peers.
 * A Route set is a claim of the sender: it may name our Record-Route and then any third host.
 * So the next hop is worked out here exactly as loose routing would (our own Routes popped,
 * then the next Route, else the Request-URI) and compared with what the dialog recorded for the
 * side the request is going to: that side's Record-Route set and Contact. Pure and ES5-only.
 */

/** The URIs in Route/Record-Route header values, in order ("<a>, <b>" and one per header alike). */
export function routeUris(values: string[]): string[] {
  const out: string[] = [];
  for (const value of values) {
    const re = /<([^>]*)>/g;
    let m: RegExpExecArray | null;
    let found = false;
    while ((m = re.exec(value)) !== null) {
      out.push(m[1]);
      found = true;
    }
    if (!found) {
      for (const part of value.split(",")) {
        const uri = trim(part);
        if (uri) out.push(uri);
      }
    }
  }
  return out;
}

export type NextHop = { ok: true; uri: string } | { ok: false; cause: string };

/**
 * The next hop after loose routing: the request's first Route must be ours (a request that
 * does not come through our Record-Route is not routed by us), our Routes are skipped, then
 * the next Route or the Request-URI is where it would go.
 */
export function nextHopAfterOurRoutes(routes: string[], requestUri: string, isOurs: (uri: string) => boolean): NextHop {
  if (routes.length === 0) return { ok: false, cause: "no Route through us" };
  if (!isOurs(routes[0])) return { ok: false, cause: `its first Route <${routes[0]}> is not ours` };
  let i = 0;
  while (i < routes.length && isOurs(routes[i])) i++;
  return { ok: true, uri: i < routes.length ? routes[i] : requestUri };
}

export interface HopAddress {
  host: string;
  port: number;
}

/** Host and port of a sip:/sips: URI (defaults 5060, 5061 for TLS), or null. */
export function hopAddress(uri: string): HopAddress | null {
  const m = /^sips?:(?:[^@;>]*@)?(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?([;?][^>]*)?$/.exec(trim(uri));
  if (!m) return null;
  const tls = /^sips:/i.test(uri) || /;transport=tls/i.test(m[3] || "");
  return { host: m[1].toLowerCase(), port: m[2] ? parseInt(m[2], 10) : tls ? 5061 : 5060 };
}

/** Whether `uri` is the same host and port as one of `peers` (the dialog's recorded hops). */
export function isDialogPeer(uri: string, peers: string[]): boolean {
  const hop = hopAddress(uri);
  if (!hop) return false;
  for (const p of peers) {
    const peer = hopAddress(p);
    if (peer && peer.host === hop.host && peer.port === hop.port) return true;
  }
  return false;
}

function trim(s: string): string {
  return s.replace(/^\s+|\s+$/g, "");
}
