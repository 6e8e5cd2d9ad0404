// The server under test, started by tests/integration/test_node_realtime.py: its URL, keys, helpers.
import { createClient } from '@supabase/supabase-js';
import ws from 'ws';

export const URL = process.env.FLUXBASE_URL;
export const ANON_KEY = process.env.FLUXBASE_ANON_KEY;
export const SERVICE_KEY = process.env.FLUXBASE_SERVICE_KEY;
if (!URL || !ANON_KEY || !SERVICE_KEY) {
  throw new Error('FLUXBASE_URL, FLUXBASE_ANON_KEY and FLUXBASE_SERVICE_KEY must be set (run through pytest)');
}

// Node 20 has no WebSocket of its own: supabase-js's realtime client is given `ws`.
const options = { auth: { persistSession: false, autoRefreshToken: false }, realtime: { transport: ws } };
const clients = [];

/** A supabase-js client with the anon key (or the service key); closed by closeAll(). */
export function supabase({ service = false } = {}) {
  const client = createClient(URL, service ? SERVICE_KEY : ANON_KEY, options);
  clients.push(client);
  return client;
}

export async function closeAll() {
  for (const client of clients.splice(0)) {
    await client.removeAllChannels();
    client.realtime.disconnect();
  }
}

/** A new user, signed up (the server autoconfirms) on a client of its own. */
export async function signedUp() {
  const client = supabase();
  const email = `node-${Math.random().toString(36).slice(2, 12)}@example.org`;
  const { data, error } = await client.auth.signUp({ email, password: 'correct horse battery' });
  if (error) throw error;
  return { client, session: data.session, user: data.user, email };
}

/** Subscribes and resolves once the server confirmed the join (rejects on an error status). */
export function subscribed(channel, timeout = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`subscribe timed out: ${channel.topic}`)), timeout);
    channel.subscribe((status, err) => {
      if (status === 'SUBSCRIBED') {
        clearTimeout(timer);
        resolve(channel);
      } else if (status === 'CHANNEL_ERROR' || status === 'TIMED_OUT') {
        clearTimeout(timer);
        reject(err ?? new Error(status));
      }
    });
  });
}

/** Collects what a callback receives; `next(n)` waits for n more items, `quiet(ms)` for none. */
export class Inbox {
  constructor() {
    this.items = [];
    this.waiters = [];
    this.push = (item) => {
      this.items.push(item);
      for (const waiter of this.waiters.splice(0)) waiter();
    };
    this.taken = 0;
  }

  async next(count = 1, timeout = 8000) {
    const deadline = Date.now() + timeout;
    while (this.items.length - this.taken < count) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`got ${this.items.length - this.taken} of ${count}: ${JSON.stringify(this.items.slice(-3))}`);
      }
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    const out = this.items.slice(this.taken, this.taken + count);
    this.taken += count;
    return out;
  }

  async quiet(ms = 700) {
    await new Promise((resolve) => setTimeout(resolve, ms));
    return this.items.slice(this.taken);
  }
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
