/**
 * Why a tenant's writes are refused, as its application reads it: the error's message and hint
 * (SQLSTATE 25006 either way). The fences themselves are src/placement/pool/fence.ts (a shared
 * pool's tables) and table-fence.ts (a placement of the tenant's own).
 */
export interface FenceReason {
  /** Which operation holds the fence (a pool fence takes one lock per kind, pool-fence.ts). */
  kind: 'move' | 'restore';
  message: string;
  hint: string;
}

/** A move copying the tenant elsewhere (fence up for the copy, verify and switch). */
export const MOVE_FENCE: FenceReason = {
  kind: 'move',
  message: 'writes of this tenant are paused: tenantctl is moving it to another placement',
  hint: 'reads still work; retry the write when the move has switched (tenantctl move status)',
};

/**
 * `restore --replace`: the tenant's data is about to be swapped for a backup's, so a write now
 * would land where nobody reads it again. Up from the restore's first step to its switch.
 */
export const RESTORE_FENCE: FenceReason = {
  kind: 'restore',
  message: 'writes of this tenant are paused: tenantctl is restoring a backup over it (restore --replace)',
  hint: 'reads still work; retry the write when the restore has finished (a restore killed half-way: its next run lifts this)',
};
