/**
 * torchrun's error file: a worker started by torchrun finds TORCHELASTIC_ERROR_FILE in its
 * environment and, when it fails, writes its error there as JSON, the record PyTorch's
 * @record/ErrorHandler writes — {message: {message, extraInfo: {py_callstack, timestamp}}}. The
 * agent reads it and prints it in its "ChildFailedError" summary as the root cause (the failure
 * with the smallest timestamp is the first, the others follow), instead of "<N/A>".
 */
import fs from 'node:fs';

/** Writes `error` to TORCHELASTIC_ERROR_FILE when torchrun set one; returns the file, if written. */
export function recordErrorForTorchelastic(error: unknown, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const file = env.TORCHELASTIC_ERROR_FILE;
  if (!file) return undefined;
  const e = error instanceof Error ? error : new Error(String(error));
  const record = {
    message: {
      message: `${e.name}: ${e.message}`,
      extraInfo: { py_callstack: e.stack ?? `${e.name}: ${e.message}`, timestamp: String(Math.floor(Date.now() / 1000)) },
    },
  };
  try {
    fs.writeFileSync(file, JSON.stringify(record));
    return file;
  } catch (writeError) {
    // the run's own error matters more: say why the file is missing and go on exiting with it
    console.error(`arcface: could not write torchrun's error file ${file}: ${(writeError as Error).message}`);
    return undefined;
  }
}
