# fanout_target_defaults(TARGET): warnings, sanitizers and -Werror for one target.
function(fanout_target_defaults target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic)
  if(FANOUT_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  if(FANOUT_SANITIZE)
    string(REPLACE ";" "," _san "${FANOUT_SANITIZE}")
    target_compile_options(${target} PRIVATE -fsanitize=${_san} -fno-omit-frame-pointer
                                             -fno-sanitize-recover=all)
    target_link_options(${target} PRIVATE -fsanitize=${_san})
  endif()
endfunction()
