-- Whether the dashboard still needs its first administrator: what the
-- dashboard's setup page asks before it offers the first-admin form.
-- Re-applied by every `fluxbase migrate`.  It answers no more than
-- POST /dashboard/auth/signup already tells (201 until an admin exists, 403
-- after), and nothing about who the administrators are.

create or replace function dashboard.setup_required() returns boolean
  language sql stable security definer
  set search_path = ''
  as $$
    select not exists (select from dashboard.users u where u.deleted_at is null)
  $$;

revoke all on function dashboard.setup_required() from public, anon, authenticated;
grant execute on function dashboard.setup_required() to service_role;
