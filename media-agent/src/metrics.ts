/**
 * The media agent's Prometheus metrics (prom-client), served at GET /metrics on the call API.
 * Calls come from the agent's "ended" records; the voice pipeline's figures from its events
 * (pipeline/events.ts) through one observer per call, so no stage carries metric code.
 * Labels have few values: profiles and codecs are configured, end reasons are cut at the
 * first ":" ("local BYE", "remote BYE", "486 Busy Here", …).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { CallRecord } from "./calls/call.js";
import type { PipelineEvent, PipelineListener } from "./pipeline/events.js";

export const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: "wa_agent_process_" });

const calls = new Counter({
  name: "wa_agent_calls_total",
  help: "Calls that ended, by direction, profile, codec (none: never answered), status (ended: was answered; failed) and end reason",
  labelNames: ["direction", "profile", "codec", "status", "end_reason"],
  registers: [registry],
});

const rtpPackets = new Counter({
  name: "wa_agent_rtp_packets_total",
  help: "RTP packets of ended calls: received, sent, lost (gaps in sequence numbers), late, concealed (20 ms frames played as concealment)",
  labelNames: ["kind"],
  registers: [registry],
});

const rtpJitter = new Histogram({
  name: "wa_agent_rtp_jitter_seconds",
  help: "RFC 3550 interarrival jitter of each ended call's incoming audio (the call's last estimate)",
  buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16],
  registers: [registry],
});

const frameLateness = new Histogram({
  name: "wa_agent_frame_lateness_seconds",
  help: "Pacing error as the agent sees it: how late the shared 20 ms frame timer ran its due frames (each run sends a frame for every due call)",
  buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.04, 0.1],
  registers: [registry],
});

/** The frame clock's timer ran `ms` after its due time (rtp/frame-clock.ts). */
export function observeFrameLateness(ms: number): void {
  frameLateness.observe(Math.max(0, ms) / 1000);
}

/** Set by the agent: how many calls are in progress now. */
export const activeCalls = new Gauge({ name: "wa_agent_active_calls", help: "Calls in progress", registers: [registry] });

/** The engine check (engine-health.ts): 1 passes, 0 fails (the profile's calls get the apology). */
export const engineCheckGauge = new Gauge({
  name: "wa_agent_engine_check_ok",
  help: "Whether the engine passed its last check (1) or not (0), per voice profile and engine",
  labelNames: ["profile", "engine"] as const,
  registers: [registry],
});

const stageSeconds = new Histogram({
  name: "wa_agent_turn_stage_seconds",
  help: "Per turn: turn_decided (end of speech → turn decided), stt (request → transcript), llm_first_token (request → first part), tts_first_audio (request → first audio), first_audible (end of speech → first audible packet out)",
  labelNames: ["stage"],
  buckets: [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 3, 5],
  registers: [registry],
});

const bargeIns = new Counter({
  name: "wa_agent_barge_ins_total",
  help: "The caller spoke (or pressed a key) over the agent: outcome stopped (the reply was cut), resumed (backchannel or noise), dtmf",
  labelNames: ["outcome"],
  registers: [registry],
});

const transcripts = new Counter({
  name: "wa_agent_transcripts_total",
  help: "Transcript filter verdicts per turn: use, ask-to-repeat, ignore (hallucination or noise), error (the STT failed)",
  labelNames: ["verdict"],
  registers: [registry],
});

const engineErrors = new Counter({
  name: "wa_agent_engine_errors_total",
  help: "Engine requests that failed (timeouts included), by engine: stt, llm, tts",
  labelNames: ["engine"],
  registers: [registry],
});

