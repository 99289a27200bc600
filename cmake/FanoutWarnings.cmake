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

# fanout_layer_includes(TARGET LAYER...): the include layering (ARCHITECTURE.md) enforced by
# the compiler. TARGET's only project include root (PRIVATE) is a directory in the build
# tree holding links to the given source folders, so `#include "cli/..."` from a target not
# given `cli` does not compile. scripts/check-layering states the same rule for review.
function(fanout_layer_includes target)
  set(_root ${CMAKE_BINARY_DIR}/layers/${target})
  file(MAKE_DIRECTORY ${_root})
  foreach(_layer ${ARGN})
    file(REMOVE ${_root}/${_layer})
    file(CREATE_LINK ${PROJECT_SOURCE_DIR}/${_layer} ${_root}/${_layer} SYMBOLIC)
  endforeach()
  target_include_directories(${target} PRIVATE ${_root})
endfunction()
