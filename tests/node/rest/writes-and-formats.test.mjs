// Issue 11, data API writes, counting, formats and error texts through supabase-js / postgrest-js,
// compared with PostgREST's answers on tests/fixtures/rest_compat_schema.sql.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { postgrest, request, supabase } from './support.mjs';

test('bulk insert with defaultToNull: false takes the column defaults (missing=default)', async () => {
  const { data, error, status } = await supabase()
    .from('items')
    .insert([{ name: 'bolt' }, { name: 'nut', qty: 2, note: 'small' }], { defaultToNull: false })
    .select('name,qty,note');
  assert.equal(error, null);
  assert.equal(status, 201);
  assert.deepEqual(data, [
    { name: 'bolt', qty: 7, note: null },
    { name: 'nut', qty: 2, note: 'small' },
  ]);
});

test('an upsert of only the conflict columns returns the rows', async () => {
  const { data, error } = await supabase()
    .from('tags')
    .upsert([{ name: 'classic' }, { name: 'western' }], { onConflict: 'name' })
    .select('id,name,hits');
  assert.equal(error, null);
  assert.deepEqual(data.map((row) => row.name), ['classic', 'western']);
  assert.deepEqual(data[0], { id: 1, name: 'classic', hits: 0 });
});

test('a CSV request body inserts rows', async () => {
  const response = await request('POST', 'items?select=name,qty,note', {
    headers: { 'Content-Type': 'text/csv', Prefer: 'return=representation' },
    body: 'name,qty,note\nscrew,3,NULL\n"hex, key",4,x',
  });
  assert.equal(response.status, 201);
  assert.deepEqual(await response.json(), [
    { name: 'screw', qty: 3, note: null },
    { name: 'hex, key', qty: 4, note: 'x' },
  ]);
});

test('max-affected on RPC: PGRST124 and a rollback', async () => {
  const { error, status } = await postgrest().rpc('bump_all').maxAffected(2);
  assert.equal(status, 400);
  assert.deepEqual(
    { code: error.code, message: error.message, details: error.details },
    {
      code: 'PGRST124',
      message: 'Query result exceeds max-affected preference constraint',
      details: 'The query affects 3 rows',
    },
  );
  const { data } = await supabase().from('counters').select('n').order('id');
  assert.deepEqual(data, [{ n: 0 }, { n: 0 }, { n: 0 }]);
});

test('RPC answers carry Content-Range, and count=exact counts', async () => {
  const { data, count, status } = await supabase()
    .rpc('numbers_upto', { n: 10 }, { get: true, count: 'exact' })
    .range(2, 4);
  assert.equal(status, 206);
  assert.deepEqual(data, [3, 4, 5]);
  assert.equal(count, 10);
});

test('count=estimated: the planner past max_rows, the exact count below it', async () => {
  const big = await supabase().from('readings').select('id', { count: 'estimated' });
  assert.equal(big.data.length, 10); // max_rows
  assert.ok(big.count > 1000, `expected the planner's estimate, got ${big.count}`);
  const small = await supabase().from('readings').select('id', { count: 'estimated' }).eq('v', 3);
  assert.equal(small.count, 7);
  const exact = await supabase().from('films').select('id', { count: 'exact' });
  assert.equal(exact.count, 4);
});

test('text/csv output is byte-compatible with PostgREST', async () => {
  const { data, error } = await supabase().from('films').select('id,title,year').order('id').csv();
  assert.equal(error, null);
  assert.equal(data, 'id,title,year\n1,"The Shining",1980\n2,"Cleo from 5 to 7",1962\n3,"Barry Lyndon",1975\n4,"Untitled, maybe",');
});

test('application/geo+json output through PostGIS', async () => {
  const { data, error } = await supabase().from('places').select('name,geom').eq('id', 1).geojson();
  assert.equal(error, null);
  assert.deepEqual(data, {
    type: 'FeatureCollection',
    features: [{ type: 'Feature', geometry: { type: 'Point', coordinates: [2.35, 48.85] }, properties: { name: 'Paris' } }],
  });
});

test('error texts as PostgREST writes them', async () => {
  const single = await supabase().from('films').select('id').gt('id', 1).single();
  assert.equal(single.status, 406);
  assert.deepEqual(single.error, {
    code: 'PGRST116',
    message: 'Cannot coerce the result to a single JSON object',
    details: 'The result contains 3 rows',
    hint: null,
  });
  const noTable = await supabase().from('secret_plan').select();
  assert.equal(noTable.status, 404);
  assert.deepEqual(noTable.error, {
    code: 'PGRST205',
    message: "Could not find the table 'public.secret_plan' in the schema cache",
    details: null,
    hint: null, // anon may not use secret_plans: not named
  });
  const asService = await supabase({ service: true }).from('secret_plan').select();
  assert.equal(asService.error.hint, "Perhaps you meant the table 'public.secret_plans'");
  const noRelationship = await supabase().from('films').select('title,directorz(name)');
  assert.equal(noRelationship.error.code, 'PGRST200');
  assert.equal(noRelationship.error.hint, "Perhaps you meant 'directors' instead of 'directorz'.");
});