export function countEndedCall(record: CallRecord): void {
  const endReason = (record.endReason ?? "").split(":")[0].trim().slice(0, 40);
  calls.inc({ direction: record.direction, profile: record.profile, codec: record.codec ?? "none", status: record.status, end_reason: endReason });
  const m = record.media;
  if (!m) return;
  rtpPackets.inc({ kind: "received" }, m.packetsIn);
  rtpPackets.inc({ kind: "sent" }, m.packetsOut);
  rtpPackets.inc({ kind: "lost" }, m.jitter.lost);
  rtpPackets.inc({ kind: "late" }, m.jitter.late);
  rtpPackets.inc({ kind: "concealed" }, m.concealed);
  if (m.arrivalJitterMs !== null) rtpJitter.observe(m.arrivalJitterMs / 1000);
}

/**
 * Every call figure back to nothing (not the engine check's, nor the process's): after the
 * start-up rehearsal (calls/rehearsal.ts), whose calls are not calls the agent carried.
 */
export function resetCallMetrics(): void {
  for (const metric of [calls, rtpPackets, rtpJitter, frameLateness, activeCalls, stageSeconds, bargeIns, transcripts, engineErrors]) metric.reset();
  // prom-client's reset leaves a histogram without labels with no series at all (a counter or
  // gauge gets its zero back): their zeros, as a fresh agent shows them.
  rtpJitter.zero({});
  frameLateness.zero({});
}

/** One call's pipeline events → the metrics above. */
export function pipelineMetrics(): PipelineListener {
  /** Per turn: when the caller's speech ended (speech turns only). */
  const speechEnd = new Map<number, number>();
  const llmRequestAt = new Map<number, number>();
  const ttsRequestAt = new Map<number, number>();
  const heard = new Set<number>();
  const seconds = (ms: number) => ms / 1000;
  /** The time since the request `key` in `started`, observed once as `stage`. */
  const sinceRequest = (started: Map<number, number>, key: number, stage: string, at: number) => {
    const requestAt = started.get(key);
    if (requestAt !== undefined) stageSeconds.observe({ stage }, seconds(at - requestAt));
    started.delete(key);
  };
  return (e: PipelineEvent) => {
    switch (e.type) {
      case "turn":
        if (e.speech) {
          speechEnd.set(e.turn, e.at);
          stageSeconds.observe({ stage: "turn_decided" }, seconds(e.speech.decidedAfterMs));
        }
        break;
      case "stt":
        transcripts.inc({ verdict: e.verdict });
        if (e.error) engineErrors.inc({ engine: "stt" });
        else stageSeconds.observe({ stage: "stt" }, seconds(e.responseMs));
        break;
      case "llm-request":
        llmRequestAt.set(e.turn, e.at);
        break;
      case "llm-text":
      case "llm-tool-calls":
      case "llm-done":
        sinceRequest(llmRequestAt, e.turn, "llm_first_token", e.at);
        break;
      case "llm-error":
        engineErrors.inc({ engine: "llm" });
        llmRequestAt.delete(e.turn);
        break;
      case "tts-request":
        ttsRequestAt.set(e.clause, e.at);
        break;
      case "tts-first-audio":
        sinceRequest(ttsRequestAt, e.clause, "tts_first_audio", e.at);
        break;
      case "tts-done":
        // An engine that hands over the whole clause (Piper's WAV): its first audio is all of it.
        if (ttsRequestAt.has(e.clause)) stageSeconds.observe({ stage: "tts_first_audio" }, seconds(e.synthesisMs));
        ttsRequestAt.delete(e.clause);
        break;
      case "tts-error":
        engineErrors.inc({ engine: "tts" });
        ttsRequestAt.delete(e.clause);
        break;
      case "clause-audible": {
        const end = speechEnd.get(e.turn);
        if (end !== undefined && !heard.has(e.turn)) {
          heard.add(e.turn);
          stageSeconds.observe({ stage: "first_audible" }, seconds(e.at - end));
        }
        break;
      }
      case "barge-in-outcome":
        bargeIns.inc({ outcome: e.outcome.startsWith("reply went on") ? "resumed" : e.outcome.startsWith("reply stopped by DTMF") ? "dtmf" : "stopped" });
        break;
      case "closed":
        speechEnd.clear();
        llmRequestAt.clear();
        ttsRequestAt.clear();
        break;
    }
  };
}
