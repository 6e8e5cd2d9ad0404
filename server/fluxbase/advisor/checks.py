"""The advisor's checks: one catalog query each, in the spirit of Supabase's splinter.

Every query takes the exposed schemas as $1 (text[]) and returns rows of
(object_type, object, detail, fix); identifiers in `object` and `fix` are
quoted by PostgreSQL's format('%I'), so the fix can be pasted into psql.
"API roles" are anon and authenticated: the roles any holder of the public
anon key, or any signed-up user, acts as.  service_role bypasses RLS by design.
"""

# ruff: noqa: S608 - the queries are assembled at import from the constant fragments below; nothing
# from outside reaches their text (the exposed schemas are bound as $1).
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Level = Literal["error", "warn", "info"]

# Rows (relations, functions) the API roles can reach are what matters; an object
# that belongs to an extension is the extension's business.
_API_ROLES = "(select array_agg(rolname) from pg_roles where rolname in ('anon', 'authenticated'))"
_NOT_EXTENSION_MEMBER = (
    "not exists (select 1 from pg_depend d where d.classid = {catalog}::regclass "
    "and d.objid = {oid} and d.deptype = 'e')"
)
_SECURITY_INVOKER = (
    "exists (select 1 from unnest(coalesce({rel}.reloptions, '{{}}')) o "
    "where lower(o) in ('security_invoker=true', 'security_invoker=on', 'security_invoker=1', "
    "'security_invoker=yes'))"
)


def _not_extension_member(oid: str, catalog: str = "'pg_class'") -> str:
    return _NOT_EXTENSION_MEMBER.format(oid=oid, catalog=catalog)


def _roles_can(privileges: str, rel: str = "c") -> str:
    """SQL: the API roles that hold any of `privileges` on relation `rel` (table or column grants)."""
    return f"""(select array_agg(distinct r.role order by r.role)
   from unnest({_API_ROLES}) r(role), unnest(array[{privileges}]) p(priv)
   where case when p.priv in ('SELECT', 'INSERT', 'UPDATE')
              then has_any_column_privilege(r.role, {rel}.oid, p.priv)
              else has_table_privilege(r.role, {rel}.oid, p.priv) end)"""


@dataclass(frozen=True)
class Check:
    name: str
    level: Level
    title: str
    why: str
    query: str


RLS_DISABLED = Check(
    "rls_disabled_in_api",
    "error",
    "Table in an exposed schema without row-level security",
    "Every caller holding the public anon key (or any signed-up user) reads or changes every row "
    "the grants allow: without RLS there is no per-row check at all.",
    f"""
select 'table', format('%I.%I', n.nspname, c.relname),
       format('%s may use it and no row-level security applies', array_to_string(t.roles, ', ')),
       format('alter table %I.%I enable row level security;  -- then create a policy per role and verb',
              n.nspname, c.relname)
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
cross join lateral (select {_roles_can("'SELECT', 'INSERT', 'UPDATE', 'DELETE'")} as roles) t
where n.nspname = any($1) and c.relkind in ('r', 'p') and not c.relrowsecurity
  and t.roles is not null and {_not_extension_member("c.oid")}
order by 2""",
)

POLICY_WITHOUT_RLS = Check(
    "policy_exists_rls_disabled",
    "error",
    "Policies exist but row-level security is off",
    "Policies are ignored until RLS is enabled on their table: the rules someone wrote do not apply.",
    """
select 'table', format('%I.%I', n.nspname, c.relname),
       format('policies %s are not enforced', string_agg(quote_ident(p.polname), ', ' order by p.polname)),
       format('alter table %I.%I enable row level security;', n.nspname, c.relname)
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
join pg_policy p on p.polrelid = c.oid
where n.nspname = any($1) and c.relkind in ('r', 'p') and not c.relrowsecurity
group by n.nspname, c.relname
order by 2""",
)

