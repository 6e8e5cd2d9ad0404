-- Loaded by `fluxbase init` and after every `fluxbase db reset`.

-- A row that belongs to nobody: only the owner (fluxbase psql) and service_role see it.
insert into public.todos (user_id, task) values (null, 'Sign up, then add todos of your own');
