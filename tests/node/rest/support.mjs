// The server under test, started by tests/integration/test_node_data_api.py: its URL and keys.
import { createClient } from '@supabase/supabase-js';
import { PostgrestClient } from '@supabase/postgrest-js';
import ws from 'ws';

export const URL = process.env.FLUXBASE_URL;
export const ANON_KEY = process.env.FLUXBASE_ANON_KEY;
export const SERVICE_KEY = process.env.FLUXBASE_SERVICE_KEY;
// The same database served as PostgREST 12 with aggregates enabled.
export const URL_V12_AGGREGATES = process.env.FLUXBASE_URL_V12_AGGREGATES;
if (!URL || !ANON_KEY || !SERVICE_KEY) {
  throw new Error('FLUXBASE_URL, FLUXBASE_ANON_KEY and FLUXBASE_SERVICE_KEY must be set (run through pytest)');
}

// Node 20 has no WebSocket of its own: supabase-js's realtime client is given `ws`.
const options = { auth: { persistSession: false, autoRefreshToken: false }, realtime: { transport: ws } };

/** A supabase-js client with the anon key (or the service key); `v12` for the PostgREST 12 server. */
export function supabase({ service = false, v12 = false } = {}) {
  return createClient(v12 ? URL_V12_AGGREGATES : URL, service ? SERVICE_KEY : ANON_KEY, options);
}

/** A bare postgrest-js client, as an app talking to the data API directly. */
export function postgrest({ service = false } = {}) {
  const key = service ? SERVICE_KEY : ANON_KEY;
  return new PostgrestClient(`${URL}/rest/v1`, { headers: { apikey: key, Authorization: `Bearer ${key}` } });
}

/** A plain HTTP request to the data API, for what the clients have no method for (PUT, CSV bodies). */
export async function request(method, path, { body, headers = {}, service = false } = {}) {
  const key = service ? SERVICE_KEY : ANON_KEY;
  return fetch(`${URL}/rest/v1/${path}`, {
    method,
    body,
    headers: { apikey: key, Authorization: `Bearer ${key}`, ...headers },
  });
}
