// Realtime under supabase-js (realtime-js over `ws`): postgres_changes with RLS and filters,
// TRUNCATE, broadcast with ack (and larger than a NOTIFY), presence (and a replica that died),
// setAuth, and a signed-out session's channel being closed.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';

import { Inbox, URL, ANON_KEY, closeAll, signedUp, sleep, subscribed, supabase } from './support.mjs';

after(closeAll);

const service = supabase({ service: true });

function changes(client, topic, binding, token) {
  const inbox = new Inbox();
  const channel = client.channel(topic).on('postgres_changes', { schema: 'public', ...binding }, inbox.push);
  return { inbox, channel };
}

test('postgres_changes under RLS: a user sees only their rows, never an ungranted column', async () => {
  const alice = await signedUp();
  const bob = await signedUp();
  await alice.client.realtime.setAuth(alice.session.access_token);
  await bob.client.realtime.setAuth(bob.session.access_token);
  const forAlice = changes(alice.client, 'notes-a', { event: '*', table: 'notes' });
  const forBob = changes(bob.client, 'notes-b', { event: '*', table: 'notes' });
  await subscribed(forAlice.channel);
  await subscribed(forBob.channel);

  const { error } = await service.from('notes').insert({ owner: alice.user.id, title: 'mine', secret: 's' });
  assert.equal(error, null);
  const [insert] = await forAlice.inbox.next(1);
  assert.equal(insert.eventType, 'INSERT');
  assert.equal(insert.table, 'notes');
  assert.equal(insert.new.title, 'mine');
  assert.equal(insert.new.owner, alice.user.id);
  assert.ok(!('secret' in insert.new));
  await service.from('notes').update({ title: 'renamed' }).eq('id', insert.new.id);
  const [update] = await forAlice.inbox.next(1);
  assert.equal(update.eventType, 'UPDATE');
  assert.equal(update.new.title, 'renamed');
  assert.deepEqual(update.old, { id: insert.new.id });
  await service.from('notes').delete().eq('id', insert.new.id);
  const [removed] = await forAlice.inbox.next(1);
  assert.equal(removed.eventType, 'DELETE');
  assert.deepEqual(removed.old, { id: insert.new.id });
  assert.deepEqual(await forBob.inbox.quiet(500), []);
});

test('postgres_changes filters: only matching rows, per event', async () => {
  const client = supabase();
  const big = changes(client, 'items-big', { event: 'INSERT', table: 'items', filter: 'n=gt.5' });
  const labelled = changes(client, 'items-in', { event: '*', table: 'items', filter: 'label=in.(b,c)' });
  await subscribed(big.channel);
  await subscribed(labelled.channel);
  await service.from('items').insert([
    { id: 101, n: 3, label: 'a' },
    { id: 102, n: 30, label: 'b' },
  ]);
  const [first] = await big.inbox.next(1);
  assert.deepEqual(first.new, { id: 102, n: 30, label: 'b' });
  const [second] = await labelled.inbox.next(1);
  assert.equal(second.new.id, 102);
  await service.from('items').update({ label: 'c' }).eq('id', 101);
  const [updated] = await labelled.inbox.next(1);
  assert.equal(updated.eventType, 'UPDATE');
  assert.equal(updated.new.id, 101);
  assert.deepEqual(await big.inbox.quiet(300), []);
  await service.from('items').delete().in('id', [101, 102]);
});

test('TRUNCATE reaches * and TRUNCATE bindings with no row data, not INSERT ones', async () => {
  const client = supabase();
  const star = changes(client, 'trunc-star', { event: '*', table: 'items' });
  const truncate = changes(client, 'trunc-only', { event: 'TRUNCATE', table: 'items' });
  const inserts = changes(client, 'trunc-insert', { event: 'INSERT', table: 'items' });
  for (const { channel } of [star, truncate, inserts]) await subscribed(channel);
  const { error } = await service.rpc('truncate_items');
  assert.equal(error, null);
  for (const { inbox } of [star, truncate]) {
    let [event] = await inbox.next(1);
    // The previous test's cleanup (DELETE of rows 101 and 102) may be read from the change log
    // after these channels joined, and '*' then receives it first: that is not this test's event.
    while (event.eventType === 'DELETE' && [101, 102].includes(event.old.id)) [event] = await inbox.next(1);
    assert.equal(event.eventType, 'TRUNCATE');
    assert.equal(event.schema, 'public');
    assert.equal(event.table, 'items');
    assert.deepEqual(event.new, {});
    assert.deepEqual(event.old, {});
    assert.ok(event.commit_timestamp);
  }
  assert.deepEqual(await inserts.inbox.quiet(300), []);
});

