// The doctor's shared vocabulary: every check module returns these (no module imports checks.ts back).

export interface Check {
  check: string;
  ok: boolean;
  /** Worth acting on, but not a failure (doctor still exits 0): printed as WARN. */
  warning?: boolean;
  detail: string;
}
