-- Revert fluxbase:auth_flow_state from pg

BEGIN;

drop function if exists auth.create_flow_state(uuid, text, text, text, text, interval, inet);
drop function if exists auth.issue_auth_code(text, inet);
drop function if exists auth.exchange_auth_code(text, text, interval, inet);
alter table auth.one_time_tokens drop column flow_state_id;
drop table auth.flow_state;

COMMIT;
