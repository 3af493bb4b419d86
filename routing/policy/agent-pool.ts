/**
 * The media agents a node sends user-initiated calls to (WA_AGENT_URI): one or several SIP URIs,
 * comma-separated, each with an optional weight ("sip:10.0.0.5:5080;weight=2"). Kamailio's
 * dispatcher keeps them as set AGENT_SET (the launcher writes its list file with
 * dispatcherList), probes them and picks one per call. Pure: unit tests and the launcher call it.
 */

/** WA_AGENT_URI when unset: one agent beside Kamailio. */
export const DEFAULT_AGENT_URI = "sip:127.0.0.1:5080";

/** The dispatcher set holding the agents (kamailio.cfg, WA_DISPATCHER_LIST). */
export const AGENT_SET = 1;
/** dispatcher's algorithms (ds_select_dst): in turn, or each agent its weight's share (shuffled per 100 calls). */
export const ROUND_ROBIN = 4;
export const WEIGHTED = 9;

export interface AgentDestination {
  /** sip:host:port, without the weight. */
  uri: string;
  /** Relative share of calls, 1–100 (dispatcher's "weight" attribute). */
  weight: number;
}

const AGENT = /^(sip:[^\s;,]+)(?:;weight=(\d{1,3}))?$/;

/** Parses WA_AGENT_URI; each error names the key and the entry. */
export function parseAgentUris(text: string, errors: string[]): AgentDestination[] {
  const agents: AgentDestination[] = [];
  const entries = text.split(",");
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i].replace(/^\s+|\s+$/g, "");
    if (entry === "") continue;
    const m = AGENT.exec(entry);
    const weight = m && m[2] !== undefined ? parseInt(m[2], 10) : 1;
    if (!m || weight < 1 || weight > 100) {
      errors.push(`WA_AGENT_URI: '${entry}' is not sip:host[:port][;weight=1..100]`);
      continue;
    }
    for (let j = 0; j < agents.length; j++) {
      if (agents[j].uri === m[1]) errors.push(`WA_AGENT_URI: ${m[1]} is listed twice`);
    }
    agents.push({ uri: m[1], weight });
  }
  if (agents.length === 0 && errors.length === 0) errors.push("WA_AGENT_URI: names no agent");
  return agents;
}

/**
 * dispatcher's list file for the agents: one line per agent in set AGENT_SET, flags 0, priority
 * 0, the weight as attribute (percentages of the total, as the weight algorithm wants them).
 */
export function dispatcherList(agents: AgentDestination[]): string {
  let total = 0;
  for (let i = 0; i < agents.length; i++) total += agents[i].weight;
  const lines = ["# Written from WA_AGENT_URI at start; edit that, not this file.", "# setid destination flags priority attributes"];
  for (let i = 0; i < agents.length; i++) {
    const share = Math.max(1, Math.round((agents[i].weight * 100) / total));
    lines.push(`${AGENT_SET} ${agents[i].uri} 0 0 weight=${share}`);
  }
  return `${lines.join("\n")}\n`;
}

/** Agents of equal weight take calls in turn; otherwise each gets its weight's share. */
export function agentAlgorithm(agents: AgentDestination[]): number {
  for (let i = 1; i < agents.length; i++) if (agents[i].weight !== agents[0].weight) return WEIGHTED;
  return ROUND_ROBIN;
}

/**
 * Whether a call that one agent failed may go to the next: only when that agent could not take
 * it (a 5xx, or no answer in time: 408), and the caller has not hung up. A 4xx or 6xx is the
 * agent's answer about the call itself, and goes to the caller.
 */
export function tryNextAgent(status: number, canceled: boolean): boolean {
  return !canceled && (status === 408 || (status >= 500 && status < 600));
}
