# The ISA paths of csrc/cpu/isa_list.h for the architecture being compiled
# for, and the kernel sources that go with them. Sets, in the caller's scope:
#   QK_ARCH             x86_64, aarch64 or other
#   QK_ISAS             this architecture's paths, scalar excluded
#   QK_ISAS_BY_LENGTH   the same, longest name first (as a |-joined string in
#                       QK_ISAS_BY_LENGTH_JOINED), so "_avx512_vnni" is not
#                       taken for "_avx512"
#   QK_KERNEL_SOURCES   every csrc/*.cc but the bindings and the files of other
#                       architectures' paths; each *_<isa>.cc carries its flags
# A file named *_<isa>.cc is the only place that ISA's instructions may appear,
# and the only file compiled with its flags: everything else targets the
# architecture's baseline, and a path is picked at run time.
function(qk_isa_sources root)
  string(TOLOWER "${CMAKE_SYSTEM_PROCESSOR}" cpu)
  if(cpu MATCHES "^(x86_64|amd64|x64)$")
    set(arch x86_64)
  elseif(cpu MATCHES "^(aarch64|arm64)$")
    set(arch aarch64)
  else()
    set(arch other)
  endif()

  file(READ "${root}/csrc/cpu/isa_list.h" header)
  string(REGEX MATCHALL "QK_ON_[a-z0-9_]+\\(X\\([a-z0-9_]+, *\"[^\"]*\"\\)\\)" entries "${header}")
  set(isas "")
  set(foreign "")
  foreach(entry IN LISTS entries)
    string(REGEX MATCH "QK_ON_([a-z0-9_]+)\\(X\\(([a-z0-9_]+), *\"([^\"]*)\"\\)\\)" _ "${entry}")
    if(CMAKE_MATCH_1 STREQUAL arch)
      list(APPEND isas "${CMAKE_MATCH_2}")
      separate_arguments(flags_${CMAKE_MATCH_2} UNIX_COMMAND "${CMAKE_MATCH_3}")
    else()
      list(APPEND foreign "${CMAKE_MATCH_2}")
    endif()
  endforeach()
  if(NOT arch STREQUAL "other" AND NOT isas)
    message(FATAL_ERROR "qk: no ISA paths for ${arch} in csrc/cpu/isa_list.h")
  endif()

  set(by_length "")
  set(all_isas ${isas} ${foreign})
  foreach(len RANGE 1 32)
    foreach(isa IN LISTS all_isas)
      string(LENGTH "${isa}" n)
      if(n EQUAL len)
        list(INSERT by_length 0 "${isa}")
      endif()
    endforeach()
  endforeach()

  file(GLOB_RECURSE all_sources CONFIGURE_DEPENDS "${root}/csrc/*.cc")
  list(FILTER all_sources EXCLUDE REGEX "/csrc/bindings/")
  set(sources "")
  foreach(src IN LISTS all_sources)
    get_filename_component(stem "${src}" NAME_WE)
    set(keep TRUE)
    foreach(isa IN LISTS by_length)
      if(stem MATCHES "_${isa}$")
        if(isa IN_LIST isas)
          set_source_files_properties("${src}" PROPERTIES COMPILE_OPTIONS "${flags_${isa}}")
        else()
          set(keep FALSE)
        endif()
        break()
      endif()
    endforeach()
    if(keep)
      list(APPEND sources "${src}")
    endif()
  endforeach()

  set(mine "")
  foreach(isa IN LISTS by_length)
    if(isa IN_LIST isas)
      list(APPEND mine "${isa}")
    endif()
  endforeach()
  string(REPLACE ";" "|" joined "${mine}")
  set(QK_ARCH "${arch}" PARENT_SCOPE)
  set(QK_ISAS "${isas}" PARENT_SCOPE)
  set(QK_ISAS_BY_LENGTH "${mine}" PARENT_SCOPE)
  set(QK_ISAS_BY_LENGTH_JOINED "${joined}" PARENT_SCOPE)
  set(QK_KERNEL_SOURCES "${sources}" PARENT_SCOPE)
endfunction()

# -ffp-contract=off: no silent FMA contraction, so every path rounds alike.
set(QK_COMPILE_OPTIONS -O3 -Wall -Wextra -fno-math-errno -ffp-contract=off)
