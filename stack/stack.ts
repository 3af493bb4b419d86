/**
 * The stack as supervised daemons: rtpengine, then the media agent, then Kamailio (which pings
 * rtpengine as its workers start, and probes the agent with OPTIONS from then on: an agent up
 * before Kamailio is in service from the first call). Everything site-specific
 * comes in as options, so `npm start` runs it on the configured ports under .run/ and the tests
 * on free ports in a temp dir.
 */
import { join } from "node:path";
import type { RtpengineOptions } from "../build/rtpengine.js";
import { kamailioDaemon, mediaAgentDaemon, rtpengineDaemon, type KamailioHandle } from "./daemons.js";
import { Supervisor, type SupervisorOptions } from "./supervisor.js";

export interface StackOptions {
  /** kamailio/ and rtpengine/ (pid, ctl socket, logs, rendered tls.cfg, callback state) and media-agent.log go here. */
  runDir: string;
  /** WA_* for Kamailio (WA_BUNDLE, WA_TLS_CERT/KEY, ports…); WA_RUN_DIR and WA_CTL_SOCKET are set from runDir. */
  kamailioEnv: Record<string, string>;
  rtpengine: Omit<RtpengineOptions, "runDir">;
  /** AGENT_* for the media agent (AGENT_API is where its readiness is probed). */
  agentEnv: Record<string, string>;
  supervisor?: SupervisorOptions;
}

export interface Stack {
  supervisor: Supervisor;
  /** The running Kamailio (changes when it is restarted). */
  kamailio(): KamailioHandle | undefined;
  kamailioRunDir: string;
  rtpengineLog: string;
  agentLog: string;
  agentApi: { host: string; port: number };
}

export const DAEMONS = { kamailio: "kamailio", rtpengine: "rtpengine", agent: "media-agent" } as const;

/** The supervisor for the three daemons; nothing runs until its start(). */
export function supervisedStack(opts: StackOptions): Stack {
  const [apiHost, apiPort] = (opts.agentEnv.AGENT_API ?? "127.0.0.1:5090").split(":");
  const agentApi = { host: apiHost, port: Number(apiPort) };
  const kamailioRunDir = join(opts.runDir, "kamailio");
  const agentLog = join(opts.runDir, "media-agent.log");
  const supervisor = new Supervisor(
    [
      rtpengineDaemon({ ...opts.rtpengine, runDir: join(opts.runDir, "rtpengine"), name: DAEMONS.rtpengine }),
      mediaAgentDaemon({ env: opts.agentEnv, logFile: agentLog, api: agentApi, name: DAEMONS.agent }),
      kamailioDaemon({ runDir: kamailioRunDir, env: opts.kamailioEnv, name: DAEMONS.kamailio }),
    ],
    opts.supervisor,
  );
  return {
    supervisor,
    kamailio: () => supervisor.handle(DAEMONS.kamailio) as KamailioHandle | undefined,
    kamailioRunDir,
    rtpengineLog: join(opts.runDir, "rtpengine", "rtpengine.log"),
    agentLog,
    agentApi,
  };
}
