// Errors the operating commands (explain, doctor, apply) report to the user: one
// line each, naming the place and a hint, and the exit code they end with.

export class CommandError extends Error {
  constructor(
    message: string,
    /** 1: bad input or a failed check, 2: usage, 3: refused. */
    readonly exitCode: 1 | 2 | 3,
  ) {
    super(message);
  }
}
