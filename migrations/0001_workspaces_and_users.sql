-- Workspaces are the tenants' root rows, keyed by the tenant key itself; users belong to one.
-- {{tenant_key_column}} and {{tenant_key_type}} come from tenantKey in tenants.config.yaml.
-- Names are not schema-qualified: tenantctl sets search_path to the target schema.

create table workspaces (
  id         {{tenant_key_type}} primary key,
  name       text not null check (length(name) between 1 and 200),
  created_at timestamptz not null default now()
);

create table users (
  {{tenant_key_column}} {{tenant_key_type}} not null references workspaces (id) on delete cascade,
  id           uuid not null default gen_random_uuid(),
  email        text not null check (position('@' in email) > 1),
  display_name text not null,
  role         text not null default 'member' check (role in ('owner', 'admin', 'member', 'guest')),
  created_at   timestamptz not null default now(),
  primary key ({{tenant_key_column}}, id)
);

create unique index users_email_key on users ({{tenant_key_column}}, lower(email));
