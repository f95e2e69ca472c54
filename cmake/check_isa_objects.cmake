# Fails the build if an ISA-specific object file defines weak (COMDAT)
# symbols: the linker may keep that ISA's copy of an inline function for
# every caller, and a CPU without the ISA would then crash (numpy#25274).
# Run with -DNM=<nm> -DOBJECTS=<object files separated by |> -DISAS=<the ISA
# names of csrc/cpu/isa_list.h but scalar, separated by |>.
if(ISAS STREQUAL "")
  return()  # no ISA-specific files on this architecture
endif()
string(REPLACE "|" ";" OBJECTS "${OBJECTS}")
foreach(obj IN LISTS OBJECTS)
  get_filename_component(name "${obj}" NAME)
  if(NOT name MATCHES "_(${ISAS})\\.cc\\.o$")
    continue()
  endif()
  execute_process(COMMAND "${NM}" -C "${obj}" OUTPUT_VARIABLE symbols RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "nm failed on ${obj}")
  endif()
  string(REGEX MATCHALL "[^\n]* [WVu] [^\n]*" weak "${symbols}")
  # Sanitizer builds add this one (a reference to the C++ personality
  # routine, the same in every object): harmless.
  list(FILTER weak EXCLUDE REGEX "DW\\.ref\\.__gxx_personality_v0")
  if(weak)
    string(REPLACE ";" "\n  " weak "${weak}")
    message(FATAL_ERROR "${name} defines weak symbols shared with other files; keep ISA code in its own "
                        "namespace and avoid STL templates there:\n  ${weak}")
  endif()
endforeach()
