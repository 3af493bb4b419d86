/**
 * Where an in-dialog request would go, and whether that is one of its dialog's own peers.
 * A Route set is a claim of the sender: it may name our Record-Route and then any third host.
 * So the next hop is worked out here exactly as loose routing would (our own Routes popped,
 * then the next Route, else the Request-URI) and compared with what the dialog recorded for the
 * side the request is going to: that side's Record-Route set and Contact. Pure and ES5-only.
 *
 * This runs for every ACK and BYE, and Duktape's regular expressions cost microseconds each
 * (a `<…>` scan of a Route value ~3 µs, a URI match ~2 µs): the scans here use indexOf and
 * slice, and the one URI expression runs only where a host and port must be compared.
 */
import { memoize } from "../runtime/memo";

/** The URIs in Route/Record-Route header values, in order ("<a>, <b>" and one per header alike). */
export function routeUris(values: string[]): string[] {
  const out: string[] = [];
  for (const value of values) {
    // Each "<" up to the next ">" (what /<([^>]*)>/g finds); a value without any is a bare list.
    let open = value.indexOf("<");
    let close = open < 0 ? -1 : value.indexOf(">", open + 1);
    if (close < 0) {
      for (const part of value.split(",")) {
        const uri = part.trim();
        if (uri) out.push(uri);
      }
      continue;
    }
    while (open >= 0 && close >= 0) {
      out.push(value.slice(open + 1, close));
      open = value.indexOf("<", close + 1);
      close = open < 0 ? -1 : value.indexOf(">", open + 1);
    }
  }
  return out;
}

/** Where loose routing sends the request: a Route after ours, or (none left) the Request-URI. */
export type NextHop = { ok: true; uri: string; isRequestUri: boolean } | { ok: false; cause: string };

/**
 * The next hop after loose routing: the request's first Route must be ours (a request that
 * does not come through our Record-Route is not routed by us), our Routes are skipped, then
 * the next Route or the Request-URI is where it would go. The Request-URI is read only then.
 */
export function nextHopAfterOurRoutes(routes: string[], requestUri: () => string, isOurs: (uri: string) => boolean): NextHop {
  if (routes.length === 0) return { ok: false, cause: "no Route through us" };
  if (!isOurs(routes[0])) return { ok: false, cause: `its first Route <${routes[0]}> is not ours` };
  let i = 1;
  while (i < routes.length && isOurs(routes[i])) i++;
  return i < routes.length ? { ok: true, uri: routes[i], isRequestUri: false } : { ok: true, uri: requestUri(), isRequestUri: true };
}

export interface HopAddress {
  host: string;
  port: number;
}

const SIP_URI = /^sips?:(?:[^@;>]*@)?(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?([;?][^>]*)?$/;

/**
 * hopAddress, once per URI and worker: the hops compared are the same few again and again (the
 * agent's Contact, Meta's Record-Routes), while our own Routes, unique per call (ftag), are
 * never parsed here. The result is shared: callers only read it.
 */
const knownHop = memoize(256, parseHopAddress);

/** Host and port of a sip:/sips: URI (defaults 5060, 5061 for TLS), or null. */
export function hopAddress(uri: string): HopAddress | null {
  return knownHop(uri);
}

function parseHopAddress(uri: string): HopAddress | null {
  const m = SIP_URI.exec(uri.trim());
  if (!m) return null;
  if (m[2]) return { host: m[1].toLowerCase(), port: parseInt(m[2], 10) };
  const tls = /^sips:/i.test(uri) || /;transport=tls/i.test(m[3] || "");
  return { host: m[1].toLowerCase(), port: tls ? 5061 : 5060 };
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
