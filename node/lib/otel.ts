// OpenTelemetry for the worker, through @opentelemetry/api when it is
// installed (an optional peer dependency; configure an SDK as usual), and
// nothing at all when it is not.
//
// Each job a worker runs is a span "{task} process" (kind CONSUMER) with the
// attributes messaging.system ("honker"), messaging.destination.name (the
// queue), messaging.message.id (the job id), honker.task and honker.attempt;
// a failed attempt sets the span's status to ERROR with its error. Metrics:
// the counters honker.jobs.completed and honker.jobs.failed and the
// histogram honker.job.duration (seconds), with the attributes
// messaging.destination.name and honker.task.

let api: any = null;
try {
  api = require('@opentelemetry/api');
} catch {
  api = null;
}

interface Instruments {
  tracer: any;
  completed: any;
  failed: any;
  duration: any;
}

let instruments: Instruments | null = null;

function get(version: string): Instruments {
  if (instruments === null) {
    const meter = api.metrics.getMeter('honker', version);
    instruments = {
      tracer: api.trace.getTracer('honker', version),
      completed: meter.createCounter('honker.jobs.completed', { unit: '{job}', description: 'Jobs whose handler returned.' }),
      failed: meter.createCounter('honker.jobs.failed', { unit: '{job}', description: 'Attempts whose handler threw or timed out.' }),
      duration: meter.createHistogram('honker.job.duration', { unit: 's', description: 'How long each attempt\'s handler ran.' }),
    };
  }
  return instruments;
}

/** @internal Whether the OpenTelemetry API is installed. */
export function otelEnabled(): boolean {
  return api !== null;
}

/**
 * @internal Runs `attempt` (one attempt of a job) inside its span, and
 * records its metrics; `attempt` resolves to `[ok, error text]` first.
 */
export async function traced<T extends [boolean, ...unknown[]]>(
  version: string,
  queue: string,
  task: string,
  jobId: number,
  attemptNo: number,
  attempt: () => Promise<T>,
  errorOf: (ended: T) => string | undefined,
): Promise<T> {
  if (api === null) return attempt();
  const t = get(version);
  const attrs = { 'messaging.destination.name': queue, 'honker.task': task };
  const span = t.tracer.startSpan(`${task} process`, {
    kind: api.SpanKind.CONSUMER,
    attributes: {
      ...attrs,
      'messaging.system': 'honker',
      'messaging.operation.type': 'process',
      'messaging.message.id': String(jobId),
      'honker.attempt': attemptNo,
    },
  });
  const start = performance.now();
  let ended: T;
  try {
    ended = await api.context.with(api.trace.setSpan(api.context.active(), span), attempt);
  } finally {
    t.duration.record((performance.now() - start) / 1000, attrs);
  }
  if (ended[0]) {
    t.completed.add(1, attrs);
  } else {
    const error = errorOf(ended) ?? '';
    span.setStatus({ code: api.SpanStatusCode.ERROR, message: error.split('\n')[0] });
    span.addEvent('exception', { 'exception.message': error });
    t.failed.add(1, attrs);
  }
  span.end();
  return ended;
}
