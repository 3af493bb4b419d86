/**
 * Is this request from Meta's SIP edge? X-FB-External-Domain is only a hint anyone can forge,
 * so Meta traffic must also arrive over TLS from Meta's prefixes. Each failing check has its
 * own answer, so a log line or a trace says which one failed.
 */
import { ipInAnyCidr } from "./cidr";

export interface ArrivalFacts {
  proto: string;
  srcIp: string;
  /** X-FB-External-Domain, or null when absent. */
  externalDomain: string | null;
}

export interface EdgeSettings {
  metaPrefixes: string[];
  metaDomain: string;
}

export type EdgeVerdict = { fromMeta: true } | { fromMeta: false; code: number; reason: string; cause: string };

export function isFromMeta(facts: ArrivalFacts, settings: EdgeSettings): EdgeVerdict {
  const claimsMeta = facts.externalDomain !== null;
  if (facts.proto !== "tls") {
    return {
      fromMeta: false,
      code: 403,
      reason: claimsMeta ? "Meta Traffic Must Use TLS" : "Not From Meta Edge",
      cause: `arrived over ${facts.proto}, Meta uses TLS only`,
    };
  }
  if (!ipInAnyCidr(facts.srcIp, settings.metaPrefixes)) {
    return {
      fromMeta: false,
      code: 403,
      reason: "Not From Meta Edge",
      cause: `source ${facts.srcIp} is outside the Meta prefixes${claimsMeta ? " (X-FB-External-Domain forged?)" : ""}`,
    };
  }
  if (facts.externalDomain !== settings.metaDomain) {
    return {
      fromMeta: false,
      code: 403,
      reason: "Bad X-FB-External-Domain",
      cause: `X-FB-External-Domain is ${claimsMeta ? `'${facts.externalDomain}'` : "missing"}, expected '${settings.metaDomain}'`,
    };
  }
  return { fromMeta: true };
}