test('broadcast with ack, self, and a message larger than a NOTIFY payload', async () => {
  const sender = supabase();
  const receiver = supabase();
  const received = new Inbox();
  const echoed = new Inbox();
  const out = sender.channel('chat', { config: { broadcast: { ack: true, self: true } } });
  out.on('broadcast', { event: '*' }, echoed.push);
  const into = receiver.channel('chat').on('broadcast', { event: 'message' }, received.push);
  await subscribed(out);
  await subscribed(into);
  assert.equal(await out.send({ type: 'broadcast', event: 'message', payload: { text: 'hi' } }), 'ok');
  const [hello] = await received.next(1);
  assert.deepEqual(hello.payload, { text: 'hi' });
  assert.equal((await echoed.next(1))[0].payload.text, 'hi');
  const blob = 'x'.repeat(50_000);
  assert.equal(await out.send({ type: 'broadcast', event: 'message', payload: { blob } }), 'ok');
  const [large] = await received.next(1);
  assert.equal(large.payload.blob, blob);
  // The REST endpoint (httpSend) too.
  const response = await fetch(`${URL}/realtime/v1/api/broadcast`, {
    method: 'POST',
    headers: { apikey: ANON_KEY, 'Content-Type': 'application/json' },
    body: JSON.stringify({ messages: [{ topic: 'chat', event: 'message', payload: { via: 'rest' } }] }),
  });
  assert.equal(response.status, 202);
  assert.equal((await received.next(1))[0].payload.via, 'rest');
});

test('presence: sync, join and leave across clients', async () => {
  const first = supabase();
  const second = supabase();
  const leaves = new Inbox();
  const a = first.channel('lobby', { config: { presence: { key: 'first' } } });
  const b = second.channel('lobby', { config: { presence: { key: 'second' } } });
  const joins = new Inbox();
  a.on('presence', { event: 'join' }, joins.push).on('presence', { event: 'leave' }, leaves.push);
  await subscribed(a);
  await subscribed(b);
  assert.equal(await a.track({ name: 'A' }), 'ok');
  assert.equal(await b.track({ name: 'B' }), 'ok');
  const deadline = Date.now() + 5000;
  while (Object.keys(a.presenceState()).length < 2 && Date.now() < deadline) await sleep(50);
  const state = a.presenceState();
  assert.deepEqual(Object.keys(state).sort(), ['first', 'second']);
  assert.equal(state.second[0].name, 'B');
  await b.untrack();
  const [left] = await leaves.next(1);
  assert.equal(left.key, 'second');
  assert.ok(!('second' in a.presenceState()));
});

test('presence of a replica that stopped heartbeating is removed after the lease', async () => {
  const client = supabase();
  const leaves = new Inbox();
  const joins = new Inbox();
  const room = client.channel('ghosts');
  room.on('presence', { event: 'join' }, joins.push).on('presence', { event: 'leave' }, leaves.push);
  await subscribed(room);
  // A replica that crashed right after tracking someone (it never heartbeats).
  const { error } = await service.rpc('dead_replica_tracks', { topic: 'realtime:ghosts', member: 'ghost' });
  assert.equal(error, null);
  const [joined] = await joins.next(1);
  assert.equal(joined.key, 'ghost');
  const started = Date.now();
  const [left] = await leaves.next(1, 6000);
  assert.equal(left.key, 'ghost');
  assert.ok(Date.now() - started < 4000, `removed after ${Date.now() - started} ms`);
  assert.deepEqual(room.presenceState(), {});
});

