/**
 * Is this INVITE from Meta's SIP edge? X-FB-External-Domain is only a hint anyone can forge,
 * so Meta traffic must also arrive over TLS from Meta's prefixes: the source class reqinit
 * decided from the listener and the address (policy/trust.ts), not decided again here. Each
 * failing check has its own answer, so a log line or a trace says which one failed.
 */
import type { SourceClass } from "./trust";

export interface ArrivalFacts {
  proto: string;
  srcIp: string;
  /** Who sent it, by listener and address (classifySource): "meta" is TLS from WA_META_PREFIXES. */
  source: SourceClass;
  /** Every X-FB-External-Domain header's value, in order (none: absent). */
  externalDomains: string[];
}

export interface EdgeSettings {
  metaDomain: string;
}

export type EdgeVerdict = { fromMeta: true } | { fromMeta: false; code: number; reason: string; cause: string };

export function isFromMeta(facts: ArrivalFacts, settings: EdgeSettings): EdgeVerdict {
  const claimsMeta = facts.externalDomains.length > 0;
  if (facts.proto !== "tls") {
    return {
      fromMeta: false,
      code: 403,
      reason: claimsMeta ? "Meta Traffic Must Use TLS" : "Not From Meta Edge",
      cause: `arrived over ${facts.proto}, Meta uses TLS only`,
    };
  }
  if (facts.source !== "meta") {
    return {
      fromMeta: false,
      code: 403,
      reason: "Not From Meta Edge",
      cause: `source ${facts.srcIp} is outside the Meta prefixes${claimsMeta ? " (X-FB-External-Domain forged?)" : ""}`,
    };
  }
  // Exactly one header with exactly the configured value: a second one (even the same value)
  // means someone on the way added or repeated it.
  if (facts.externalDomains.length !== 1 || facts.externalDomains[0] !== settings.metaDomain) {
    const seen = facts.externalDomains.length > 1 ? `present ${facts.externalDomains.length} times ('${facts.externalDomains.join("', '")}')` : claimsMeta ? `'${facts.externalDomains[0]}'` : "missing";
    return {
      fromMeta: false,
      code: 403,
      reason: "Bad X-FB-External-Domain",
      cause: `X-FB-External-Domain is ${seen}, expected once with '${settings.metaDomain}'`,
    };
  }
  return { fromMeta: true };
}
