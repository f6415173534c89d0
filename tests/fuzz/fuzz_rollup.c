/*
 * /proc/PID/smaps_rollup: the smaps harness (fuzz_smaps.c) as it is,
 * with its own seeds and dictionary; the parser is the smaps one.
 */
#include "fuzz_smaps.c"
