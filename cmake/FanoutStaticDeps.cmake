# fanout's own programs (fanout, fanout-dashboard, fanout-worker) link libzmq with the
# libraries it needs, GMP and xxHash from Debian's static archives (the -dev packages this
# project installs ship them; `pkg-config --static --libs libzmq` names the same set).
#
# Why: every program start pays for each shared library the loader maps and relocates, in
# page faults. In a VM whose faults are expensive (an AMD EPYC Firecracker guest: about
# 15 us each) `fanout --version` took 15 ms, 11 of them in the loader; the 7 libraries
# libzmq pulls in are a third of it. That start-up is paid by every `fanout run`, every
# worker a job starts, and every client of a `fanout server`.
#
# Only programs opt in, with fanout_static_deps(target) (the FANOUT_STATIC_DEPS property);
# the link interfaces below give such a program the archives and everything else (the
# shared libfanout, tests, examples, plugins) the shared libraries, since a host program
# must share one libzmq with the library it loads. libzmq.a's GSSAPI mechanism, never run
# by fanout, refers to libgssapi_krb5, which has no archive in Debian: the programs get
# cmake/no_gssapi.cc's failing stand-ins instead of its seven shared libraries (1.7 ms of
# every start on the EPYC guest; the file says why they are never reached). Its multicast
# transports (OpenPGM, NORM), which ROUTER and DEALER sockets never run, likewise get
# cmake/no_multicast.cc instead of libpgm.a, libnorm.a and libprotokit.a (0.2-0.3 ms of
# every process with a ZeroMQ context, and NORM's static constructors in every start).
# spdlog and fmt: Debian ships no archives of them, but all of their implementations'
# headers; cmake/static_logging.cc compiles them into an archive for the programs, which then
# also link libstdc++ and libgcc statically and map glibc alone (static_logging.cc says
# what it saves).
# -DFANOUT_STATIC_DEPS=OFF links the shared libraries everywhere.
# Sanitizer builds keep the shared libraries: tests/tsan.supp names libzmq.so
# (called_from_lib), which a libzmq linked into the program would not match.
if(FANOUT_SANITIZE)
  set(fanout_static_default OFF)
else()
  set(fanout_static_default ON)
endif()
option(FANOUT_STATIC_DEPS
       "Link fanout's programs with static libzmq, GMP, xxHash, spdlog, fmt and libstdc++"
       ${fanout_static_default})
# What fanout_tasks and fanout_engine link for GMP and xxHash (the choosing targets below
# when the archives are there).
set(FANOUT_GMP GMP::gmpxx)
set(FANOUT_XXHASH xxHash::xxhash)
set(FANOUT_SPDLOG spdlog::spdlog)  # what fanout_common links for logging

# The programs' relative relocations packed (DT_RELR; binutils 2.38 and glibc 2.36, which
# Debian 12 has): the loader reads 2 KB of them instead of 196 KB (`fanout`'s 8,100 vtable
# and pointer slots), a few pages fewer to fault in at each start. Small and free: 0.03-0.15
# ms of a 3-6 ms start on the EPYC guest (`scripts/ab-spawn`, BENCHMARKS.md "Start-up").
# Left out where the linker or C library lacks it.
include(CheckLinkerFlag)
check_linker_flag(CXX "-Wl,-z,pack-relative-relocs" FANOUT_HAVE_PACKED_RELOCS)

# fanout_static_deps(TARGET [SHARED_LIBSTDCXX]): SHARED_LIBSTDCXX for a program that also
# links a C++ shared library (fanout-dashboard: libcpp-httplib), which must share one
# libstdc++ with it (two copies would each number std::locale's facets, for one).
function(fanout_static_deps target)
  set_property(TARGET ${target} PROPERTY FANOUT_STATIC_DEPS ${FANOUT_STATIC_DEPS})
  if(FANOUT_STATIC_DEPS AND NOT "SHARED_LIBSTDCXX" IN_LIST ARGN)
    target_link_options(${target} PRIVATE -static-libstdc++ -static-libgcc)
  endif()
  if(FANOUT_HAVE_PACKED_RELOCS)
    target_link_options(${target} PRIVATE -Wl,-z,pack-relative-relocs)
  endif()
endfunction()

# fanout_choose_link(TARGET STATIC_ITEMS SHARED_ITEMS): TARGET's link interface becomes
# STATIC_ITEMS in a program with FANOUT_STATIC_DEPS, SHARED_ITEMS elsewhere.
function(fanout_choose_link target static_items shared_items)
  set(is_static "$<BOOL:$<TARGET_PROPERTY:FANOUT_STATIC_DEPS>>")
  set(items "")
  foreach(item IN LISTS static_items)
    list(APPEND items "$<${is_static}:${item}>")
  endforeach()
  foreach(item IN LISTS shared_items)
    list(APPEND items "$<$<NOT:${is_static}>:${item}>")
  endforeach()
  set_property(TARGET ${target} PROPERTY INTERFACE_LINK_LIBRARIES "${items}")
