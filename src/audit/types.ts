import type { KeptPlacement } from './kept-placements.js';
import type { Config } from '../config/types.js';
import type { TenantRow } from '../catalog/tables.js';
import type { Fleet } from '../fleet/fleet.js';
import type { ShardClient } from '../fleet/shard-connections.js';
import type { PlacementShape } from '../placement/placement.js';

export const SEVERITIES = ['critical', 'high', 'medium', 'low'] as const;
export type Severity = (typeof SEVERITIES)[number];

/** Lower is worse: critical 0 … low 3. */
export function severityRank(s: Severity): number {
  return SEVERITIES.indexOf(s);
}

/**
 * One isolation problem. `fix` is the SQL that removes it, run in `database` on `shard`;
 * `fixable` says whether `audit --fix` applies it (tenantctl manages policies, forcing, grants
 * and CONNECT; role attributes and application code it only describes).
 */
export interface Finding {
  check: string;
  severity: Severity;
  shard: string;
  database: string;
  /** The tenant it concerns, when it concerns one (pool target findings concern every pool tenant). */
  tenant: string | null;
  /** The object: `app.tasks`, `role app_user`, `database t_acme`, `policy x on app.tasks`. */
  object: string;
  message: string;
  fix: string | null;
  fixable: boolean;
}

/** What a check family works with: the fleet, the config, the shard role, and every catalog row. */
export interface AuditEnv {
  config: Config;
  fleet: Fleet;
  /** Every tenant in the catalog (not only the selected ones): orphans are judged against all. */
  allTenants: TenantRow[];
  /** Placements unfinished moves keep (kept-placements.ts): never orphans. */
  kept: KeptPlacement[];
}

/** One unit of work of the audit, run by the bounded runner against one (shard, database). */
export interface AuditUnit {
  /** `us1/tenant_pool`, `us1/tenant_schemas#0`, `us1/t_acme`, `us1/(cluster)` */
  id: string;
  shard: string;
  database: string;
  /** `cluster`, or the shape of the placements it covers (src/placement/placement.ts `shapeOf`). */
  kind: 'cluster' | PlacementShape;
  /** The selected tenants this unit covers. */
  tenants: TenantRow[];
  /** Schema units: the slugs selected in the whole database (database-wide checks run once, on chunk 0). */
  selectedInDatabase?: string[];
}

export type UnitCheck = (c: ShardClient, unit: AuditUnit, env: AuditEnv) => Promise<Finding[]>;

/** Helper for check families: a finding with the registry's severity unless overridden. */
export type FindingInput = Omit<Finding, 'check' | 'severity' | 'fixable'> & { severity?: Severity; fixable?: boolean };
