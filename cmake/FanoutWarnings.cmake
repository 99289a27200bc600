# fanout_target_defaults(TARGET): warnings, sanitizers and -Werror for one target.
function(fanout_target_defaults target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic)
  # GCC 12 reports -Wrestrict false positives inside libstdc++'s std::string operator+
  # at -O2/-O3 (GCC bug 105329); they would break -Werror Release builds.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
    target_compile_options(${target} PRIVATE -Wno-restrict)
  endif()
  if(FANOUT_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  if(FANOUT_SANITIZE)
    # GCC's flow analysis reports -Wmaybe-uninitialized false positives inside libstdc++
    # (std::function, <regex>) once sanitizer instrumentation is on.
    if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
      target_compile_options(${target} PRIVATE -Wno-maybe-uninitialized)
    endif()
    string(REPLACE ";" "," _san "${FANOUT_SANITIZE}")
    target_compile_options(${target} PRIVATE -fsanitize=${_san} -fno-omit-frame-pointer
                                             -fno-sanitize-recover=all)
    target_link_options(${target} PRIVATE -fsanitize=${_san})
  endif()
endfunction()
