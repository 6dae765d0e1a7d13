// ESM entry: the same module as the CommonJS one (dist/index.js, compiled
// from lib/*.ts), its exports by name.
import honker from './dist/index.js';

export const {
  open,
  cronNext,
  extensionPath,
  loadExtension,
  Database,
  Transaction,
  Queue,
  Job,
  Claimer,
  Stream,
  Subscription,
  Listener,
  Lock,
  Scheduler,
  Task,
  TaskContext,
  TaskHandle,
  Worker,
  Retry,
  HonkerError,
  ERROR_CODES,
  VERSION,
} = honker;
export default honker;
