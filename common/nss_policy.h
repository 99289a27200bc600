// LookUpProtocolsInFiles: a start-up policy of fanout's own programs (`fanout` with its
// server, `fanout-dashboard`, `fanout-worker` and the workers built on WorkerMain), beside
// KeepFreedMemory (allocator_policy.h).
//
// Why: every ZeroMQ context of Debian's shared libzmq starts OpenPGM, which looks up the
// "pgm" protocol through NSS. Debian's /etc/nsswitch.conf says `protocols: db files`, and
// without libnss_db installed glibc probes about 80 paths for it in every process: measured
// on an AMD EPYC guest, a program that only creates a context took 2.6-2.7 ms with the
// probes and 2.3-2.4 ms without. fanout never uses PGM, and the protocol numbers come from
// /etc/protocols either way. Programs linked with the static libzmq carry stand-ins for
// OpenPGM instead (cmake/no_multicast.cc): nothing looks a protocol up there, and this does
// nothing. Call once at the start of main, before threads start. The library (libfanout)
// never calls it: a host program's NSS is its own business.
#pragma once

namespace fanout {

// Protocol lookups (getprotobyname) in this process read /etc/protocols only. False if the
// C library refused (or is not glibc: nothing is changed then).
bool LookUpProtocolsInFiles();

}  // namespace fanout
