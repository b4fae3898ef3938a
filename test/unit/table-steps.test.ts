import { describe, expect, it } from 'vitest';
import { tableSteps, validateSteps, type Deferred } from '../../src/copy/deferred-indexes.js';

const con = (o: Partial<Deferred['cons'][number]>): Deferred['cons'][number] => ({
  tbl: 't.comments',
  rel: 'comments',
  name: 'x',
  def: '',
  fk: false,
  ref: null,
  refRel: null,
  index: null,
  ...o,
});

const d: Deferred = {
  idx: [
    { name: 't.comments_task_idx', rel: 'comments', def: 'CREATE INDEX comments_task_idx ON t.comments USING btree (task_id)' },
    { name: 't.tasks_project_idx', rel: 'tasks', def: 'CREATE INDEX tasks_project_idx ON t.tasks USING btree (project_id)' },
  ],
  cons: [
    con({
      name: 'comments_pkey',
      def: 'PRIMARY KEY (tenant_id, id)',
      index: 'CREATE UNIQUE INDEX comments_pkey ON t.comments USING btree (tenant_id, id)',
    }),
    con({
      name: 'comments_code_key',
      def: 'UNIQUE (code)',
      index: 'CREATE UNIQUE INDEX comments_code_key ON t.comments USING btree (code)',
    }),
    con({ name: 'comments_late_key', def: 'UNIQUE (late) DEFERRABLE' }),
    con({ name: 'comments_task_fk', fk: true, def: 'FOREIGN KEY (tenant_id, task_id) REFERENCES t.tasks(tenant_id, id)', ref: 't.tasks' }),
    con({ name: 'comments_author_fk', fk: true, def: 'FOREIGN KEY (author_id) REFERENCES t.users(id)', ref: 't.users' }),
    con({ tbl: 't.tasks', rel: 'tasks', name: 'tasks_project_fk', fk: true, def: 'FOREIGN KEY (project_id) REFERENCES t.projects(id)' }),
  ],
};

describe('tableSteps', () => {
  it("builds a table's indexes and its keys' unique indexes apart, then attaches the keys to them; a deferrable key is added as it was", () => {
    const s = tableSteps(d, 'comments');
    expect(s.indexes).toEqual([
      'CREATE INDEX comments_task_idx ON t.comments USING btree (task_id)',
      'CREATE UNIQUE INDEX comments_pkey ON t.comments USING btree (tenant_id, id)',
      'CREATE UNIQUE INDEX comments_code_key ON t.comments USING btree (code)',
    ]);
    expect(s.attach).toEqual([
      'alter table t.comments add constraint "comments_pkey" primary key using index "comments_pkey"',
      'alter table t.comments add constraint "comments_code_key" unique using index "comments_code_key"',
      'alter table t.comments add constraint "comments_late_key" UNIQUE (late) DEFERRABLE',
    ]);
    // Foreign keys are not a table's own step; another table's indexes are not either.
    expect(JSON.stringify(s)).not.toMatch(/_fk|tasks_project_idx/);
  });
});

describe('validateSteps', () => {
  it('groups the foreign keys by the table holding them (one group runs in order, groups at once)', () => {
    expect(validateSteps(d)).toEqual([
      ['alter table t.comments validate constraint "comments_task_fk"', 'alter table t.comments validate constraint "comments_author_fk"'],
      ['alter table t.tasks validate constraint "tasks_project_fk"'],
    ]);
  });
});
