#!/usr/bin/env bash
# libfanout.so's ABI (LibAbi.* in ctest): its dynamic symbol table holds the public fanout::
# API and nothing else (no internals, no CLI11/spdlog/fmt/msgpack, no std:: template
# instances), and a task plugin built with the project's hidden visibility still exports
# its fanout_plugin entry point, and only that.
#   abi_test.sh lib NM LIBFANOUT      abi_test.sh plugin NM PLUGIN.so
# The allow-list below is the public API of include/fanout/*.h (FANOUT_API): a new public
# function or class is added here on purpose, an exported internal fails the test.
set -euo pipefail
mode=$1 nm=$2 file=$3

# Names of the defined dynamic symbols, demangled ("ADDR T name" -> "name").
symbols() { "$nm" -DC --defined-only "$1" | sed -E 's/^[0-9a-fA-F]* +[A-Za-z] +//'; }
linker='_init|_fini|_edata|_end|__bss_start'

fail=0
case $mode in
  lib)
    id='~?[A-Za-z_][A-Za-z0-9_]*|operator=|operator==?'
    abi='(\[abi:cxx11\])?'
    allowed="^(${linker})\$"
    # Members of the public classes (not of their private nested Impl/State).
    allowed+="|^fanout::(Pool|PoolOptions|CompletionStream)::(${id})${abi}\\("
    allowed+="|^fanout::TaskChunk::lines\\("
    allowed+="|^fanout::(register_task|task_names|split_lines|worker_main|init)${abi}\\("
    # Exception classes: shared typeinfo so a catch in the program matches.
    allowed+="|^(typeinfo|typeinfo name|vtable) for fanout::(TaskError|PoolError|Cancelled|TaskFailed)\$"
    all=$(symbols "$file")
    unexpected=$(grep -Ev "$allowed" <<<"$all" || true)
    total=$(grep -c . <<<"$all" || true)
    echo "libfanout.so exports $total dynamic symbols"
    if [[ -n $unexpected ]]; then
      echo "FAIL: $(grep -c . <<<"$unexpected") exported symbols are not public fanout:: API, e.g.:"
      head -n 20 <<<"$unexpected" | cut -c1-160
      fail=1
    fi
    # The public API must be there (a library that exports nothing would pass the above).
    for want in 'fanout::Pool::Pool(fanout::PoolOptions)' 'fanout::Pool::map(' \
                'fanout::Pool::as_completed(' 'fanout::CompletionStream::next()' \
                'fanout::PoolOptions::workers(unsigned int)' 'fanout::PoolOptions::workers() const' \
                'fanout::register_task(' 'fanout::task_names' 'fanout::split_lines' \
                'fanout::TaskChunk::lines() const' 'fanout::init(int, char**)' \
                'fanout::worker_main(int, char**)' 'typeinfo for fanout::TaskError' \
                'typeinfo for fanout::PoolError' 'typeinfo for fanout::Cancelled' 'typeinfo for fanout::TaskFailed'; do
      if ! grep -qF -- "$want" <<<"$all"; then
        echo "FAIL: public symbol missing: $want"
        fail=1
      fi
    done
    ;;
  plugin)
    all=$(symbols "$file" | grep -Ev "^(${linker})\$" || true)
    if [[ $all != fanout_plugin ]]; then
      echo "FAIL: $file should export fanout_plugin alone; it exports:"
      echo "${all:-(nothing)}"
      fail=1
    fi
    ;;
  *)
    echo "usage: abi_test.sh lib|plugin NM FILE" >&2
    exit 2
    ;;
esac
[[ $fail == 0 ]] && echo "ok"
exit $fail
