# ctest driver (PackageTest.InstallFindPackageBuildRun): installs the build tree into a
# fresh prefix, configures and builds tests/package against it with find_package(fanout),
# and runs the result. Arguments: -DBUILD_DIR= -DSOURCE_DIR= -DWORK_DIR= and -DSANITIZE=
# (FANOUT_SANITIZE of the build: the project is built with the same sanitizers).
file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)
function(step)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(step_output "${out}" PARENT_SCOPE)
endfunction()
step(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
set(flags "")
if(SANITIZE)
  string(REPLACE ";" "," san "${SANITIZE}")
  set(flags "-DCMAKE_CXX_FLAGS=-fsanitize=${san}" "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=${san}")
endif()
step(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/package -B ${WORK_DIR}/build
     -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=Release ${flags})
step(${CMAKE_COMMAND} --build ${WORK_DIR}/build)
step(${WORK_DIR}/build/package_check)
if(NOT step_output MATCHES "package check ok")
  message(FATAL_ERROR "unexpected output: ${step_output}")
endif()
# No fanout-worker on PATH or in $FANOUT_WORKER: the one installed with the library is used.
step(${CMAKE_COMMAND} -E env --unset=FANOUT_WORKER PATH=/usr/bin:/bin ${WORK_DIR}/build/plain_check)
if(NOT step_output MATCHES "plain check ok")
  message(FATAL_ERROR "unexpected output: ${step_output}")
endif()
file(REMOVE_RECURSE ${WORK_DIR})
message(STATUS "package check ok")