test('setAuth moves a channel to the new user: it then sees their rows only', async () => {
  const alice = await signedUp();
  const bob = await signedUp();
  const client = supabase();
  await client.realtime.setAuth(alice.session.access_token);
  const { inbox, channel } = changes(client, 'swap', { event: 'INSERT', table: 'notes' });
  await subscribed(channel);
  await service.from('notes').insert({ owner: alice.user.id, title: 'for alice' });
  assert.equal((await inbox.next(1))[0].new.title, 'for alice');
  await client.realtime.setAuth(bob.session.access_token);
  await sleep(300);
  await service.from('notes').insert({ owner: alice.user.id, title: 'alice again' });
  await service.from('notes').insert({ owner: bob.user.id, title: 'for bob' });
  const [next] = await inbox.next(1);
  assert.equal(next.new.title, 'for bob');
  assert.deepEqual(await inbox.quiet(300), []);
  // A refreshed session of the same user keeps the channel going.
  const { data, error } = await bob.client.auth.refreshSession({ refresh_token: bob.session.refresh_token });
  assert.equal(error, null);
  await client.realtime.setAuth(data.session.access_token);
  await sleep(300);
  await service.from('notes').insert({ owner: bob.user.id, title: 'after refresh' });
  assert.equal((await inbox.next(1))[0].new.title, 'after refresh');
});

test('a channel of a session signed out elsewhere is closed and receives nothing more', async () => {
  const alice = await signedUp();
  const client = supabase();
  await client.realtime.setAuth(alice.session.access_token);
  const system = new Inbox();
  const statuses = new Inbox();
  const { inbox, channel } = changes(client, 'mine', { event: 'INSERT', table: 'notes' });
  channel.on('system', {}, system.push);
  await new Promise((resolve, reject) => {
    channel.subscribe((status) => {
      statuses.push(status);
      if (status === 'SUBSCRIBED') resolve();
      if (status === 'CHANNEL_ERROR') reject(new Error(status));
    });
  });
  await service.from('notes').insert({ owner: alice.user.id, title: 'before' });
  assert.equal((await inbox.next(1))[0].new.title, 'before');
  // Signed out from another device: this client is not told, the server is.
  const response = await fetch(`${URL}/auth/v1/logout`, {
    method: 'POST',
    headers: { apikey: ANON_KEY, Authorization: `Bearer ${alice.session.access_token}` },
  });
  assert.equal(response.status, 204);
  let error;
  for (;;) {
    const [message] = await system.next(1, 5000);
    if (message.extension === 'system') {
      error = message;
      break;
    }
  }
  assert.equal(error.status, 'error');
  assert.match(error.message, /session/i);
  for (;;) {
    const [status] = await statuses.next(1, 5000);
    if (status === 'CLOSED') break;
  }
  await service.from('notes').insert({ owner: alice.user.id, title: 'after' });
  assert.deepEqual(await inbox.quiet(700), []);
});

test('an insert quickly followed by a delete delivers both to the owner, under RLS', async () => {
  const alice = await signedUp();
  await alice.client.realtime.setAuth(alice.session.access_token);
  const { inbox, channel } = changes(alice.client, 'fleeting', { event: '*', table: 'notes' });
  await subscribed(channel);
  const { data, error } = await service
    .from('notes')
    .insert({ owner: alice.user.id, title: 'fleeting' })
    .select('id')
    .single();
  assert.equal(error, null);
  await service.from('notes').delete().eq('id', data.id);
  const [inserted, deleted] = await inbox.next(2);
  assert.equal(inserted.eventType, 'INSERT');
  assert.equal(inserted.new.title, 'fleeting');
  assert.equal(deleted.eventType, 'DELETE');
  assert.deepEqual(deleted.old, { id: data.id });
});

test('the per-user socket cap counts the users a socket acts for through its channels', async () => {
  const carol = await signedUp();
  const sockets = [];
  // FLUXBASE_REALTIME_MAX_CONNECTIONS_PER_USER is 3 on this server: three anon-key sockets may
  // act for Carol through a join, the fourth is refused.
  for (let i = 0; i < 3; i += 1) {
    const client = supabase();
    await client.realtime.setAuth(carol.session.access_token);
    sockets.push(await subscribed(client.channel(`carol-${i}`)));
  }
  const fourth = supabase();
  await fourth.realtime.setAuth(carol.session.access_token);
  await assert.rejects(subscribed(fourth.channel('carol-4')), /too many connections/);
});