RLS_NO_POLICY = Check(
    "rls_enabled_no_policy",
    "info",
    "Row-level security enabled with no policy",
    "With RLS on and no policy, anon and authenticated see no row and change none: usually a "
    "policy was forgotten (service_role and the owner are unaffected).",
    f"""
select 'table', format('%I.%I', n.nspname, c.relname),
       'RLS is enabled and no policy exists, so API callers get no rows',
       format('create policy "read own rows" on %I.%I for select to authenticated '
              'using ((select auth.uid()) = user_id);  -- adapt: one policy per role and verb',
              n.nspname, c.relname)
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
where n.nspname = any($1) and c.relkind in ('r', 'p') and c.relrowsecurity
  and not exists (select 1 from pg_policy p where p.polrelid = c.oid)
  and {_not_extension_member("c.oid")}
order by 2""",
)

SECURITY_DEFINER_VIEW = Check(
    "security_definer_view",
    "error",
    "View in an exposed schema runs as its owner",
    "A view without security_invoker reads its tables with its owner's rights, so the RLS "
    "policies of those tables do not apply to the API caller who selects from it.",
    f"""
select case c.relkind when 'm' then 'materialized view' else 'view' end,
       format('%I.%I', n.nspname, c.relname),
       format('%s can select from it; it reads its tables as %I, bypassing their RLS',
              array_to_string(t.roles, ', '), pg_get_userbyid(c.relowner)),
       case c.relkind
         when 'm' then format('revoke select on %I.%I from anon, authenticated;', n.nspname, c.relname)
         else format('alter view %I.%I set (security_invoker = true);', n.nspname, c.relname) end
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
cross join lateral (select {_roles_can("'SELECT'")} as roles) t
where n.nspname = any($1) and c.relkind in ('v', 'm')
  and (c.relkind = 'm' or not {_SECURITY_INVOKER.format(rel="c")})
  and t.roles is not null and {_not_extension_member("c.oid")}
order by 2""",
)

AUTH_USERS_EXPOSED = Check(
    "auth_users_exposed",
    "error",
    "auth.users exposed through a view",
    "auth.users holds every account's email, phone and metadata; a view over it that API callers "
    "can select from hands them to anyone with the anon key.",
    f"""
select distinct case v.relkind when 'm' then 'materialized view' else 'view' end,
       format('%I.%I', n.nspname, v.relname),
       format('%s can select from it and it reads auth.users', array_to_string(t.roles, ', ')),
       format('revoke select on %I.%I from anon, authenticated;', n.nspname, v.relname)
from pg_rewrite r
join pg_depend d on d.classid = 'pg_rewrite'::regclass and d.objid = r.oid
                 and d.refclassid = 'pg_class'::regclass and d.refobjid = to_regclass('auth.users')
join pg_class v on v.oid = r.ev_class
join pg_namespace n on n.oid = v.relnamespace
cross join lateral (select {_roles_can("'SELECT'", rel="v")} as roles) t
where n.nspname = any($1) and v.relkind in ('v', 'm')
  and (v.relkind = 'm' or not {_SECURITY_INVOKER.format(rel="v")})
  and t.roles is not null
order by 2""",
)

SECURITY_DEFINER_FUNCTION = Check(
    "security_definer_function_executable",
    "warn",
    "SECURITY DEFINER function callable by API roles",
    "It runs with its owner's rights, past RLS and grants, and anyone who may execute it can call "
    "it through /rest/v1/rpc. Fine only if it checks the caller itself (auth.uid()).",
    f"""
select 'function', p.oid::regprocedure::text,
       format('%s may execute it; it runs as %I',
              array_to_string(array(select r from unnest({_API_ROLES}) r
                                    where has_function_privilege(r, p.oid, 'EXECUTE') order by 1), ', '),
              pg_get_userbyid(p.proowner)),
       format('revoke execute on function %s from public, anon, authenticated;', p.oid::regprocedure)
from pg_proc p
join pg_namespace n on n.oid = p.pronamespace
where n.nspname = any($1) and p.prosecdef
  and exists (select 1 from unnest({_API_ROLES}) r where has_function_privilege(r, p.oid, 'EXECUTE'))
  and {_not_extension_member("p.oid", "'pg_proc'")}
order by 2""",
)

