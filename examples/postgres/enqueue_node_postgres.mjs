// Any PostgreSQL client enqueues inside its own transaction by calling
// honker's functions: here node-postgres (`pg`) writes an order and its job in
// one transaction, and a honker worker takes the job.
//
//   node examples/postgres/enqueue_node_postgres.mjs postgresql://user@host/db
//
// The schema of honker's tables is `honker` (the URL's `schema=` picks
// another); opening it with honker once creates it.
import { createRequire } from 'node:module';
import pg from 'pg';

const require = createRequire(new URL('../../node/package.json', import.meta.url));
const honker = require('./dist/index.js');

const url = process.argv[2];
const schema = 'example_node_pg';
const workerDb = honker.open(`${url}?schema=${schema}`); // creates honker's tables in the schema

const client = new pg.Client({ connectionString: url });
await client.connect();
await client.query('CREATE TABLE IF NOT EXISTS example_orders_js (id bigserial PRIMARY KEY, customer text)');
// One transaction: the order and the job that emails its customer.
await client.query('BEGIN');
const order = await client.query('INSERT INTO example_orders_js (customer) VALUES ($1) RETURNING id', [
  'bob@example.com',
]);
const orderId = Number(order.rows[0].id);
const job = await client.query(`SELECT ${schema}.enqueue($1, $2, $3::jsonb) AS id`, [
  'emails',
  JSON.stringify({ order: orderId }),
  JSON.stringify({ priority: 5 }),
]);
await client.query('COMMIT');
const jobId = Number(job.rows[0].id);

const claimed = await workerDb.queue('emails').claimOne('worker-1');
if (!claimed || claimed.id !== jobId) throw new Error(`expected job ${jobId}, got ${claimed?.id}`);
console.log(`node-postgres enqueued job ${jobId} for order ${orderId}; honker claimed it:`, claimed.payload);
await claimed.ack();

await client.query(`DROP SCHEMA ${schema} CASCADE`);
await client.query('DROP TABLE example_orders_js');
await client.end();
workerDb.close();
