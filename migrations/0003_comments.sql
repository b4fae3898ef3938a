-- Comments on tasks, written by users of the same workspace.

create table comments (
  {{tenant_key_column}} {{tenant_key_type}} not null references workspaces (id) on delete cascade,
  id         uuid not null default gen_random_uuid(),
  task_id    uuid not null,
  author_id  uuid not null,
  body       text not null check (length(body) > 0),
  created_at timestamptz not null default now(),
  edited_at  timestamptz,
  primary key ({{tenant_key_column}}, id),
  foreign key ({{tenant_key_column}}, task_id) references tasks ({{tenant_key_column}}, id) on delete cascade,
  foreign key ({{tenant_key_column}}, author_id) references users ({{tenant_key_column}}, id)
);

create index comments_task_idx on comments ({{tenant_key_column}}, task_id, created_at);
create index comments_author_idx on comments ({{tenant_key_column}}, author_id);
