// ESM entry: the same module as index.js.
import honker from './index.js';

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
  HonkerError,
  ERROR_CODES,
  VERSION,
} = honker;
export default honker;
