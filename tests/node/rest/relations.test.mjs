// Issue 11, data API reads through supabase-js / postgrest-js: functions as relations, computed
// members, views, hints, empty embeds, counts in embeds and spreads. Expected values are
// PostgREST's answers to the same requests on tests/fixtures/rest_compat_schema.sql.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { postgrest, request, supabase } from './support.mjs';

test('a RETURNS TABLE function takes select, filters and order', async () => {
  const { data, error, status } = await supabase()
    .rpc('film_stats')
    .select('title,actor_count')
    .gte('actor_count', 1)
    .order('actor_count', { ascending: false })
    .order('title');
  assert.equal(error, null);
  assert.equal(status, 200);
  assert.deepEqual(data, [
    { title: 'The Shining', actor_count: 2 },
    { title: 'Barry Lyndon', actor_count: 1 },
    { title: 'Cleo from 5 to 7', actor_count: 1 },
  ]);
});

test('a SETOF record function with OUT parameters is a relation', async () => {
  const { data, error } = await postgrest().rpc('pairs', {}, { get: true }).select('b').gt('a', 1).order('a', { ascending: false });
  assert.equal(error, null);
  assert.deepEqual(data, [{ b: 'three' }, { b: 'two' }]);
});

test('computed fields in select, filters and order', async () => {
  const { data, error } = await supabase()
    .from('films')
    .select('id,full_title')
    .like('full_title', '*(19*')
    .order('full_title', { ascending: false });
  assert.equal(error, null);
  assert.deepEqual(data, [
    { id: 1, full_title: 'The Shining (1980)' },
    { id: 2, full_title: 'Cleo from 5 to 7 (1962)' },
    { id: 3, full_title: 'Barry Lyndon (1975)' },
  ]);
});

test('computed relationships embed to-one and to-many', async () => {
  const client = supabase();
  const one = await client.from('films').select('title,director(name)').in('id', [1, 4]).order('id');
  assert.deepEqual(one.data, [
    { title: 'The Shining', director: { name: 'Kubrick' } },
    { title: 'Untitled, maybe', director: null },
  ]);
  const many = await client.from('directors').select('name,filmography(title)').eq('id', 1);
  assert.deepEqual(many.data, [{ name: 'Kubrick', filmography: [{ title: 'The Shining' }, { title: 'Barry Lyndon' }] }]);
});

test('embedding through views, and PUT on a view', async () => {
  const client = supabase();
  const down = await client.from('film_view').select('title,directors(name)').eq('id', 2);
  assert.deepEqual(down.data, [{ title: 'Cleo from 5 to 7', directors: { name: 'Varda' } }]);
  const up = await client.from('directors').select('name,film_view(title)').eq('id', 2);
  assert.deepEqual(up.data, [{ name: 'Varda', film_view: [{ title: 'Cleo from 5 to 7' }] }]);
  const hidden = await client.from('notes').select('body,films(title)').order('id');
  assert.deepEqual(hidden.data, [
    { body: 'scary', films: { title: 'The Shining' } },
    { body: 'long', films: { title: 'Barry Lyndon' } },
  ]);
  const put = await request('PUT', 'film_view?id=eq.8', {
    service: true,
    headers: { 'Content-Type': 'application/json', Prefer: 'return=representation' },
    body: JSON.stringify({ id: 8, title: 'Put', director_id: 1, year: 2000 }),
  });
  assert.equal(put.status, 200);
  assert.deepEqual(await put.json(), [{ id: 8, title: 'Put', director_id: 1, year: 2000 }]);
  await supabase({ service: true }).from('films').delete().eq('id', 8);
});

test('hints by constraint name, constraint names as targets, ambiguity as PostgREST lists it', async () => {
  const client = supabase();
  const hinted = await client.from('best_friends').select('id,users!best_friends_first_user_fkey(username)').order('id');
  assert.deepEqual(hinted.data, [
    { id: 1, users: { username: 'ann' } },
    { id: 2, users: { username: 'cy' } },
  ]);
  const target = await client.from('best_friends').select('id,best_friends_second_user_fkey(username)').eq('id', 1);
  assert.deepEqual(target.data, [{ id: 1, best_friends_second_user_fkey: { username: 'bob' } }]);
  const ambiguous = await client.from('best_friends').select('users(*)');
  assert.equal(ambiguous.status, 300);
  assert.equal(ambiguous.error.code, 'PGRST201');
  assert.equal(
    ambiguous.error.hint,
    "Try changing 'users' to one of the following: 'users!best_friends_first_user_fkey', " +
      "'users!best_friends_second_user_fkey'. Find the desired relationship in the 'details' key.",
  );
});

test('a self-referencing table: the table name means children, the column the parent', async () => {
  const { data } = await supabase().from('family').select('name,family(name),parent_id(name)').eq('id', 2);
  assert.deepEqual(data, [{ name: 'Mum', family: [{ name: 'Kid' }], parent_id: { name: 'Grandma' } }]);
  const hinted = await supabase().from('family').select('name,children:family!parent_id(name)').eq('id', 1);
  assert.deepEqual(hinted.data, [{ name: 'Grandma', children: [{ name: 'Mum' }, { name: 'Aunt' }] }]);
});

test('an empty embed filters without adding its key', async () => {
  const { data } = await supabase().from('films').select('title,roles!inner()').like('roles.character', 'Wendy*');
  assert.deepEqual(data, [{ title: 'The Shining' }]);
});

test('a bare count in an embed, with aggregates disabled', async () => {
  const { data, error } = await supabase().from('films').select('title,roles(count)').order('id').limit(2);
  assert.equal(error, null);
  assert.deepEqual(data, [
    { title: 'The Shining', roles: [{ count: 2 }] },
    { title: 'Cleo from 5 to 7', roles: [{ count: 1 }] },
  ]);
  const refused = await supabase().from('films').select('roles(character.count())');
  assert.equal(refused.error.code, 'PGRST123');
});

test('a to-many spread gives arrays (PostgREST 13)', async () => {
  const { data, error } = await supabase().from('directors').select('name,...films(title,year)').in('id', [1, 3]).order('id');
  assert.equal(error, null);
  assert.deepEqual(data, [
    { name: 'Kubrick', title: ['The Shining', 'Barry Lyndon'], year: [1980, 1975] },
    { name: 'Nobody', title: [], year: [] },
  ]);
});

test('a to-many spread is PGRST119 under PostgREST 12', async () => {
  const { error, status } = await supabase({ v12: true }).from('directors').select('name,...films(title)');
  assert.equal(status, 400);
  assert.deepEqual(error, {
    code: 'PGRST119',
    message: "A spread operation on 'films' is not possible",
    details: "'directors' and 'films' do not form a many-to-one or one-to-one relationship",
    hint: null,
  });
});

test('aggregates grouped by a spread, and inside one', async () => {
  const client = supabase({ v12: true });
  const grouped = await client.from('films').select('budget.sum(),...directors(name)').not('director_id', 'is', null);
  assert.equal(grouped.error, null);
  assert.deepEqual(
    grouped.data.sort((a, b) => a.name.localeCompare(b.name)),
    [
      { sum: 30, name: 'Kubrick' },
      { sum: 1, name: 'Varda' },
    ],
  );
  const inside = await client.from('roles').select('character.count(),...films(title)').eq('film_id', 1);
  assert.deepEqual(inside.data, [{ count: 2, title: 'The Shining' }]);
  const errorText = await client.from('films').select('title,budget.sum()').order('year');
  assert.equal(errorText.error.code, '42803');
  assert.equal(
    errorText.error.message,
    'column "films.year" must appear in the GROUP BY clause or be used in an aggregate function',
  );
});
