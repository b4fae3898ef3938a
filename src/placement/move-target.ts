/**
 * How a move's target takes the tenant, by the driver's kind (src/move/ asks the driver, never the
 * model). A placement of its own (schema, database) is made by the move, empty at the source's
 * version before the fence, and its rows load into fresh tables nobody else sees. Shared tables
 * (pool) exist already: the move brings them to the version, checks that no row holds the
 * tenant's key, and loads the rows beside other tenants' under their live constraints. The move
 * supplies both ways; the driver picks its own.
 */
export interface MoveTargetWays<T> {
  /** A placement of the tenant's own, made by the move. */
  ownPlacement(): Promise<T>;
  /** Tables other tenants share, already there. */
  sharedTables(): Promise<T>;
}

/** A driver's part in a move's target (`drivers[model].moveTarget(ways)`). */
export type MoveTarget = <T>(ways: MoveTargetWays<T>) => Promise<T>;

export const ownPlacementMoveTarget: MoveTarget = (ways) => ways.ownPlacement();
export const sharedTablesMoveTarget: MoveTarget = (ways) => ways.sharedTables();