endfunction()

# Archives of a library and the archives it needs, in link order; sets VAR to the paths, or
# to "" (and says so) when one is missing, in which case the shared libraries are used.
function(fanout_find_archives var)
  set(paths "")
  foreach(name IN LISTS ARGN)
    find_library(FANOUT_ARCHIVE_${name} NAMES lib${name}.a)
    mark_as_advanced(FANOUT_ARCHIVE_${name})
    if(NOT FANOUT_ARCHIVE_${name})
      message(STATUS "fanout: no lib${name}.a; fanout's programs link the shared libraries")
      set(${var} "" PARENT_SCOPE)
      return()
    endif()
    list(APPEND paths ${FANOUT_ARCHIVE_${name}})
  endforeach()
  set(${var} "${paths}" PARENT_SCOPE)
endfunction()

# fanout_choose_archives(VAR TARGET SHARED_TARGET INCLUDE_DIR NAME...): when lib<NAME>.a are
# all found, makes TARGET (the archives in programs, SHARED_TARGET elsewhere) and sets VAR
# to it in the caller.
function(fanout_choose_archives var target shared_target include_dir)
  fanout_find_archives(archives ${ARGN})
  if(archives)
    add_library(${target} INTERFACE)
    target_include_directories(${target} INTERFACE ${include_dir})
    fanout_choose_link(${target} "${archives}" "${shared_target}")
    set(${var} ${target} PARENT_SCOPE)
  endif()
endfunction()

if(FANOUT_STATIC_DEPS)
  fanout_find_archives(zmq_archives zmq sodium bsd md)
  find_path(FANOUT_PGM_INCLUDE_DIR pgm/pgm.h PATH_SUFFIXES pgm-5.3)
  find_path(FANOUT_NORM_INCLUDE_DIR normApi.h)
  mark_as_advanced(FANOUT_PGM_INCLUDE_DIR FANOUT_NORM_INCLUDE_DIR)
  if(zmq_archives AND FANOUT_PGM_INCLUDE_DIR AND FANOUT_NORM_INCLUDE_DIR)
    add_library(fanout_zmq_standins STATIC ${CMAKE_CURRENT_LIST_DIR}/no_gssapi.cc
                                           ${CMAKE_CURRENT_LIST_DIR}/no_multicast.cc)
    target_include_directories(fanout_zmq_standins PRIVATE ${FANOUT_PGM_INCLUDE_DIR}
                                                           ${FANOUT_NORM_INCLUDE_DIR})
    fanout_choose_link(cppzmq "${zmq_archives};fanout_zmq_standins;rt;m;Threads::Threads"
                       "libzmq")
  elseif(zmq_archives)
    message(STATUS "fanout: no OpenPGM or NORM headers; fanout's programs link the shared libzmq")
  endif()
  fanout_choose_archives(FANOUT_GMP fanout_gmp GMP::gmpxx "${GMP_INCLUDE_DIR}" gmpxx gmp)
  fanout_choose_archives(FANOUT_XXHASH fanout_xxhash xxHash::xxhash "${XXHASH_INCLUDE_DIR}" xxhash)
  # spdlog (and fmt under it) from static_logging.cc in programs, the shared ones elsewhere;
  # code compiles the same either way (spdlog's compiled-library headers and definitions).
  add_library(fanout_static_logging STATIC ${CMAKE_CURRENT_LIST_DIR}/static_logging.cc)
  # Compiled, and used, with the shared libraries' definitions and include directories.
  foreach(property COMPILE_DEFINITIONS INCLUDE_DIRECTORIES)
    foreach(imported spdlog::spdlog fmt::fmt)
      get_target_property(values ${imported} INTERFACE_${property})
      if(values)
        set_property(TARGET fanout_static_logging APPEND PROPERTY ${property} ${values})
        set_property(TARGET fanout_static_logging APPEND PROPERTY INTERFACE_${property} ${values})
      endif()
    endforeach()
  endforeach()
  target_compile_features(fanout_static_logging PRIVATE cxx_std_20)
  set_property(TARGET fanout_static_logging PROPERTY POSITION_INDEPENDENT_CODE ON)
  add_library(fanout_spdlog INTERFACE)
  fanout_choose_link(fanout_spdlog "fanout_static_logging;Threads::Threads" "spdlog::spdlog")
  set(FANOUT_SPDLOG fanout_spdlog)
endif()
