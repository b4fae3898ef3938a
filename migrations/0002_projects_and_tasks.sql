-- Projects and their tasks. task_statuses is shared reference data: no tenant key, the same
-- rows for every tenant, readable by all.

create table task_statuses (
  code       text primary key,
  label      text not null,
  sort_order integer not null,
  is_closed  boolean not null default false
);

insert into task_statuses (code, label, sort_order, is_closed) values
  ('todo',        'To do',       10, false),
  ('in_progress', 'In progress', 20, false),
  ('blocked',     'Blocked',     30, false),
  ('done',        'Done',        40, true),
  ('cancelled',   'Cancelled',   50, true);

create table projects (
  {{tenant_key_column}} {{tenant_key_type}} not null references workspaces (id) on delete cascade,
  id          uuid not null default gen_random_uuid(),
  name        text not null,
  description text,
  owner_id    uuid,
  created_at  timestamptz not null default now(),
  primary key ({{tenant_key_column}}, id),
  -- The tenant key is part of every foreign key, so a row can never point into another tenant.
  foreign key ({{tenant_key_column}}, owner_id) references users ({{tenant_key_column}}, id)
);

create index projects_owner_idx on projects ({{tenant_key_column}}, owner_id);

create table tasks (
  {{tenant_key_column}} {{tenant_key_type}} not null references workspaces (id) on delete cascade,
  id          uuid not null default gen_random_uuid(),
  project_id  uuid not null,
  title       text not null,
  status      text not null default 'todo' references task_statuses (code),
  assignee_id uuid,
  due_on      date,
  created_at  timestamptz not null default now(),
  updated_at  timestamptz not null default now(),
  primary key ({{tenant_key_column}}, id),
  foreign key ({{tenant_key_column}}, project_id) references projects ({{tenant_key_column}}, id) on delete cascade,
  foreign key ({{tenant_key_column}}, assignee_id) references users ({{tenant_key_column}}, id)
);

create index tasks_project_idx on tasks ({{tenant_key_column}}, project_id);
create index tasks_assignee_idx on tasks ({{tenant_key_column}}, assignee_id) where assignee_id is not null;
