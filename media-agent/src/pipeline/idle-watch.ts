/**
 * The silent-caller stage: the caller's silence while the agent waits for them, counted on the
 * caller's frames (the frame clock, so a caller who sends no RTP at all is left to the RTP
 * timeout), becomes a reprompt after `repromptAfterMs`, and after `maxReprompts` reprompts the
 * goodbye. The pipeline says what this decides and tells it when the caller answered; this file
 * holds the counting alone, so its rules are tested without a conversation around them.
 */

export interface IdleOptions {
  repromptAfterMs: number;
  maxReprompts: number;
}

/** What a frame of waiting brings: nothing yet, the n-th reprompt, or the goodbye. */
export type IdleStep = { type: "reprompt"; count: number } | { type: "goodbye" } | null;

export class IdleWatch {
  /** Since when (clock) the agent has been waiting for the caller; null: it is not. */
  private waitingSince: number | null = null;
  /** Reprompts since the caller last said something. */
  private reprompts = 0;
  /** The goodbye is on its way: no more reprompts unless the caller speaks up during it. */
  private hangingUp = false;

  constructor(private readonly opts: IdleOptions) {}

  /**
   * A caller frame arrived at `now` (clock). `waiting`: nothing to play or being synthesised, no
   * turn being worked on, the caller not in a turn. Any frame that is not waiting starts the
   * silence afresh; each step starts it afresh too, so the next one comes `repromptAfterMs` after
   * the agent has finished saying this one.
   */
  frame(now: number, waiting: boolean): IdleStep {
    if (!waiting || this.hangingUp) {
      this.waitingSince = null;
      return null;
    }
    if (this.waitingSince === null) {
      this.waitingSince = now;
      return null;
    }
    if (now - this.waitingSince < this.opts.repromptAfterMs) return null;
    this.waitingSince = null;
    if (this.reprompts < this.opts.maxReprompts) return { type: "reprompt", count: ++this.reprompts };
    this.hangingUp = true;
    return { type: "goodbye" };
  }

  /** The caller said something usable, or pressed a key the profile maps: they are there. */
  callerAnswered(): void {
    this.reprompts = 0;
  }

  /** The caller spoke up during the goodbye: the call goes on, and the next silence brings the goodbye again (or a reprompt, once they said something usable). */
  goodbyeInterrupted(): void {
    this.hangingUp = false;
  }
}
