/** The help of --wait on the tenant commands. */
export const WAIT_HELP = 'wait for another command working on the same tenant instead of exit 3';
