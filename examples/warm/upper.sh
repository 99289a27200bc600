#!/usr/bin/env bash
# A warm command in bash (common/WARM_PROTOCOL.md): uppercases each chunk, one process for
# every chunk of a slot. Text chunks only (bash variables cannot hold NUL bytes).
#   fanout run -i in.txt -o out.txt exec --warm -- bash examples/warm/upper.sh
export LC_ALL=C  # read -N and ${#var} count bytes
printf 'READY 1\n'
while IFS=' ' read -r kind chunk attempt n; do
  [[ $kind == CHUNK ]] || { echo "upper.sh: bad request '$kind'" >&2; exit 1; }
  data=
  ((n > 0)) && IFS= read -r -d '' -N "$n" data
  result=${data^^}
  printf 'OK %d\n%s' "${#result}" "$result"
done
