import type { RestoreDeps, RestoreResult } from '../backup/restore.js';
import type { PitrPhase } from './phase-clock.js';

/** What `restore <slug> --at` is given, needs and reports (restore-at.ts). */
export interface RestoreAtOptions {
  slug: string;
  /** The time to bring the tenant back to. */
  at: Date;
  as?: string;
  replace?: boolean;
  shard?: string;
  model?: string;
}

export interface RestoreAtDeps extends RestoreDeps {
  /** A phase started (or moved on): its name and what it has done so far (sizes). */
  onPhase?: (phase: PitrPhase, detail: string) => void;
}

export interface RestoreAtResult extends RestoreResult {
  /** The time asked for, and the last transaction actually replayed. */
  at: string;
  reached: string | null;
  walReplayedBytes: number;
  /** What pgBackRest restored into the scratch folder. */
  restoredBytes: number;
  window: { from: string; to: string };
  tables: { table: string; rows: number }[];
  /** How the loaded rows were checked. */
  verification: string;
  phases: { phase: PitrPhase; ms: number }[];
}
