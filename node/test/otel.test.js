'use strict';
// The worker's OpenTelemetry spans and metrics, through @opentelemetry/api
// with the SDK's in-memory exporters.
const test = require('node:test');
const assert = require('node:assert/strict');
const api = require('@opentelemetry/api');
const { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { MeterProvider, MetricReader } = require('@opentelemetry/sdk-metrics');
const { open } = require('..');
const { tmpdb } = require('./helpers.js');

class Reader extends MetricReader {
  async onForceFlush() {}
  async onShutdown() {}
}

test('a worker traces and counts its jobs', async () => {
  const spans = new InMemorySpanExporter();
  api.trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] }));
  const reader = new Reader();
  api.metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));

  const db = open(tmpdb());
  const q = db.queue('mail');
  const send = q.task('send', async (to) => {
    if (to === 'nobody') throw new Error('no such address');
    return to;
  });
  const ok = await send.enqueue('ada');
  const bad = await send.enqueue('nobody', { maxAttempts: 1 });
  assert.equal(await db.worker({ queues: ['mail'] }).drain(), 2);

  const byId = new Map(spans.getFinishedSpans().map((s) => [s.attributes['messaging.message.id'], s]));
  assert.deepEqual([...byId.keys()].sort(), [String(ok.id), String(bad.id)].sort());
  const good = byId.get(String(ok.id));
  assert.equal(good.name, 'send process');
  assert.equal(good.kind, api.SpanKind.CONSUMER);
  assert.equal(good.attributes['messaging.system'], 'honker');
  assert.equal(good.attributes['messaging.destination.name'], 'mail');
  assert.equal(good.attributes['honker.attempt'], 1);
  assert.notEqual(good.status.code, api.SpanStatusCode.ERROR);
  const failed = byId.get(String(bad.id));
  assert.equal(failed.status.code, api.SpanStatusCode.ERROR);
  assert.match(failed.status.message, /no such address/);

  const { resourceMetrics } = await reader.collect();
  const points = Object.fromEntries(
    resourceMetrics.scopeMetrics.flatMap((s) => s.metrics).map((m) => [m.descriptor.name, m.dataPoints]),
  );
  assert.deepEqual(points['honker.jobs.completed'].map((p) => p.value), [1]);
  assert.deepEqual(points['honker.jobs.failed'].map((p) => p.value), [1]);
  assert.deepEqual(points['honker.job.duration'].map((p) => p.value.count), [2]);
  assert.deepEqual(points['honker.jobs.completed'][0].attributes, { 'messaging.destination.name': 'mail', 'honker.task': 'send' });
  db.close();
});

test('without @opentelemetry/api a worker runs and emits nothing', () => {
  const { spawnSync } = require('node:child_process');
  const path = require('node:path');
  const script = `
    const { open } = require(${JSON.stringify(path.join(__dirname, '..'))});
    (async () => {
      const db = open(${JSON.stringify(tmpdb())});
      const double = db.queue('q').task('double', (n) => 2 * n);
      const h = await double.enqueue(21);
      if ((await db.worker().drain()) !== 1) throw new Error('not run');
      if ((await h.result({ timeoutS: 10 })) !== 42) throw new Error('no result');
      console.log('ok');
    })().catch((e) => { console.error(e); process.exit(1); });`;
  const out = spawnSync(process.execPath, ['-r', path.join(__dirname, 'fixtures', 'no-otel.js'), '-e', script], { encoding: 'utf8', timeout: 60000 });
  assert.equal(out.status, 0, out.stderr);
  assert.equal(out.stdout.trim(), 'ok');
});
