-- Revert fluxbase:auth_sign_in_sources from pg
--
-- The sql/23_auth_passwords.sql functions that read these go with them; the
-- `fluxbase migrate` of the release before re-creates its own versions.

BEGIN;

drop function if exists auth.check_password(text, text, inet, integer, integer, interval, interval, interval);
drop function if exists auth.sign_in_lockout(uuid);
drop function if exists auth.unlock_user(uuid, uuid, inet);
drop function if exists auth.reset_password(text, text, integer, inet);
drop function if exists auth.clear_sign_in_locks(uuid);
drop function if exists auth.lock_for(interval, interval, integer);
drop table auth.sign_in_sources;
alter table auth.users drop column lock_count;

COMMIT;
