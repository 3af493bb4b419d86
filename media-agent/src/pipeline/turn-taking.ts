/**
 * The turn detector stage: the VAD's verdict on each caller frame makes turns (vad.ts:
 * TurnDetector: speech start, the pause at which the STT may start early, the turn's end) and,
 * while the agent speaks, barge-ins (barge-in.ts: BargeInDetector: a run of speech long enough,
 * outside the echo guard). One push per 20 ms caller frame.
 */
import type { PcmFrame } from "../audio/frames.js";
import { BargeInDetector, type BargeInOptions } from "./barge-in.js";
import type { FrameClassifier } from "./engines.js";
import { TurnDetector, type TurnEvent, type TurnOptions } from "./vad.js";

export type TurnEnd = Extract<TurnEvent, { type: "turn" }>;
export type TurnPause = Extract<TurnEvent, { type: "pause" }>;

export interface TurnTakingResult {
  /** The caller began speaking over the agent `onsetAgoMs` ago: stop its voice now. */
  bargeIn: { onsetAgoMs: number } | null;
  /** A pause (the STT may start) or the end of a turn. */
  event: TurnPause | TurnEnd | null;
}

export class TurnTaking {
  private readonly turns: TurnDetector;
  private readonly bargeIn: BargeInDetector;
  private agentSpeaking = false;

  constructor(
    private readonly vad: FrameClassifier,
    turns: Partial<TurnOptions>,
    bargeIn: Partial<BargeInOptions>,
  ) {
    this.turns = new TurnDetector(vad, turns);
    this.bargeIn = new BargeInDetector(bargeIn);
  }

  push(frame: PcmFrame): TurnTakingResult {
    const event = this.turns.push(frame);
    const bargeIn = this.agentSpeaking && this.bargeIn.callerFrame(this.turns.lastWasSpeech) === "barge-in" ? { onsetAgoMs: this.bargeIn.onsetAgoMs } : null;
    return { bargeIn, event: event?.type === "pause" || event?.type === "turn" ? event : null };
  }

  /** The agent's voice started or stopped at the caller's ear (the speaker's "agent-speaking"). */
  agentSpeakingChanged(speaking: boolean): void {
    this.agentSpeaking = speaking;
    if (speaking) this.bargeIn.agentStarted();
    else this.bargeIn.agentStopped();
  }

  /** The caller is in a turn: speech has started and its end is not decided yet. */
  get inTurn(): boolean {
    return this.turns.inTurn;
  }

  /** The id of the pause the caller is still silent in, or null. */
  get openPause(): number | null {
    return this.turns.openPause;
  }

  /** Ends the turn now, in the open pause (its transcript is known to be complete); null when there is none. */
  endTurnNow(): TurnEnd | null {
    return this.turns.endTurnNow();
  }

  close(): void {
    this.vad.close?.();
  }
}
