/** The phases a restore to a point in time reports, in order. */
export type PitrPhase = 'pgBackRest restore' | 'recovery' | 'extract' | 'load, verify' | 'switch';

/**
 * Wall time per phase of a restore to a point in time, and its live view: `mark` says what a
 * phase has done so far (the same phase again only updates the view), a new phase closes the
 * one before. `done` closes the last and returns them all, in order.
 */
export class PhaseClock {
  private readonly closed: { phase: PitrPhase; ms: number }[] = [];
  private current: { phase: PitrPhase; at: number } | undefined;

  constructor(private readonly onPhase?: (phase: PitrPhase, detail: string) => void) {}

  mark(phase: PitrPhase, detail: string): void {
    if (this.current?.phase !== phase) {
      this.close();
      this.current = { phase, at: Date.now() };
    }
    this.onPhase?.(phase, detail);
  }

  done(): { phase: PitrPhase; ms: number }[] {
    this.close();
    return this.closed;
  }

  private close(): void {
    if (this.current) this.closed.push({ phase: this.current.phase, ms: Date.now() - this.current.at });
    this.current = undefined;
  }
}