USER_METADATA_IN_POLICY = Check(
    "rls_references_user_metadata",
    "error",
    "Policy trusts user_metadata",
    "Every user can write their own user_metadata (PUT /auth/v1/user), so a policy that grants "
    "access by it lets users grant themselves access. Authorization data belongs in app_metadata.",
    """
select 'policy', format('%I on %I.%I', p.polname, n.nspname, c.relname),
       'the policy reads user_metadata, which its user may set to anything',
       format('alter policy %I on %I.%I%s%s;', p.polname, n.nspname, c.relname,
              coalesce(' using (' || replace(replace(pg_get_expr(p.polqual, p.polrelid),
                'user_metadata', 'app_metadata'), 'raw_user_meta_data', 'raw_app_meta_data') || ')', ''),
              coalesce(' with check (' || replace(replace(pg_get_expr(p.polwithcheck, p.polrelid),
                'user_metadata', 'app_metadata'), 'raw_user_meta_data', 'raw_app_meta_data') || ')', ''))
from pg_policy p
join pg_class c on c.oid = p.polrelid
join pg_namespace n on n.oid = c.relnamespace
where n.nspname = any($1)
  and (coalesce(pg_get_expr(p.polqual, p.polrelid), '') ~* 'user_meta_?data'
       or coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '') ~* 'user_meta_?data')
order by 2""",
)

EXTENSION_IN_PUBLIC = Check(
    "extension_in_public",
    "warn",
    "Extension installed in public",
    "Its functions and tables land in the exposed schema, where the API lists and may call them; "
    "the extensions schema is meant for them.",
    """
select 'extension', quote_ident(e.extname),
       format('extension %I (%s) lives in schema public', e.extname, e.extversion),
       case when e.extrelocatable
            then format('alter extension %I set schema extensions;', e.extname)
            else format('drop extension %I; create extension %I with schema extensions;  -- not relocatable',
                        e.extname, e.extname) end
from pg_extension e
join pg_namespace n on n.oid = e.extnamespace
where n.nspname = 'public' and $1::text[] is not null
order by 2""",
)

ANON_WRITES = Check(
    "anon_write_grant",
    "warn",
    "Anonymous callers may write to a table",
    "Anyone with the public anon key can insert, update or delete here, limited only by RLS "
    "policies; make sure that is meant (a sign-up form) and not a leftover `grant all`.",
    f"""
select 'table', format('%I.%I', n.nspname, c.relname),
       format('anon holds %s', array_to_string(w.privileges, ', ')),
       format('revoke %s on %I.%I from anon;',
              lower(array_to_string(w.privileges, ', ')), n.nspname, c.relname)
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
cross join lateral (
  select array_agg(p.priv order by p.priv) as privileges
  from unnest(array['INSERT', 'UPDATE', 'DELETE']) p(priv)
  where case when p.priv = 'DELETE' then has_table_privilege('anon', c.oid, p.priv)
             else has_any_column_privilege('anon', c.oid, p.priv) end) w
where n.nspname = any($1) and c.relkind in ('r', 'p', 'v', 'f')
  and exists (select 1 from pg_roles where rolname = 'anon')
  and w.privileges is not null and {_not_extension_member("c.oid")}
order by 2""",
)

TRUNCATE_GRANT = Check(
    "api_role_truncate_grant",
    "error",
    "API role may truncate a table",
    "TRUNCATE ignores row-level security: a caller holding it can empty the table whatever the policies say.",
    f"""
select 'table', format('%I.%I', n.nspname, c.relname),
       format('%s may truncate it', array_to_string(t.roles, ', ')),
       format('revoke truncate on %I.%I from anon, authenticated;', n.nspname, c.relname)
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
cross join lateral (select {_roles_can("'TRUNCATE'")} as roles) t
where n.nspname = any($1) and c.relkind in ('r', 'p')
  and t.roles is not null and {_not_extension_member("c.oid")}
order by 2""",
)

CHECKS: tuple[Check, ...] = (
    RLS_DISABLED,
    POLICY_WITHOUT_RLS,
    SECURITY_DEFINER_VIEW,
    AUTH_USERS_EXPOSED,
    USER_METADATA_IN_POLICY,
    TRUNCATE_GRANT,
    SECURITY_DEFINER_FUNCTION,
    EXTENSION_IN_PUBLIC,
    ANON_WRITES,
    RLS_NO_POLICY,
)
