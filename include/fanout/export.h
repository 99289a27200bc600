// fanout/export.h: FANOUT_API marks what libfanout.so exports. The library is built with
// hidden visibility (-fvisibility=hidden -fvisibility-inlines-hidden): only declarations
// marked FANOUT_API in include/fanout/*.h are in its dynamic symbol table, so internals and
// the third-party code linked into it (CLI11, spdlog, fmt, msgpack, std templates) are not
// part of its ABI. Exception classes are marked whole so their typeinfo is shared and a
// `catch` in the program matches what the library throws. tests/lib/abi_test.sh checks it.
#pragma once

#if defined(__GNUC__) || defined(__clang__)
#define FANOUT_API __attribute__((visibility("default")))
#else
#define FANOUT_API
#endif
