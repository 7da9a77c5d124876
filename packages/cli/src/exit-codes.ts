/** Exit codes of every `shoal` command. */
export const EXIT_OK = 0
/** The operation failed. */
export const EXIT_FAILED = 1
/** Bad arguments or configuration. */
export const EXIT_USAGE = 2
/** The agent could not be reached on its socket. */
export const EXIT_UNREACHABLE = 3
