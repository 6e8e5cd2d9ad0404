-- Verify app:todos on pg

BEGIN;

select id, user_id, task, is_complete, inserted_at from public.todos where false;

ROLLBACK;
