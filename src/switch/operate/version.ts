// The version, in a module of its own so that vswitchctl does not load the daemon.
export const VERSION = '0.1.0';
