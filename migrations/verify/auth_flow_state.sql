-- Verify fluxbase:auth_flow_state on pg

BEGIN;

select id, user_id, code_challenge, code_challenge_method, authentication_method, auth_code_hash,
       auth_code_issued_at, created_at, expires_at, consumed_at
  from auth.flow_state where false;
select flow_state_id from auth.one_time_tokens where false;

ROLLBACK;
