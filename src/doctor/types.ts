// The doctor's shared vocabulary: every check module returns these (no module imports checks.ts back).

export interface Check {
  check: string;
  ok: boolean;
  detail: string;
}
