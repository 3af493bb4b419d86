/**
 * The pool of media agents behind dispatcher (set AGENT_SET, probed with OPTIONS: kamailio.cfg).
 * Trust: the pool is the operator's list (WA_AGENT_URI); nothing in a request chooses the agent.
 *
 *   selectAgent ─► relay ─► (5xx or no answer in AGENT_FIRST_REPLY_MS) ─► nextAgent ─► relay …
 */
import { AGENT_SET, agentAlgorithm, type AgentDestination } from "../policy/agent-pool";
import { pvString } from "../ksr/pv";

/**
 * How long an agent has to send its first reply (the agent answers 100 Trying at once): one that
 * does not is taken for dead and the call moves on, long before tm's 30 s fr_timer.
 */
export const AGENT_FIRST_REPLY_MS = 2000;

/**
 * Puts the call's next hop on an agent that answers probes; null when none does. With another
 * agent to go to, a silent one is given up after AGENT_FIRST_REPLY_MS; a lone agent gets tm's
 * own fr_timer (a busy moment of its event loop must not cost the call).
 */
export function selectAgent(agents: AgentDestination[]): string | null {
  if (KSR.dispatcher.ds_select_dst(AGENT_SET, agentAlgorithm(agents)) < 0) return null;
  if (agents.length > 1) KSR.tm.t_set_fr(0, AGENT_FIRST_REPLY_MS);
  return pvString("$du");
}

/**
 * In the failure route: the next agent becomes the call's next hop; null when there is none left.
 * The failed agent is not marked here: the probes decide who is up (a 503 may be one busy moment,
 * and with probing off a mark would never be lifted).
 */
export function nextAgent(): { failed: string; next: string } | null {
  const failed = pvString("$du");
  if (KSR.dispatcher.ds_next_dst() < 0) return null;
  KSR.tm.t_set_fr(0, AGENT_FIRST_REPLY_MS);
  return { failed, next: pvString("$du") };
}
