-- Revert app:todos from pg

BEGIN;

drop table public.todos;

COMMIT;
